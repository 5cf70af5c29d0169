import numpy as np
import pytest
import torch

from napari_channelbias.tiling import blend_weight, crop_to, iter_tiles, pad_to_multiple, padded_size, tile_starts


def test_padded_size():
    assert padded_size(1) == 32
    assert padded_size(32) == 32
    assert padded_size(33) == 64


def test_pad_and_crop_roundtrip():
    x = torch.arange(3 * 40 * 50, dtype=torch.float32).reshape(1, 3, 40, 50)
    p, size = pad_to_multiple(x)
    assert p.shape == (1, 3, 64, 64)
    assert torch.equal(crop_to(p, size), x)
    # reflection: row 40 mirrors row 38
    assert torch.equal(p[..., 40, :50], x[..., 38, :])


def test_tile_starts_cover_and_align_end():
    starts = tile_starts(100, 32, 8)
    assert starts[0] == 0 and starts[-1] == 100 - 32
    covered = np.zeros(100, bool)
    for s in starts:
        covered[s : s + 32] = True
    assert covered.all()
    assert all(b - a <= 32 - 8 for a, b in zip(starts, starts[1:], strict=False))
    assert tile_starts(20, 32, 8) == [0]
    with pytest.raises(ValueError):
        tile_starts(100, 32, 32)


def test_iter_tiles_cover_slice_exactly_once_when_no_overlap():
    count = np.zeros((64, 96), int)
    for t in iter_tiles(64, 96, 32, 0):
        count[t.slices] += 1
    assert (count == 1).all()


def test_blend_weight_positive_and_symmetric():
    w = blend_weight(10, 12, 3)
    assert w.min() > 0 and w.max() == 1.0
    assert np.array_equal(w, w[::-1, ::-1])
