"""Saliency layers: in-memory layers that hold only the slices computed, the memory bound of whole-volume
ones, store-backed layers that follow the store."""

from __future__ import annotations

import numpy as np
import pytest

from napari_channelbias._qt.saliency_layers import check_memory_budget, prepare_layers, show_slice
from napari_channelbias._qt.saliency_results import SaliencyRecord, SaliencyRequest
from napari_channelbias._qt.sparse_volume import MEMORY_FRACTION, is_in_memory_volume, memory_budget
from napari_channelbias._qt.store_layers import ChannelView
from napari_channelbias.errors import ConfigError
from napari_channelbias.store import ResultsStore

pytestmark = pytest.mark.gui


def test_the_budget_is_a_share_of_the_available_memory():
    import psutil

    assert 0 < memory_budget() <= MEMORY_FRACTION * psutil.virtual_memory().total
    check_memory_budget((8, 64, 64), [3, 3])  # 0.4 MB: fine
    voxels = int(memory_budget() // (2 * 3 * 4)) + 1_000_000  # two K = 3 models: just over
    with pytest.raises(ConfigError, match=r"2 model\(s\).*type a results store path \(DIR\.ome\.zarr\)"):
        check_memory_budget((voxels, 1, 1), [3, 3])


def test_store_backed_layers_read_the_store_and_show_slices_written_later(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((4, 24, 32), np.uint8), name="em", scale=(3.0, 1.0, 1.0))
    store = ResultsStore.create(tmp_path / "em.ome.zarr", (4, 24, 32))
    stored = store.saliency("m", "full-output", window=3, axis=0, settings={})
    request = SaliencyRequest("m", "full-output", (), ("em",), "em", 3, 0)
    layers = prepare_layers(viewer, request, image, stored, store.path)
    assert [ly.name for ly in layers] == ["m saliency z-1", "m saliency z", "m saliency z+1"]
    assert all(isinstance(ly.data, ChannelView) and ly.data.shape == (4, 24, 32) for ly in layers)
    np.testing.assert_array_equal(layers[0].scale, image.scale)
    viewer.dims.set_current_step(0, 2)
    assert not np.asarray(layers[2]._slice.image.raw).any()  # drawn before the slice exists: zeros
    maps = np.random.default_rng(0).random((3, 24, 32)).astype(np.float32)
    stored.write_slice(2, maps)
    record = SaliencyRecord(request, layers, store=stored, store_path=store.path)
    show_slice(record, 2, maps)  # refreshes: the layers re-read the store (no stale cached chunk)
    np.testing.assert_array_equal(np.asarray(layers[2]._slice.image.raw), maps[2])
    assert record.computed == {2} and len({tuple(ly.contrast_limits) for ly in layers}) == 1
    assert layers[0].contrast_limits[1] == pytest.approx(float(np.percentile(maps, 99.9)))
    # an in-memory request for the same model replaces the store-backed layers with in-memory volumes
    memory = prepare_layers(viewer, request, image)
    assert all(is_in_memory_volume(ly.data) for ly in memory) and len(viewer.layers) == 4


def test_in_memory_layers_of_a_volume_beyond_ram_hold_only_the_slices_computed(make_napari_viewer):
    import dask.array as da
    import psutil

    viewer = make_napari_viewer()
    # 1200 x 8192 x 8192 uint8 (80 GB), lazy: three float32 layers of it would be 966 GB, far beyond this
    # machine's RAM and swap, so np.zeros of them is refused; only the computed slice may take memory
    shape = (1200, 8192, 8192)
    assert 3 * 4 * np.prod(shape) > psutil.virtual_memory().total + psutil.swap_memory().total
    image = viewer.add_image(da.zeros(shape, dtype=np.uint8, chunks=(1, 2048, 2048)), name="big",
                             contrast_limits=(0, 255))
    request = SaliencyRequest("m", "full-output", (), ("big",), "big", 3, 0)
    layers = prepare_layers(viewer, request, image)
    assert all(is_in_memory_volume(ly.data) and ly.data.shape == shape for ly in layers)
    assert all(ly.data.nbytes_stored() < 2**20 for ly in layers)  # metadata only: nothing allocated
    maps = np.zeros((3, 8192, 8192), np.float32)  # one full slice's maps
    maps[:, :64, :64] = np.random.default_rng(1).random((3, 64, 64))
    record = SaliencyRecord(request, layers)
    show_slice(record, 700, maps)
    for c, ly in enumerate(layers):
        # one 2048 x 2048 chunk: the rest of the slice is zeros, which zarr does not store at all
        assert 2048 * 2048 * 4 <= ly.data.nbytes_stored() < 2048 * 2048 * 4 + 2**20
        np.testing.assert_array_equal(np.asarray(ly.data[700]), maps[c])
        assert not np.asarray(ly.data[699, :64, :64]).any()  # an unwritten slice reads as zeros
    np.testing.assert_array_equal(record.maps({}, 700), maps)  # what the asymmetry panel reads
