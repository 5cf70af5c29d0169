"""Stored images: slice writes at every level, the done mask, shapes checked, lazy levels."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from napari_channelbias.errors import ChannelBiasError
from napari_channelbias.store import ResultsStore


def test_a_large_plane_gets_a_pyramid_of_strided_levels(tmp_path):
    store = ResultsStore.create(tmp_path / "r.ome.zarr", (2, 4100, 40), scale=(1.0, 0.5, 0.5))
    sal = store.saliency("m", "occlusion", window=3, axis=0, settings={})
    assert [lv.shape for lv in sal.levels] == [(3, 2, 4100, 40), (3, 2, 2050, 20), (3, 2, 1025, 10)]
    plane = np.random.default_rng(1).random((3, 4100, 40), dtype=np.float32)
    sal.write_slice(1, plane)
    np.testing.assert_array_equal(sal.read_slice(1, level=2), plane[:, ::4, ::4])
    assert sal.levels[0].chunks == (3, 1, 1024, 40)  # one slice thick: a slice owns its chunks
    ms = dict(zarr.open_group(str(tmp_path / "r.ome.zarr" / sal.key), mode="r").attrs)["multiscales"][0]
    assert [d["coordinateTransformations"][0]["scale"] for d in ms["datasets"]] == [
        [1.0, 1.0, 0.5, 0.5], [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 2.0, 2.0]]


def test_done_mask_follows_the_slices_written(tmp_path):
    store = ResultsStore.create(tmp_path / "r.ome.zarr", (5, 8, 8))
    probs, labels = store.prediction("m", classes=1, axis=0, probability_dtype="uint8", label_dtype="uint8",
                                     settings={})
    assert labels.missing([4, 0, 2]) == [4, 0, 2]
    labels.write_slice(2, np.ones((8, 8), np.uint8))
    assert labels.missing([4, 0, 2]) == [4, 0]
    assert probs.missing(range(5)) == [0, 1, 2, 3, 4]  # each image has its own mask
    again = ResultsStore.open(tmp_path / "r.ome.zarr").get(labels.key)
    np.testing.assert_array_equal(again.done_mask(), [False, False, True, False, False])


def test_other_axes_and_classes(tmp_path):
    store = ResultsStore.create(tmp_path / "r.ome.zarr", (4, 6, 10))
    probs, labels = store.prediction("m", classes=3, axis=2, probability_dtype="float32", label_dtype="uint8",
                                     settings={})
    assert probs.shape == (3, 4, 6, 10) and probs.spec.slice_axis == 3
    plane = np.random.default_rng(0).random((3, 4, 6), dtype=np.float32)
    probs.write_slice(7, plane)
    np.testing.assert_array_equal(np.asarray(probs.levels[0][:, :, :, 7]), plane)
    with pytest.raises(ChannelBiasError, match=r"shape \(4, 6\).*expects \(3, 4, 6\)"):
        probs.write_slice(0, plane[0])
    assert labels.levels[0].chunks == (4, 6, 1)


def test_lazy_levels_are_dask_arrays_reading_the_store(tmp_path):
    store = ResultsStore.create(tmp_path / "r.ome.zarr", (3, 8, 8))
    _, labels = store.prediction("m", classes=1, axis=0, probability_dtype="uint8", label_dtype="uint8",
                                 settings={})
    labels.write_slice(1, np.full((8, 8), 1, np.uint8))
    (lazy,) = labels.lazy_levels()
    assert type(lazy).__name__ == "Array" and lazy.shape == (3, 8, 8)
    assert int(lazy.sum().compute()) == 64
