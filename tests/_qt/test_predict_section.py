"""Predict section: slice / range / volume into aligned layers, equal to the core's result; cancel; errors."""

from __future__ import annotations

import numpy as np
import pytest

from napari_channelbias._qt.sparse_volume import is_in_memory_volume
from napari_channelbias.models.factory import load_checkpoint
from napari_channelbias.segmentation.prediction import predict_volume
from qt_helpers import SCALE, TRANSLATE, messages, wait_job

pytest_plugins = ["qt_helpers"]
pytestmark = pytest.mark.gui


@pytest.fixture
def loaded(widget, qtbot, checkpoint_file):
    wait_job(qtbot, widget.sections["Model"].load_checkpoint_file(checkpoint_file))
    predict = widget.sections["Predict"]
    predict.tile_spin.setValue(64)
    predict.overlap_spin.setValue(0)
    predict.device_combo.setCurrentText("cpu")
    return predict


def test_whole_volume_matches_the_core_and_is_aligned(loaded, em_viewer, qtbot, checkpoint_file, sample_volume):
    loaded.scope_combo.setCurrentText("whole volume")
    loaded.probability_check.setChecked(True)
    wait_job(qtbot, loaded.start())
    labels = em_viewer.layers["lite0-random labels"]
    probs = em_viewer.layers["lite0-random probability"]
    for layer in (labels, probs):
        assert tuple(layer.scale) == SCALE and tuple(layer.translate) == TRANSLATE
    model, card = load_checkpoint(checkpoint_file)
    expected = predict_volume(model, card, sample_volume[0], probabilities=True, tile=64, overlap=0,
                              device="cpu")
    np.testing.assert_array_equal(labels.data, expected.labels)
    np.testing.assert_allclose(probs.data, expected.probabilities, atol=1e-5)
    assert loaded.status.text() == "predicted 8 slice(s) into 'lite0-random labels'"


def test_whole_volume_into_a_results_store_shows_lazy_layers(loaded, em_viewer, qtbot, checkpoint_file,
                                                              sample_volume, tmp_path):
    loaded.scope_combo.setCurrentText("whole volume")
    loaded.store_edit.setText(str(tmp_path / "em.ome.zarr"))
    job = loaded.start()
    wait_job(qtbot, job)
    assert job.result.labels is None and job.result.store_path == tmp_path / "em.ome.zarr"  # nothing in memory
    labels, probs = em_viewer.layers["lite0-random labels"], em_viewer.layers["lite0-random probability"]
    assert type(labels.data).__name__ == "Array" and type(probs.data).__name__ == "Array"  # dask over zarr
    for layer in (labels, probs):
        assert tuple(layer.scale) == SCALE and tuple(layer.translate) == TRANSLATE
    model, card = load_checkpoint(checkpoint_file)
    expected = predict_volume(model, card, sample_volume[0], tile=64, overlap=0, device="cpu")
    np.testing.assert_array_equal(np.asarray(labels.data), expected.labels)
    wait_job(qtbot, loaded.start())  # a rerun finds every slice done: nothing is recomputed
    assert loaded._run["done"] == 0


def test_current_slice_and_range_fill_only_those_slices(loaded, em_viewer, qtbot):
    em_viewer.dims.set_point(0, TRANSLATE[0] + 6 * SCALE[0])
    loaded.scope_combo.setCurrentText("current slice")
    job = loaded.start()
    wait_job(qtbot, job)
    assert job.result.slices == (6,)
    loaded.scope_combo.setCurrentText("slice range")
    loaded.range_edit.setText("1:3")
    job = loaded.start()
    wait_job(qtbot, job)
    assert job.result.slices == (1, 2)
    layer = em_viewer.layers["lite0-random labels"]
    assert len(em_viewer.layers) == 3  # the same labels layer was reused
    untouched = [z for z in range(8) if z not in (1, 2, 6)]
    assert not np.asarray(layer.data)[untouched].any()
    assert is_in_memory_volume(layer.data)  # holds only the predicted slices


def test_cancel_keeps_finished_slices(loaded, qtbot):
    loaded.scope_combo.setCurrentText("whole volume")
    loaded.tile_spin.setValue(32)  # many small tiles: a slower run to cancel
    job = loaded.start()
    qtbot.waitUntil(lambda: loaded._run["done"] >= 1, timeout=120_000)
    loaded.cancel_button.click()
    wait_job(qtbot, job)
    assert job.cancelled
    assert loaded.status.text().startswith("cancelled after") and loaded.predict_button.isEnabled()


def test_errors_are_notifications(widget, loaded, em_viewer, notes):
    loaded.scope_combo.setCurrentText("slice range")
    loaded.range_edit.setText("")
    loaded.predict_button.click()
    assert messages(notes)[-1] == "Prediction: type the slices to predict as A:B (0..7)"
    widget.workspace.remove("lite0-random")
    loaded.predict_button.click()
    assert "no model is loaded" in messages(notes)[-1]


def test_no_image_layer(make_napari_viewer, qtbot, notes):
    from napari_channelbias._qt.main_widget import ChannelBiasWidget

    viewer = make_napari_viewer()
    dock = ChannelBiasWidget(viewer)
    qtbot.addWidget(dock)
    dock.workspace.add_model("m", object(), type("Card", (), {"axis": 0})())
    dock.sections["Predict"].predict_button.click()
    assert "no image layer is selected" in messages(notes)[-1]


def test_an_in_memory_run_beyond_the_memory_budget_is_refused_with_the_fix(loaded, em_viewer, qtbot, monkeypatch):
    from napari_channelbias._qt import sparse_volume
    from napari_channelbias.errors import ConfigError

    shape = em_viewer.layers["em"].data.shape
    labels_only = 2 * int(np.prod(shape))  # labels held twice: the core's result and the layer
    monkeypatch.setattr(sparse_volume, "memory_budget", lambda: labels_only)  # room for labels, not probabilities
    loaded.scope_combo.setCurrentText("whole volume")
    loaded.probability_check.setChecked(True)
    layers_before = len(em_viewer.layers)
    with pytest.raises(ConfigError, match=rf"predicting {shape[0]} slice\(s\) of a .* volume without a store "
                                          r"would hold .* GiB in memory.*type a results store path"):
        loaded.start()
    assert loaded.job is None and len(em_viewer.layers) == layers_before  # nothing started, no layer made
    loaded.probability_check.setChecked(False)
    wait_job(qtbot, loaded.start())  # labels alone fit
    assert loaded.job is None and "predicted 8 slice(s)" in loaded.status.text()
