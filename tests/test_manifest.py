"""The npe2 manifest: one canonical file, packaged, valid, and every python_name importable."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

npe2 = pytest.importorskip("npe2")

ROOT = Path(__file__).resolve().parents[1]
PACKAGED = ROOT / "src" / "napari_channelbias" / "napari.yaml"
TOP_LEVEL = ROOT / "napari.yaml"


@pytest.fixture(scope="module")
def manifest() -> npe2.PluginManifest:
    return npe2.PluginManifest.from_file(PACKAGED)


def test_top_level_copy_is_identical_to_the_packaged_manifest():
    assert TOP_LEVEL.read_bytes() == PACKAGED.read_bytes(), (
        "napari.yaml at the repository root must be a copy of src/napari_channelbias/napari.yaml: "
        "cp src/napari_channelbias/napari.yaml napari.yaml"
    )


def test_pyproject_points_napari_at_the_packaged_manifest():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'napari-channelbias = "napari_channelbias:napari.yaml"' in text
    assert '"napari.yaml"' in text  # package-data, so wheels carry it


def test_manifest_validates_and_every_python_name_imports(manifest):
    assert manifest.name == "napari-channelbias"
    manifest.validate_imports()  # what `npe2 validate --imports` runs; raises on the first bad name
    for command in manifest.contributions.commands:
        module, _, attr = command.python_name.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), command.python_name


def test_contributions_cover_widgets_readers_writers_and_sample(manifest):
    contrib = manifest.contributions
    assert {w.display_name for w in contrib.widgets} == {"Channel bias (2D+)", "Asymmetry panel"}
    assert contrib.readers[0].accepts_directories
    assert {"*.zarr", "*.h5"} <= set(contrib.readers[0].filename_patterns)
    kinds = {tuple(w.layer_types): set(w.filename_extensions) for w in contrib.writers}
    assert kinds == {("labels",): {".tif", ".tiff", ".zarr"}, ("image",): {".tif", ".tiff", ".zarr"}}
    assert [s.key for s in contrib.sample_data] == ["em_sample"]


def test_the_installed_plugin_resolves_to_this_manifest():
    """The entry point napari uses finds the same file (the package is installed editable)."""
    found = npe2.PluginManifest._from_package_or_name("napari-channelbias")
    assert found.name == "napari-channelbias"
    assert {c.id for c in found.contributions.commands} == {
        c.id for c in npe2.PluginManifest.from_file(PACKAGED).contributions.commands
    }
