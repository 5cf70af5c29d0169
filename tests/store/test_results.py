"""The results store: create/open, NGFF metadata validated by ome-zarr's own readers, settings guard."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from napari_channelbias.errors import ChannelBiasError
from napari_channelbias.store import ResultsStore, labels_key, prediction_key, saliency_key

SETTINGS = {"checkpoint": "m.pt", "tile": 64}


def _filled(path, ngff="0.4", shape=(4, 40, 48)):
    store = ResultsStore.create(path, shape, scale=(2.0, 0.5, 0.25), translation=(1.0, 3.0, 4.0), ngff=ngff)
    probs, labels = store.prediction("m", classes=1, axis=0, probability_dtype="uint8", label_dtype="uint8",
                                     settings=SETTINGS, card={"model": {"window": 3}})
    sal = store.saliency("m", "full-output", window=3, axis=0, settings=SETTINGS)
    rng = np.random.default_rng(0)
    for z in range(shape[0]):
        probs.write_slice(z, rng.integers(0, 256, shape[1:], dtype=np.uint8))
        labels.write_slice(z, rng.integers(0, 2, shape[1:], dtype=np.uint8))
        sal.write_slice(z, rng.random((3, *shape[1:]), dtype=np.float32))
    return store


@pytest.mark.parametrize("ngff", ["0.4", "0.5"])
def test_metadata_validates_with_ome_zarr_models(tmp_path, ngff):
    import ome_zarr_models
    from ome_zarr_models.v04.image import Image as Image04
    from ome_zarr_models.v04.image_label import ImageLabel as Label04
    from ome_zarr_models.v05.image import Image as Image05
    from ome_zarr_models.v05.image_label import ImageLabel as Label05

    _filled(tmp_path / "r.ome.zarr", ngff)
    image_cls, label_cls = (Image04, Label04) if ngff == "0.4" else (Image05, Label05)
    for key, cls in ((prediction_key("m"), image_cls), (labels_key("m"), label_cls),
                     (saliency_key("m", "full-output"), image_cls)):
        group = zarr.open_group(str(tmp_path / "r.ome.zarr" / key), mode="r")
        assert isinstance(ome_zarr_models.open_ome_zarr(group), cls), key
    assert zarr.open_group(str(tmp_path / "r.ome.zarr"), mode="r").metadata.zarr_format == (2 if ngff == "0.4" else 3)


def test_ome_zarr_reader_sees_the_image_its_labels_and_channel_names(tmp_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    _filled(tmp_path / "r.ome.zarr")
    nodes = list(Reader(parse_url(str(tmp_path / "r.ome.zarr" / prediction_key("m"))))())
    assert nodes[0].data[0].shape == (4, 40, 48)
    assert any(n.metadata.get("name") == "segmentation" for n in nodes[1:])
    sal = list(Reader(parse_url(str(tmp_path / "r.ome.zarr" / saliency_key("m", "full-output"))))())[0]
    assert sal.metadata["channel_names"] == ["z-1", "z", "z+1"]
    assert [a["name"] for a in sal.metadata["axes"]] == ["c", "z", "y", "x"]


def test_napari_ome_zarr_opens_the_prediction_with_its_labels(tmp_path):
    napari_ome_zarr = pytest.importorskip("napari_ome_zarr._reader")
    store = _filled(tmp_path / "r.ome.zarr")
    reader = napari_ome_zarr.napari_get_reader(str(tmp_path / "r.ome.zarr" / prediction_key("m")))
    layers = reader(str(tmp_path / "r.ome.zarr" / prediction_key("m")))
    kinds = sorted(kind for _, _, kind in layers)
    assert kinds == ["image", "labels"]
    image = next(data for data, _, kind in layers if kind == "image")
    labels = next(data for data, _, kind in layers if kind == "labels")
    np.testing.assert_array_equal(np.asarray(labels[0][1]), store.get(labels_key("m")).read_slice(1))
    np.testing.assert_array_equal(np.asarray(image[0][2]), store.get(prediction_key("m")).read_slice(2))
    meta = next(m for _, m, kind in layers if kind == "image")
    np.testing.assert_allclose(meta["scale"], [2.0, 0.5, 0.25])
    # napari-ome-zarr 0.10 drops the dataset's translation (its affine stays at 0); ours keeps it, see below.


def test_scale_translation_and_cards_survive_reopening(tmp_path):
    _filled(tmp_path / "r.ome.zarr")
    store = ResultsStore.open(tmp_path / "r.ome.zarr")
    assert store.scale == (2.0, 0.5, 0.25) and store.translation == (1.0, 3.0, 4.0)
    assert store.cards() == {"m": {"model": {"window": 3}}}
    assert {e["kind"] for e in store.entries().values()} == {"probabilities", "labels", "saliency"}
    ms = dict(zarr.open_group(str(tmp_path / "r.ome.zarr" / prediction_key("m")), mode="r").attrs)["multiscales"]
    assert ms[0]["datasets"][0]["coordinateTransformations"] == [
        {"type": "scale", "scale": [2.0, 0.5, 0.25]}, {"type": "translation", "translation": [1.0, 3.0, 4.0]}]


def test_other_settings_or_another_image_are_refused(tmp_path):
    store = _filled(tmp_path / "r.ome.zarr")
    with pytest.raises(ChannelBiasError, match="other settings.*tile"):
        store.saliency("m", "full-output", window=3, axis=0, settings={**SETTINGS, "tile": 32})
    assert store.saliency("m", "full-output", window=3, axis=0, settings=dict(SETTINGS)).done_mask().all()
    with pytest.raises(ChannelBiasError, match="shape"):
        ResultsStore.create(tmp_path / "r.ome.zarr", (5, 40, 48))
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    with pytest.raises(ChannelBiasError, match="not a napari-channelbias results store"):
        ResultsStore.open(tmp_path / "plain.zarr")
    with pytest.raises(ChannelBiasError, match="no results store"):
        ResultsStore.open(tmp_path / "absent")


def test_runs_are_recorded_in_order(tmp_path):
    store = ResultsStore.create(tmp_path / "r.ome.zarr", (2, 8, 8))
    store.record_run({"kind": "predict", "slices": [0]})
    store.record_run({"kind": "saliency", "slices": (1,)})
    assert ResultsStore.open(tmp_path / "r.ome.zarr").runs() == [
        {"kind": "predict", "slices": [0]}, {"kind": "saliency", "slices": [1]}]
