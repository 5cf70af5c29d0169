import numpy as np
import pytest
import tifffile
import zarr

from napari_channelbias.errors import VolumeError
from napari_channelbias.io import formats
from napari_channelbias.io.read import open_volume
from napari_channelbias.io.write import VolumeWriter, write_volume


@pytest.fixture
def vol():
    return np.random.default_rng(0).integers(0, 255, (5, 12, 10), dtype=np.uint8)


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
    monkeypatch.setattr(formats, "BIGTIFF_THRESHOLD", vol.nbytes - 1)
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
