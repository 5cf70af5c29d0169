"""Opening a results store in a real viewer: lazy multiscale layers and stored summaries, no recompute."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_channelbias._qt.launch import launch
from napari_channelbias._qt.saliency_results import saliency_results
from napari_channelbias._qt.store_layers import is_results_store, stored_asymmetry
from napari_channelbias.asymmetry.volume import VolumeAsymmetry
from napari_channelbias.events import run_to_end
from napari_channelbias.models.inputs import InputSettings
from napari_channelbias.saliency.volume import saliency_events
from napari_channelbias.segmentation.prediction import predict_events
from napari_channelbias.store import ResultsStore, labels_key
from napari_channelbias.store.asymmetry import write_asymmetry
from napari_channelbias.store.sinks import store_for_image
from napari_channelbias.windowing import Normalizer
from napari_channelbias.workspace import workspace_for
from saliency_models import SmallCNN

pytest_plugins = ["qt_helpers"]
pytestmark = pytest.mark.gui
SETTINGS = InputSettings(window=3, normalizer=Normalizer(mode="minmax", lo=0.0, hi=255.0))


@pytest.fixture
def results(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (4, 40, 48), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "em.tif", image, imagej=True, resolution=(2.0, 2.0), metadata={"spacing": 3.0})
    store = store_for_image(tmp_path / "em.ome.zarr", tmp_path / "em.tif")
    model = SmallCNN(seed=1)
    run_to_end(predict_events(model, SETTINGS, image, store=store, model_name="m", tile=32, overlap=8))
    acc = VolumeAsymmetry(3)
    run_to_end(saliency_events(model, SETTINGS, image, "full-output", store=store, model_name="m"),
               lambda e: acc.add(e.z, e.result))
    result = acc.result()
    write_asymmetry(store, "m", "full-output", result, axis=0)
    return tmp_path / "em.ome.zarr", result


def test_the_reader_opens_a_store_as_lazy_layers(make_napari_viewer, results):
    path, _ = results
    assert is_results_store(path) and not is_results_store(path / "predictions")
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-channelbias")
    names = [layer.name for layer in viewer.layers]
    assert names == ["em", "m probability", "m labels", "m full-output z-1", "m full-output z",
                     "m full-output z+1"]
    labels = viewer.layers["m labels"]
    assert type(labels.data).__name__ == "Array"  # dask over the store: nothing loaded up front
    stored = ResultsStore.open(path).get(labels_key("m"))
    np.testing.assert_array_equal(np.asarray(labels.data[2]), stored.read_slice(2))
    for layer in viewer.layers:
        np.testing.assert_allclose(layer.scale, (3.0, 0.5, 0.5))


def test_channelbias_gui_store_brings_back_layers_and_the_asymmetry_summary(make_napari_viewer, results):
    path, result = results
    viewer = launch(path, viewer=make_napari_viewer(), run=False)
    assert "m full-output z+1" in [layer.name for layer in viewer.layers]
    record = saliency_results(workspace_for(viewer)).get("m")  # the docked Saliency section adopted it
    assert record.volume == result and record.per_slice == dict(result.series)
    summary = stored_asymmetry(path)["m full-output"]
    assert summary["pooled"]["swd"] == pytest.approx(result.pooled.swd)
    assert [row["z"] for row in summary["series"]] == [0, 1, 2, 3]


def test_channel_views_read_one_channel_per_level(tmp_path):
    from napari_channelbias._qt.store_layers import ChannelView, channel_views

    store = ResultsStore.create(tmp_path / "wide.ome.zarr", (2, 8, 2100))  # an edge above 2048: two levels
    image = store.saliency("m", "full-output", window=3, axis=0, settings={})
    maps = np.arange(3 * 8 * 2100, dtype=np.float32).reshape(3, 8, 2100)
    image.write_slice(1, maps)
    views = channel_views(image)
    assert len(views) == 3 and all(isinstance(v, list) and len(v) == 2 for v in views)
    full, half = views[2]
    assert isinstance(full, ChannelView) and full.shape == (2, 8, 2100) and half.shape == (2, 4, 1050)
    np.testing.assert_array_equal(full[1], maps[2])
    np.testing.assert_array_equal(half[1, :, :5], maps[2, ::2, :10:2])
    assert not np.asarray(full[0]).any() and full.dtype == np.float32
