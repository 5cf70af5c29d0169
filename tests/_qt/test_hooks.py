"""npe2 hooks: the reader claims slice folders / zarr / OME-Zarr / HDF5 only; writers round-trip; sample."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

pytest.importorskip("napari")

from napari_channelbias._qt.hooks import get_reader, layer_type_for, read_volume, sample_em, write_image, write_labels
from napari_channelbias.errors import VolumeError
from napari_channelbias.io.read import open_volume

VOLUME = np.arange(4 * 5 * 6, dtype=np.uint16).reshape(4, 5, 6)


def test_tiff_files_are_left_to_napari(tmp_path):
    tifffile.imwrite(tmp_path / "stack.tif", VOLUME, photometric="minisblack")
    assert get_reader(str(tmp_path / "stack.tif")) is None
    assert get_reader(str(tmp_path / "empty-folder")) is None
    assert get_reader([str(tmp_path / "a.zarr"), str(tmp_path / "b.zarr")]) is None


def test_slice_folder_opens_lazily_in_natural_order(tmp_path):
    folder = tmp_path / "slices"
    folder.mkdir()
    for z in range(4):
        tifffile.imwrite(folder / f"img{z * 5}.tif", VOLUME[z], photometric="minisblack")  # img0, img5, ..
    reader = get_reader(str(folder))
    assert reader is not None
    [(data, meta, kind)] = reader(str(folder))
    assert kind == "image" and meta["name"] == "slices"
    assert not isinstance(data, np.ndarray)  # lazy
    np.testing.assert_array_equal(np.asarray(data[:]), VOLUME)


def test_zarr_and_ome_zarr_with_voxel_size(tmp_path):
    zarr = pytest.importorskip("zarr")
    plain = tmp_path / "plain.zarr"
    zarr.open_array(str(plain), mode="w", shape=VOLUME.shape, dtype=VOLUME.dtype)[:] = VOLUME
    [(data, meta, kind)] = get_reader(str(plain))(str(plain))
    np.testing.assert_array_equal(data[:], VOLUME)
    assert meta["name"] == "plain" and "scale" not in meta

    ome = tmp_path / "cells.ome.zarr"
    group = zarr.open_group(str(ome), mode="w", zarr_format=2)
    group.create_array("0", shape=(1, 1, *VOLUME.shape), dtype=VOLUME.dtype)[:] = VOLUME[None, None]
    group.attrs["multiscales"] = [{
        "version": "0.4",
        "axes": [{"name": a} for a in "tczyx"],
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [1.0, 1.0, 50.0, 4.0, 4.0]}]}],
    }]
    [(data, meta, kind)] = get_reader(str(ome))(str(ome))
    assert tuple(data.shape) == VOLUME.shape and meta["scale"] == (50.0, 4.0, 4.0)
    np.testing.assert_array_equal(np.asarray(data[1]), VOLUME[1])


def test_hdf5_dataset_and_labels_by_name(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "stack.h5"
    with h5py.File(path, "w") as f:
        f["raw"] = VOLUME
        f["seg_labels"] = (VOLUME % 3).astype(np.uint8)
    assert get_reader(str(path)) is not None
    assert get_reader(f"{path}:/raw") is not None
    [(data, meta, kind)] = read_volume(f"{path}:/seg_labels")
    assert kind == "labels" and meta["name"] == "stack seg_labels"
    np.testing.assert_array_equal(data[:], VOLUME % 3)
    with pytest.raises(VolumeError, match="holds 2 datasets"):
        read_volume(str(path))


def test_layer_type_needs_an_integer_type_and_a_telling_name():
    assert layer_type_for("membrane_labels", np.uint8) == "labels"
    assert layer_type_for("mask", np.int32) == "labels"
    assert layer_type_for("mask", np.float32) == "image"
    assert layer_type_for("em", np.uint8) == "image"


@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
def test_writers_round_trip(tmp_path, suffix):
    labels = (VOLUME % 3).astype(np.uint8)
    [written] = write_labels(str(tmp_path / f"labels{suffix}"), labels, {"name": "l"})
    np.testing.assert_array_equal(np.asarray(open_volume(written)[:]), labels)
    saliency = np.linspace(0, 1, VOLUME.size, dtype=np.float32).reshape(VOLUME.shape)
    [written] = write_image(str(tmp_path / f"saliency{suffix}"), saliency, {"name": "s"})
    back = np.asarray(open_volume(written)[:])
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, saliency)


def test_four_d_saliency_stack_is_written_whole(tmp_path):
    stack = np.random.default_rng(0).random((3, *VOLUME.shape), dtype=np.float32)
    [written] = write_image(str(tmp_path / "maps.zarr"), stack, {"name": "maps"})
    import zarr

    np.testing.assert_array_equal(zarr.open_array(written, mode="r")[:], stack)


def test_writer_errors(tmp_path):
    with pytest.raises(VolumeError, match="non-integer type"):
        write_labels(str(tmp_path / "x.tif"), VOLUME.astype(np.float32), {"name": "x"})
    with pytest.raises(VolumeError, match=r"ending in \.tif"):
        write_labels(str(tmp_path / "x.png"), VOLUME, {"name": "x"})
    with pytest.raises(VolumeError, match="RGB image"):
        write_image(str(tmp_path / "x.tif"), np.zeros((4, 4, 3)), {"name": "x", "rgb": True})


def test_sample_gives_an_image_and_labels_with_a_voxel_size():
    (image, image_meta, image_kind), (labels, labels_meta, labels_kind) = sample_em()
    assert (image_kind, labels_kind) == ("image", "labels")
    assert image.shape == labels.shape == (32, 256, 256) and image.dtype == np.uint8
    assert image_meta["scale"] == labels_meta["scale"] == (50.0, 4.0, 4.0)
    assert set(np.unique(labels)) == {0, 1, 2}
    json.dumps(labels_meta["metadata"])  # plain data, safe to save with the layer
