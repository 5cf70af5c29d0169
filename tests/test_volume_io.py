import sys

import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from napari_channelbias import volume_io
from napari_channelbias.errors import ChannelBiasError, ConfigError, VolumeError
from napari_channelbias.volume_io import (
    SliceFolder,
    VolumeWriter,
    open_volume,
    parse_slices,
    validate_image,
    validate_labels,
    volume_scale,
    write_volume,
)


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


# ----------------------------------------------------------------------------------------- validation
def test_valid_image_passes(vol):
    validate_image(vol, window=5)
    validate_image(vol.astype(np.float32), window=3)


@pytest.mark.parametrize(
    ("shape", "window", "words"),
    [
        ((64, 64), 3, ["2-D", "at least 3 slices", "3-D stack"]),
        ((64, 64, 3), 3, ["colour", "RGB", "grayscale", "channel"]),
        ((64, 64, 4), 3, ["RGBA"]),
        ((2, 3, 8, 8), 3, ["4-D", "pick one channel"]),
        ((4, 8, 8, 3), 3, ["colour images"]),
        ((2, 8, 8), 3, ["2 slice", "at least 3 slices"]),
        ((4, 8, 8), 5, ["4 slice", "window 5"]),
        ((5, 0, 8), 3, ["empty axis"]),
    ],
)
def test_bad_images_are_explained(shape, window, words):
    with pytest.raises(VolumeError) as info:
        validate_image(np.zeros(shape, np.uint8), window=window, name="image")
    for word in words:
        assert word in str(info.value)
    assert str(shape) in str(info.value)


def test_slice_count_along_another_axis():
    validate_image(np.zeros((2, 8, 8), np.uint8), window=3, axis=1)
    with pytest.raises(VolumeError, match="2 slice.*along axis 2"):
        validate_image(np.zeros((8, 8, 2), np.uint8), window=3, axis=2)


@pytest.mark.parametrize(("bad", "word"), [(np.nan, "1 NaN"), (np.inf, "1 Inf")])
def test_non_finite_values_name_the_slice(bad, word):
    data = np.zeros((4, 8, 8), np.float32)
    data[2, 3, 3] = bad
    with pytest.raises(VolumeError, match=f"slice 2 has .*{word}"):
        validate_image(data)
    validate_image(data, check_values=False)


def test_labels_must_match_the_image_shape():
    with pytest.raises(VolumeError, match=r"\(4, 8, 8\).*\(4, 8, 9\)"):
        validate_labels(np.zeros((4, 8, 8), np.uint8), (4, 8, 9), n_classes=1)


def test_binary_labels_stored_as_0_255():
    labels = np.zeros((3, 4, 4), np.uint8)
    labels[1, 1, 1] = 255
    with pytest.raises(VolumeError, match=r"found 0, 255.*divide by 255.*labels > 0"):
        validate_labels(labels, labels.shape, n_classes=1)
    validate_labels(labels // 255, labels.shape, n_classes=1)


def test_multiclass_labels_out_of_range_list_values():
    labels = np.arange(12, dtype=np.uint16).reshape(3, 2, 2)
    expected = (
        r"outside 0\.\.2 \(3 classes\): found 0, 1, 2, 3, 4, 5, 6, 7 \(\+4 more\), "
        r"out of range 3, 4, 5, 6 \(\+5 more\)"
    )
    with pytest.raises(VolumeError, match=expected):
        validate_labels(labels, labels.shape, n_classes=3)
    validate_labels(labels % 3, labels.shape, n_classes=3)
    with pytest.raises(VolumeError, match="non-integer"):
        validate_labels(np.full((2, 2, 2), 0.5), (2, 2, 2), n_classes=2)
    with pytest.raises(ConfigError, match="n_classes"):
        validate_labels(labels, labels.shape, n_classes=0)


# ------------------------------------------------------------------------------------------- slices
@pytest.mark.parametrize(
    ("text", "expected"),
    [(None, range(10)), ("", range(10)), ("5:10", range(5, 10)), ("5:", range(5, 10)),
     (":3", range(0, 3)), ("7", range(7, 8)), ("-2:", range(8, 10)), ("0:10:3", range(0, 10, 3)),
     ("-1", range(9, 10))],
)
def test_parse_slices(text, expected):
    assert parse_slices(text, 10) == expected


@pytest.mark.parametrize("text", ["10", "3:12", "a:b", "5:5", "1:2:3:4", "::0"])
def test_parse_slices_errors_name_the_valid_range(text):
    with pytest.raises(ConfigError, match=r"valid indices 0\.\.9"):
        parse_slices(text, 10)


# -------------------------------------------------------------------------------------------- writing
@pytest.mark.parametrize("name", ["out.tif", "out.tiff", "out.zarr"])
def test_write_volume_round_trip(tmp_path, vol, name):
    path = write_volume(tmp_path / name, vol)
    assert path == tmp_path / name
    np.testing.assert_array_equal(np.asarray(open_volume(path)[:]), vol)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_write_volume_from_a_lazy_source_and_bool(tmp_path, vol):
    src = zarr.open_array(str(tmp_path / "src.zarr"), mode="w", shape=vol.shape, dtype=vol.dtype)
    src[:] = vol
    write_volume(tmp_path / "copy.tif", src)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "copy.tif"), vol)
    write_volume(tmp_path / "mask.tif", vol > 100)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "mask.tif"), (vol > 100).astype(np.uint8))


def test_write_volume_zarr_v2_and_chunks(tmp_path, vol):
    write_volume(tmp_path / "v2.zarr", vol, chunks=(1, 4, 5), zarr_format=2)
    arr = zarr.open_array(str(tmp_path / "v2.zarr"), mode="r")
    assert arr.metadata.zarr_format == 2 and arr.chunks == (1, 4, 5)
    np.testing.assert_array_equal(arr[:], vol)


def test_bigtiff_above_threshold(tmp_path, vol, monkeypatch):
    monkeypatch.setattr(volume_io, "BIGTIFF_THRESHOLD", vol.nbytes - 1)
    write_volume(tmp_path / "big.tif", vol)
    with tifffile.TiffFile(tmp_path / "big.tif") as tif:
        assert tif.is_bigtiff
    write_volume(tmp_path / "small.tif", vol[:2])
    with tifffile.TiffFile(tmp_path / "small.tif") as tif:
        assert not tif.is_bigtiff


def test_unsupported_output_type(tmp_path, vol):
    with pytest.raises(VolumeError, match=r"\.tif/\.tiff file or a \.zarr folder"):
        write_volume(tmp_path / "out.png", vol)


@pytest.mark.parametrize("name", ["out.tif", "out.zarr"])
def test_streaming_writer_commits_on_clean_exit(tmp_path, vol, name):
    with VolumeWriter(tmp_path / name, vol.shape, vol.dtype) as writer:
        writer[0] = vol[0]
        writer[1:5] = vol[1:5]
        assert not (tmp_path / name).exists()  # nothing under the target name until committed
    np.testing.assert_array_equal(np.asarray(open_volume(tmp_path / name)[:]), vol)


@pytest.mark.parametrize("name", ["out.tif", "out.zarr"])
def test_writer_for_stacks_of_volumes_and_other_axes(tmp_path, name):
    # A (class, Z, Y, X) probability stack written one slice along Y at a time, as prediction does.
    data = np.random.default_rng(2).random((2, 3, 4, 5)).astype(np.float32)
    with VolumeWriter(tmp_path / name, data.shape, np.float32) as writer:
        for y in range(4):
            writer[:, :, y] = data[:, :, y]
    if name.endswith(".zarr"):
        assert zarr.open_array(str(tmp_path / name), mode="r").chunks == (1, 1, 4, 5)
        back = zarr.open_array(str(tmp_path / name), mode="r")[:]
    else:
        back = tifffile.imread(tmp_path / name)
    np.testing.assert_array_equal(back, data)


def test_write_2d_image(tmp_path):
    image = np.arange(12, dtype=np.uint16).reshape(3, 4)
    for name in ("plane.tif", "plane.zarr"):
        np.testing.assert_array_equal(np.asarray(open_volume(write_volume(tmp_path / name, image))[:]), image)


@pytest.mark.parametrize("name", ["out.tif", "out.zarr"])
def test_exception_in_writer_keeps_previous_target(tmp_path, vol, name):
    target = write_volume(tmp_path / name, vol)
    with pytest.raises(RuntimeError, match="cancelled"):
        with VolumeWriter(target, vol.shape, vol.dtype) as writer:
            writer[0] = np.zeros_like(vol[0])
            raise RuntimeError("cancelled")
    np.testing.assert_array_equal(np.asarray(open_volume(target)[:]), vol)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_abort_and_generator_close_keep_previous_target(tmp_path, vol):
    target = write_volume(tmp_path / "out.zarr", vol)
    writer = VolumeWriter(target, vol.shape, vol.dtype)
    writer[0] = np.zeros_like(vol[0])
    writer.abort()
    with pytest.raises(RuntimeError, match="closed"):
        writer[1] = vol[1]

    def job():  # how the core's generators use the writer
        with VolumeWriter(tmp_path / "out.zarr", vol.shape, vol.dtype) as w:
            for z in range(vol.shape[0]):
                w[z] = 255 - vol[z]
                yield z

    gen = job()
    next(gen)
    gen.close()  # cancel between two events
    np.testing.assert_array_equal(np.asarray(open_volume(target)[:]), vol)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr"]
    for _ in job():  # run to the end: the new output replaces the old one
        pass
    np.testing.assert_array_equal(np.asarray(open_volume(target)[:]), 255 - vol)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr"]


# ------------------------------------------------------------------------------------------ real data
def test_real_isbi_stack_opens_lazily_and_validates(isbi_dir):
    image = open_volume(isbi_dir / "train-volume.tif")
    labels = open_volume(isbi_dir / "train-membranes.tif")
    assert image.shape == labels.shape == (30, 512, 512) and image.dtype == np.uint8
    validate_image(image, window=7)
    validate_labels(labels, image.shape, n_classes=1)
    membrane = np.mean([np.asarray(labels[z]).mean() for z in (0, 15, 29)])
    assert 0.15 < membrane < 0.30
    with pytest.raises(VolumeError, match="outside 0..1"):  # the original 0/255 encoding is caught
        validate_labels(np.asarray(labels[:2]) * 255, (2, 512, 512), n_classes=1)
