"""The asymmetry panel in a real napari viewer: it shows exactly what the core computes for the slice."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from napari.utils.notifications import notification_manager
from qtpy.QtWidgets import QFileDialog

from napari_channelbias._qt.asymmetry_panel import NONE, AsymmetryPanel, format_value, volume_cell
from napari_channelbias._qt.saliency_dock import ALL_MODELS, SaliencySection
from napari_channelbias._qt.saliency_results import saliency_results
from napari_channelbias.asymmetry.figures import MODEL_COLORS
from napari_channelbias.asymmetry.metrics import METRICS, slice_asymmetry
from napari_channelbias.errors import ChannelBiasError
from napari_channelbias.llvm_guard import avoid_triton_llvm_clash
from napari_channelbias.models.checkpoints import ModelCard
from napari_channelbias.models.factory import build_model
from napari_channelbias.models.spec import ModelSpec
from napari_channelbias.sample_data import make_sample
from napari_channelbias.windowing import Normalizer
from napari_channelbias.workspace import Workspace

pytestmark = pytest.mark.gui
WAIT_MS = 120_000


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return make_sample(shape=(5, 64, 64), seed=1)[0]


@pytest.fixture(scope="module")
def models(image):
    """Two untrained lite0 U-Nets (different seeds) with cards, built once for the module."""
    import torch

    avoid_triton_llvm_clash()  # building imports torch._dynamo; an earlier test's viewer may hold Mesa's LLVM
    spec = ModelSpec(arch="unet", encoder="efficientnet-lite0", init="random", window=3, classes=1)
    card = ModelCard(model=spec.to_dict(), normalization=Normalizer.fit(image).to_dict())
    out = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        out.append((build_model(spec)[0].eval(), card))
    return out


@pytest.fixture
def setup(make_napari_viewer, image, models):
    viewer = make_napari_viewer()
    viewer.add_image(image, name="sample")
    workspace = Workspace()
    workspace.add_model("lite0-a", *models[0])
    section = SaliencySection(viewer, workspace)
    panel = AsymmetryPanel(viewer, workspace)
    viewer.window.add_dock_widget(section, name="Saliency")
    viewer.window.add_dock_widget(panel, name="Asymmetry")
    return viewer, workspace, section, panel


def _compute(qtbot, section, panel, whole_volume=False):
    section.compute(whole_volume=whole_volume)
    qtbot.waitUntil(lambda: not section.busy, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not panel.pending, timeout=WAIT_MS)


def _move(qtbot, viewer, panel, z):
    viewer.dims.set_current_step(0, z)
    qtbot.waitUntil(lambda: all(v == z for v in panel.slice_z.values()) and not panel.pending, timeout=WAIT_MS)


def _column(panel, col):
    return [panel.slice_table.item(r, col).text() for r in range(panel.slice_table.rowCount())]


def _core(workspace, model, z):
    rec = saliency_results(workspace).get(model)
    return slice_asymmetry(workspace.saliency.get(rec.request.key(z)))


def _expected_column(metrics):
    scalars = metrics.scalars()
    return [format_value(scalars[k]) for k in (*METRICS, "share_0", "share_1", "share_2")]


def test_slider_moves_show_the_core_numbers_of_that_slice(setup, qtbot):
    viewer, workspace, section, panel = setup
    for z in (1, 3):
        viewer.dims.set_current_step(0, z)
        _compute(qtbot, section, panel)
    for z in (1, 3, 1):
        _move(qtbot, viewer, panel, z)
        expected = _core(workspace, "lite0-a", z)
        assert panel.slice_metrics["lite0-a"] == expected
        assert _column(panel, 0) == _expected_column(expected)
        shares = [p.get_height() for p in panel.ax_shares.patches]
        assert shares == pytest.approx(list(expected.shares))
    # The SWd-over-z plot has the two computed slices and marks the current one.
    line, marker = panel.ax_z.get_lines()[:2]
    assert list(line.get_xdata()) == [1, 3]
    assert list(line.get_ydata()) == pytest.approx([_core(workspace, "lite0-a", z).swd for z in (1, 3)])
    assert list(marker.get_xdata()) == [1, 1]

    _move(qtbot, viewer, panel, 2)  # not computed: empty column and a hint, no exception
    assert "lite0-a" not in panel.slice_metrics
    assert set(_column(panel, 0)) == {""}
    assert "slice 2 not computed" in panel.status.text()


def test_comparison_mode_draws_both_models_in_the_same_plots(setup, qtbot, models):
    viewer, workspace, section, panel = setup
    workspace.add_model("lite0-b", *models[1])
    section.model_combo.setCurrentText(ALL_MODELS)
    viewer.dims.set_current_step(0, 2)
    _compute(qtbot, section, panel)
    _move(qtbot, viewer, panel, 2)
    assert panel.compare_combo.currentText() == "lite0-b"  # picked for the user when a second appears
    assert panel.shown_models() == ["lite0-a", "lite0-b"]
    for col, model in enumerate(("lite0-a", "lite0-b")):
        assert _column(panel, col) == _expected_column(_core(workspace, model, 2))
    cdf_lines = panel.ax_cdf.get_lines()
    assert [ln.get_label() for ln in cdf_lines] == ["lite0-a z-1", "lite0-a z+1", "lite0-b z-1", "lite0-b z+1"]
    assert {ln.get_color() for ln in cdf_lines} == {MODEL_COLORS[0], MODEL_COLORS[1]}
    assert len(panel.ax_shares.patches) == 6
    assert {t.get_text() for t in panel.ax_cdf.get_legend().get_texts()} >= {"lite0-a z-1", "lite0-b z+1"}

    panel.compare_combo.setCurrentText(NONE)
    assert panel.shown_models() == ["lite0-a"]
    assert panel.slice_table.columnCount() == 1


def test_whole_volume_figures_after_a_volume_run(setup, qtbot):
    viewer, workspace, section, panel = setup
    assert not panel.volume_table.isVisibleTo(panel)
    _compute(qtbot, section, panel, whole_volume=True)
    result = saliency_results(workspace).get("lite0-a").volume
    assert result is not None
    assert panel.volume_table.isVisibleTo(panel)
    assert panel.volume_table.item(0, 0).text() == volume_cell(
        result.pooled.swd, result.slice_mean["swd"], result.slice_se["swd"])
    assert list(panel.ax_z.get_lines()[0].get_xdata()) == [0, 1, 2, 3, 4]


def test_exports_write_csv_and_png_atomically(setup, qtbot, tmp_path, monkeypatch):
    viewer, workspace, section, panel = setup
    _compute(qtbot, section, panel, whole_volume=True)
    out = panel.export_csv(tmp_path / "numbers.csv")
    rows = list(csv.DictReader(out.open()))
    assert [r["scope"] for r in rows] == ["slice"] * 5 + ["pooled", "slice_mean", "slice_se"]
    assert float(rows[2]["swd"]) == pytest.approx(_core(workspace, "lite0-a", 2).swd)
    assert {r["model"] for r in rows} == {"lite0-a"} and rows[0]["method"] == "full-output"

    # The button path: a file dialog, then an atomic write (no temporary left behind).
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: (str(tmp_path / "figure"), "PNG image (*.png)")))
    panel.png_button.click()
    assert (tmp_path / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figure.png", "numbers.csv"]


def test_nothing_to_show_or_export_is_explained_not_raised(setup, qtbot, tmp_path):
    viewer, workspace, section, panel = setup
    assert "No saliency yet" in panel.status.text()
    with pytest.raises(ChannelBiasError, match="nothing to export"):
        panel.export_csv(tmp_path / "x.csv")
    n = len(notification_manager.records)
    panel.csv_button.click()
    panel.png_button.click()
    messages = [str(r.message) for r in notification_manager.records[n:]]
    assert sum("nothing to export" in m for m in messages) == 2
    assert not list(tmp_path.iterdir())
    viewer.dims.set_current_step(0, 4)  # slider moves with nothing computed are harmless
    qtbot.wait(100)


def test_a_closed_panel_no_longer_listens_to_the_viewer(setup, qtbot):
    from qtpy.QtCore import QCoreApplication, QEvent

    viewer, workspace, section, _ = setup
    extra = AsymmetryPanel(viewer, workspace)
    listeners = len(viewer.dims.events.current_step.callbacks)
    extra.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert len(viewer.dims.events.current_step.callbacks) == listeners - 1
    n = len(notification_manager.records)
    viewer.dims.set_current_step(0, 3)
    qtbot.wait(100)
    assert not [r for r in notification_manager.records[n:] if "bug" in str(r.message)]
