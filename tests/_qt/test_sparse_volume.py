"""In-memory layer volumes: memory only for the slices written, and napari edits them like numpy arrays."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from napari_channelbias._qt.sparse_volume import IN_PLANE_CHUNK, in_memory_volume, is_in_memory_volume

pytestmark = pytest.mark.gui


def test_only_written_chunks_take_memory_and_the_rest_reads_as_zeros():
    volume = in_memory_volume((6, 40, 3000), (0,), "float32")
    assert volume.chunks == (1, 40, IN_PLANE_CHUNK) and volume.dtype == np.float32
    empty = volume.nbytes_stored()
    assert empty < 2000  # metadata only
    slab = np.arange(40 * 3000, dtype=np.float32).reshape(40, 3000) + 1
    volume[4] = slab
    one_slice = 2 * 40 * IN_PLANE_CHUNK * 4  # its two chunks, uncompressed (zarr stores an edge chunk whole)
    assert volume.nbytes_stored() - empty == one_slice
    np.testing.assert_array_equal(volume[4], slab)
    assert not volume[3].any() and not volume[5, :, 2999].any()
    volume[2] = 0  # a slice of zeros is not stored at all
    assert volume.nbytes_stored() - empty == one_slice


def test_thin_axes_give_one_chunk_per_index():
    probs = in_memory_volume((2, 5, 8, 9), (0, 2), "float32")  # classes and the slice axis (y here)
    assert probs.chunks == (1, 5, 1, 9)


def test_is_in_memory_volume_tells_our_volumes_from_other_arrays(tmp_path):
    assert is_in_memory_volume(in_memory_volume((2, 4, 4), (0,), "uint8"))
    on_disk = zarr.create_array(store=str(tmp_path / "a.zarr"), shape=(2, 4, 4), dtype="uint8")
    assert not is_in_memory_volume(on_disk) and not is_in_memory_volume(np.zeros((2, 4, 4)))


def test_napari_paints_fills_and_undoes_on_a_labels_layer_of_it(make_napari_viewer):
    viewer = make_napari_viewer()
    volume = in_memory_volume((5, 64, 64), (0,), "uint8")
    volume[2] = 3
    labels = viewer.add_labels(volume, name="predicted")
    viewer.dims.set_current_step(0, 2)
    labels.brush_size = 5
    labels.selected_label = 1
    labels.paint((2, 30, 30), 1)
    painted = np.asarray(volume[2]) == 1
    assert painted[30, 30] and 1 < painted.sum() < 64  # a brush stroke, in the slice it was made in
    assert not np.asarray(volume[1]).any() and not np.asarray(volume[3]).any()
    labels.fill((2, 5, 5), 4)
    assert (np.asarray(volume[2]) == 4).sum() == 64 * 64 - painted.sum()  # the 3-region around the stroke
    labels.undo()
    assert not (np.asarray(volume[2]) == 4).any() and (np.asarray(volume[2]) == 3).sum() == 64 * 64 - painted.sum()
