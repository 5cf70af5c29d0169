"""Opening a CLI-made results store in a real viewer brings back the asymmetry panel's figures, nothing recomputed."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_channelbias._qt.asymmetry_panel import AsymmetryPanel, volume_cell
from napari_channelbias._qt.main_widget import ChannelBiasWidget
from napari_channelbias._qt.saliency_results import saliency_results
from napari_channelbias.cli.main import main
from napari_channelbias.store import ResultsStore, open_table, saliency_key
from qt_helpers import SHAPE

pytest_plugins = ["qt_helpers"]
pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def cli_store(tmp_path_factory, checkpoint_file, sample_volume):
    """``channelbias saliency --store`` then ``channelbias asymmetry --store`` on the sample as a TIFF."""
    d = tmp_path_factory.mktemp("stored")
    tifffile.imwrite(d / "em.tif", sample_volume[0], imagej=True, resolution=(0.25, 0.25), metadata={"spacing": 40.0})
    base = ["--checkpoint", str(checkpoint_file), "--image", str(d / "em.tif"), "--method", "full-output",
            "--store", str(d / "em.ome.zarr"), "--name", "m", "--device", "cpu", "--quiet"]
    assert main(["saliency", *base]) == 0
    assert main(["asymmetry", *base, "--json"]) == 0
    return d / "em.ome.zarr"


def test_an_opened_store_gives_records_and_the_panel_shows_the_stored_summary(make_napari_viewer, qtbot,
                                                                              cli_store, capsys):
    capsys.readouterr()
    viewer = make_napari_viewer()
    dock = ChannelBiasWidget(viewer)
    viewer.window.add_dock_widget(dock)
    store = ResultsStore.open(cli_store)
    before = store.get(saliency_key("m", "full-output")).done_mask().copy()
    table = open_table(store, "tables/m/asymmetry-full-output")
    summary = table.summary

    viewer.open(str(cli_store), plugin="napari-channelbias")  # what a drop or File > Open does
    record = saliency_results(dock.workspace).get("m")
    assert record is not None and record.store is not None
    assert record.computed == set(range(SHAPE[0])) and record.request.window == 3
    assert record.layers == [viewer.layers[f"m full-output {c}"] for c in ("z-1", "z", "z+1")]
    np.testing.assert_array_equal(record.maps(dock.workspace.saliency, 3),
                                  store.get(saliency_key("m", "full-output")).read_slice(3))
    assert record.volume.to_dict() == summary  # the stored summary, read back whole
    assert sorted(record.per_slice) == [row["z"] for row in table.rows()]
    assert record.per_slice[2].swd == pytest.approx(table.rows()[2]["swd"])
    assert dock.data.store_path() == str(cli_store)  # the store's image comes with its store

    panel = AsymmetryPanel(viewer, dock.workspace)
    qtbot.addWidget(panel)
    panel.update_all()
    assert panel.volume_table.item(0, 0).text() == volume_cell(
        summary["pooled"]["swd"], summary["slice_mean"]["swd"], summary["slice_se"]["swd"])
    pooled = next(r for r in panel.rows() if r["scope"] == "pooled")
    assert pooled["swd"] == pytest.approx(summary["pooled"]["swd"], rel=1e-12)
    # nothing was computed: the store is as the CLI left it, and no job ran
    np.testing.assert_array_equal(store.get(saliency_key("m", "full-output")).done_mask(), before)
    assert len(dock.workspace.saliency) == 0

    viewer.layers.remove("m full-output z")  # its layers gone: so is the record
    assert saliency_results(dock.workspace).get("m") is None


def test_a_store_opened_before_the_dock_is_adopted_when_the_dock_opens(make_napari_viewer, qtbot, cli_store):
    viewer = make_napari_viewer()
    viewer.open(str(cli_store), plugin="napari-channelbias")  # `channelbias gui STORE` adds layers first
    dock = ChannelBiasWidget(viewer)
    viewer.window.add_dock_widget(dock)
    record = saliency_results(dock.workspace).get("m")
    assert record is not None and record.volume is not None and record.volume.n_slices == SHAPE[0]
    assert "store em.ome.zarr" in dock.sections["Saliency"].status.text()
