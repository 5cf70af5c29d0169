"""The drivers writing into a results store: interrupted runs resume, and equal a clean run exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_channelbias.errors import ChannelBiasError
from napari_channelbias.events import run_to_end
from napari_channelbias.models.inputs import InputSettings
from napari_channelbias.saliency.volume import saliency_events
from napari_channelbias.segmentation.prediction import predict_events
from napari_channelbias.store import ResultsStore, labels_key, prediction_key, saliency_key
from napari_channelbias.store.sinks import weights_digest
from napari_channelbias.windowing import Normalizer
from saliency_models import SmallCNN

SETTINGS = InputSettings(window=3, normalizer=Normalizer(mode="minmax", lo=0.0, hi=255.0))


def _volume(shape=(6, 40, 36), seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _stored(store, key):
    image = store.get(key)
    return np.asarray(image.levels[0][:]), image.done_mask()


def test_interrupted_prediction_resumes_and_equals_a_clean_run(tmp_path):
    model, vol = SmallCNN(seed=1), _volume()
    clean = run_to_end(predict_events(model, SETTINGS, vol, store=tmp_path / "clean.ome.zarr", model_name="m",
                                      tile=32, overlap=8))
    gen = predict_events(model, SETTINGS, vol, store=tmp_path / "cut.ome.zarr", model_name="m", tile=32, overlap=8)
    for _ in range(3):
        next(gen)
    gen.close()  # a cancel between two slices
    cut = ResultsStore.open(tmp_path / "cut.ome.zarr")
    np.testing.assert_array_equal(cut.get(labels_key("m")).done_mask(), [1, 1, 1, 0, 0, 0])
    events = []
    run_to_end(predict_events(model, SETTINGS, vol, store=tmp_path / "cut.ome.zarr", model_name="m",
                              tile=32, overlap=8), events.append)
    assert [e.z for e in events] == [3, 4, 5]  # only the rest was computed
    assert clean.store_path == tmp_path / "clean.ome.zarr" and clean.labels is None  # nothing in memory
    a, b = ResultsStore.open(tmp_path / "clean.ome.zarr"), ResultsStore.open(tmp_path / "cut.ome.zarr")
    for key in (labels_key("m"), prediction_key("m")):
        (da, ma), (db, mb) = _stored(a, key), _stored(b, key)
        assert ma.all() and mb.all()
        np.testing.assert_array_equal(da, db)
    # the stored probabilities are round(255 p) of the in-memory path, the labels equal it
    mem = run_to_end(predict_events(model, SETTINGS, vol, probabilities=True, tile=32, overlap=8))
    np.testing.assert_array_equal(_stored(a, labels_key("m"))[0], mem.labels)
    np.testing.assert_array_equal(_stored(a, prediction_key("m"))[0], np.rint(mem.probabilities * 255))


def test_interrupted_saliency_resumes_reads_back_done_slices_and_equals_a_clean_run(tmp_path):
    model, vol = SmallCNN(seed=2), _volume((5, 32, 32), seed=3)
    clean = run_to_end(saliency_events(model, SETTINGS, vol, "full-output", store=tmp_path / "c.ome.zarr",
                                       model_name="m"))
    assert clean == tmp_path / "c.ome.zarr"
    gen = saliency_events(model, SETTINGS, vol, "full-output", store=tmp_path / "r.ome.zarr", model_name="m",
                          slices=[4, 0, 2, 1, 3])
    assert [next(gen).z for _ in range(2)] == [4, 0]
    gen.close()
    seen = {}
    run_to_end(saliency_events(model, SETTINGS, vol, "full-output", store=tmp_path / "r.ome.zarr",
                               model_name="m"), lambda e: seen.__setitem__(e.z, e.result))
    assert sorted(seen) == [0, 1, 2, 3, 4]  # every slice is yielded, the done ones read back
    key = saliency_key("m", "full-output")
    (da, _), (db, mb) = _stored(ResultsStore.open(tmp_path / "c.ome.zarr"), key), _stored(
        ResultsStore.open(tmp_path / "r.ome.zarr"), key)
    assert mb.all()
    np.testing.assert_array_equal(da, db)
    mem = run_to_end(saliency_events(model, SETTINGS, vol, "full-output"))  # (Z, K, Y, X)
    np.testing.assert_array_equal(da, mem.transpose(1, 0, 2, 3))
    np.testing.assert_array_equal(seen[4], mem[4])


def test_another_model_under_the_same_name_is_refused(tmp_path):
    vol = _volume((3, 32, 32))
    run_to_end(predict_events(SmallCNN(seed=1), SETTINGS, vol, store=tmp_path / "s.ome.zarr", model_name="m"))
    with pytest.raises(ChannelBiasError, match="other settings.*weights"):
        run_to_end(predict_events(SmallCNN(seed=5), SETTINGS, vol, store=tmp_path / "s.ome.zarr", model_name="m"))
    with pytest.raises(ChannelBiasError, match="not both"):
        run_to_end(saliency_events(SmallCNN(), SETTINGS, vol, "full-output", out=tmp_path / "x.zarr",
                                   store=tmp_path / "s.ome.zarr"))


def test_weights_digest_sees_every_value():
    model = SmallCNN(seed=1)
    before = weights_digest(model)
    with torch.no_grad():
        model[2].bias[0] += 1e-7
    assert weights_digest(model) != before and weights_digest(SmallCNN(seed=1)) == before


def test_stored_saliency_options_are_those_the_method_uses():
    from napari_channelbias.store.sinks import saliency_options

    cli = {"points": 100, "patch": 16, "seed": 0, "target": None, "tile": None}  # the CLI passes all it has
    gui = {"target": None}  # the GUI only the shown ones
    assert saliency_options("full-output", cli) == saliency_options("full-output", gui) == {}
    assert saliency_options("occlusion", {**cli, "compile": False}) == {"patch": 16}
    assert saliency_options("full-output-points", {**cli, "target": 1, "compile": True}) == {
        "compile": True, "points": 100, "seed": 0, "target": 1}


def test_a_store_made_from_a_relative_image_path_records_it_absolute(tmp_path, monkeypatch):
    import tifffile

    from napari_channelbias.store.sinks import store_for_image

    tifffile.imwrite(tmp_path / "em.tif", _volume())
    monkeypatch.chdir(tmp_path)
    store = store_for_image("em.ome.zarr", "em.tif")
    assert store.info["image"]["source"] == str(tmp_path / "em.tif")
    monkeypatch.chdir("/")  # opened from elsewhere, the source still names the file
    assert ResultsStore.open(tmp_path / "em.ome.zarr").info["image"]["source"] == str(tmp_path / "em.tif")
