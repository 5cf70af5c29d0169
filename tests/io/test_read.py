import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from napari_channelbias.errors import ChannelBiasError, VolumeError
from napari_channelbias.io.read import SliceFolder, open_volume, volume_scale


@pytest.fixture
def vol():
    return np.random.default_rng(0).integers(0, 255, (5, 12, 10), dtype=np.uint8)

def _same(lazy, expected):
    assert tuple(lazy.shape) == expected.shape and np.dtype(lazy.dtype) == expected.dtype
    assert lazy.ndim == 3
    np.testing.assert_array_equal(np.asarray(lazy[2]), expected[2])
    np.testing.assert_array_equal(np.asarray(lazy[1:4, 3:5]), expected[1:4, 3:5])



# ----------------------------------------------------------------------------------------------- TIFF
def test_multipage_tiff_is_memory_mapped(tmp_path, vol):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, vol)
    assert len(tifffile.TiffFile(path).pages) == 5
    v = open_volume(path)
    assert isinstance(v, np.memmap)
    _same(v, vol)


def test_ome_tiff_and_its_voxel_size(tmp_path, vol):
    path = tmp_path / "stack.ome.tif"
    tifffile.imwrite(
        path, vol, ome=True,
        metadata={"axes": "ZYX", "PhysicalSizeZ": 2.0, "PhysicalSizeY": 0.5, "PhysicalSizeX": 0.25},
    )
    _same(open_volume(path), vol)
    assert volume_scale(path) == (2.0, 0.5, 0.25)


def test_bigtiff(tmp_path, vol):
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, vol, bigtiff=True)
    assert tifffile.TiffFile(path).is_bigtiff
    _same(open_volume(path), vol)


def test_compressed_tiff_is_lazy(tmp_path, vol):
    path = tmp_path / "zlib.tiff"
    tifffile.imwrite(path, vol, compression="zlib")
    v = open_volume(path)
    assert not isinstance(v, np.ndarray)  # decoded page by page, never whole
    _same(v, vol)


def test_pyramidal_ome_tiff_opens_full_resolution(tmp_path, vol):
    path = tmp_path / "pyramid.ome.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(vol, subifds=1, compression="zlib", metadata={"axes": "ZYX"})
        tif.write(vol[:, ::2, ::2], subfiletype=1, compression="zlib")
    _same(open_volume(path), vol)


def test_corrupt_tiff(tmp_path):
    path = tmp_path / "broken.tif"
    path.write_bytes(b"this is not a tiff")
    with pytest.raises(VolumeError, match="not a readable TIFF"):
        open_volume(path)


def test_imagej_tiff_voxel_size(tmp_path, vol):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, vol, imagej=True, resolution=(1 / 0.5, 1 / 0.5), metadata={"spacing": 3.0})
    assert volume_scale(path) == pytest.approx((3.0, 0.5, 0.5))
    tifffile.imwrite(tmp_path / "plain.tif", vol)
    assert volume_scale(tmp_path / "plain.tif") is None


# ------------------------------------------------------------------------------------------ slice folder
def test_slice_folder_natural_order_and_lazy_reads(tmp_path):
    folder = tmp_path / "slices"
    folder.mkdir()
    # Written in an order where plain string sorting would be wrong (img10 < img2 as text).
    for value, name in [(10, "img10.tif"), (2, "img2.tif"), (1, "img1.tif")]:
        tifffile.imwrite(folder / name, np.full((6, 7), value, np.uint16))
    (folder / "notes.txt").write_text("ignored")
    (folder / "._img3.tif").write_bytes(b"macOS resource fork, not an image")
    v = open_volume(folder)
    assert isinstance(v, SliceFolder)
    assert v.shape == (3, 6, 7) and v.dtype == np.uint16 and v.ndim == 3
    assert [f.name for f in v.files] == ["img1.tif", "img2.tif", "img10.tif"]
    assert v[:, 0, 0].tolist() == [1, 2, 10]
    assert v[-1, 2:4, 1].tolist() == [10, 10]
    assert v[[2, 0]][:, 0, 0].tolist() == [10, 1]
    # A slice of the wrong size is only noticed when that slice is read: nothing else is touched.
    tifffile.imwrite(folder / "img2.tif", np.zeros((5, 5), np.uint16))
    assert v[0].sum() == 42
    with pytest.raises(VolumeError, match="img2.tif"):
        v[1]


def test_png_slice_folder(tmp_path, vol):
    folder = tmp_path / "png"
    folder.mkdir()
    for z in range(vol.shape[0]):
        Image.fromarray(vol[z]).save(folder / f"s_{z}.png")
    _same(open_volume(folder), vol)


def test_empty_folder(tmp_path):
    with pytest.raises(VolumeError, match="no .tif/.tiff/.png slices"):
        open_volume(tmp_path)


# ----------------------------------------------------------------------------------------------- zarr
@pytest.mark.parametrize("fmt", [2, 3])
def test_zarr_array(tmp_path, vol, fmt):
    path = tmp_path / f"v{fmt}.zarr"
    arr = zarr.open_array(str(path), mode="w", shape=vol.shape, dtype=vol.dtype, chunks=(1, 6, 10),
                          zarr_format=fmt)
    arr[:] = vol
    _same(open_volume(path), vol)


@pytest.mark.parametrize("fmt", [2, 3])
def test_zarr_group_with_one_array(tmp_path, vol, fmt):
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w", zarr_format=fmt)
    group.create_array("raw", shape=vol.shape, dtype=vol.dtype)[:] = vol
    _same(open_volume(tmp_path / "g.zarr"), vol)
    group.create_array("other", shape=(2, 2, 2), dtype="u1")
    with pytest.raises(VolumeError, match=r"2 arrays \(other, raw\)"):
        open_volume(tmp_path / "g.zarr")
    _same(open_volume(tmp_path / "g.zarr" / "raw"), vol)


@pytest.mark.parametrize("fmt", [2, 3])
def test_ome_zarr_takes_level_0_and_drops_t_c(tmp_path, vol, fmt):
    path = tmp_path / "ome.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=fmt)
    group.create_array("s0", shape=(1, 1, *vol.shape), dtype=vol.dtype)[:] = vol[None, None]
    group.create_array("s1", shape=(1, 1, 5, 6, 5), dtype=vol.dtype)
    multiscales = [{
        "version": "0.4" if fmt == 2 else "0.5",
        "axes": [{"name": a} for a in "tczyx"],
        "datasets": [
            {"path": "s0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 3.0, 0.5, 0.5]}]},
            {"path": "s1", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 3.0, 1.0, 1.0]}]},
        ],
    }]
    # NGFF 0.4 (zarr v2) keeps multiscales at the top of .zattrs; 0.5 (zarr v3) nests it under "ome".
    group.attrs.update({"multiscales": multiscales} if fmt == 2 else {"ome": {"multiscales": multiscales}})
    v = open_volume(path)
    _same(v, vol)
    assert v[:, 0, 0].shape == (5,)
    assert volume_scale(path) == (3.0, 0.5, 0.5)


def test_bad_zarr_stores(tmp_path):
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(VolumeError, match="not a readable zarr"):
        open_volume(tmp_path / "empty.zarr")
    group = zarr.open_group(str(tmp_path / "bad_ome.zarr"), mode="w")
    group.create_array("0", shape=(3, 4, 4), dtype="u1")
    group.create_array("1", shape=(3, 2, 2), dtype="u1")
    group.attrs["ome"] = {"multiscales": [{"datasets": []}]}
    with pytest.raises(VolumeError, match="no readable level 0"):
        open_volume(tmp_path / "bad_ome.zarr")
    zarr.open_group(str(tmp_path / "nothing.zarr"), mode="w")
    with pytest.raises(VolumeError, match="holds no array"):
        open_volume(tmp_path / "nothing.zarr")


# ----------------------------------------------------------------------------------------------- HDF5
def test_hdf5_dataset(tmp_path, vol):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("raw/volume", data=vol, chunks=(1, 12, 10))
    _same(open_volume(f"{path}:/raw/volume"), vol)
    _same(open_volume(path), vol)  # the only dataset in the file
    with pytest.raises(VolumeError, match="no dataset"):
        open_volume(f"{path}:/missing")
    with h5py.File(path, "a") as f:
        f.create_dataset("labels", data=vol)
    with pytest.raises(VolumeError, match="2 datasets"):
        open_volume(path)


def test_hdf5_without_h5py_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)  # what `import h5py` sees when it is not installed
    with pytest.raises(ChannelBiasError, match=r"pip install napari-channelbias\[hdf5\]"):
        open_volume(tmp_path / "x.h5:/raw")


# ------------------------------------------------------------------------------------ other inputs
def test_npy_is_memory_mapped(tmp_path, vol):
    np.save(tmp_path / "v.npy", vol)
    v = open_volume(tmp_path / "v.npy")
    assert isinstance(v, np.memmap)
    _same(v, vol)


def test_missing_path_and_unknown_type_name_supported_forms(tmp_path):
    with pytest.raises(VolumeError, match="no file or folder.*TIFF.*zarr.*HDF5"):
        open_volume(tmp_path / "nothing.tif")
    (tmp_path / "scan.mrc").write_bytes(b"\0" * 16)
    with pytest.raises(VolumeError, match=r"unknown file type '\.mrc'.*TIFF.*zarr"):
        open_volume(tmp_path / "scan.mrc")


# ------------------------------------------------------------------------------------ public entry point


def test_path_recognition_is_one_rule_for_the_reader_and_the_napari_hooks(tmp_path):
    from napari_channelbias.io.formats import is_slice_file, is_zarr_store, split_hdf5

    assert split_hdf5("a/stack.H5:/raw/em") == (Path("a/stack.H5"), "/raw/em")
    assert split_hdf5("stack.hdf5") == (Path("stack.hdf5"), None)
    assert split_hdf5("stack.tif") is None
    named, marked, plain = tmp_path / "x.zarr", tmp_path / "store", tmp_path / "plain"
    for d in (named, marked, plain):
        d.mkdir()
    (marked / "zarr.json").write_text("{}")
    assert is_zarr_store(named) and is_zarr_store(marked) and not is_zarr_store(plain)
    assert not is_zarr_store(tmp_path / "missing.zarr")
    (plain / "img1.tif").write_bytes(b"")
    (plain / "._img1.tif").write_bytes(b"")
    assert is_slice_file(plain / "img1.tif") and not is_slice_file(plain / "._img1.tif")
