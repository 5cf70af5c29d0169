import numpy as np
import pytest
import torch

from napari_channelbias.errors import ConfigError
from napari_channelbias.tiling import blend_weight, crop_to, pad_to_multiple, padded_size, plan_tiles, tile_starts


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


def test_plan_tiles_cover_slice_exactly_once_when_no_overlap():
    count = np.zeros((64, 96), int)
    for t in plan_tiles(64, 96, 32, 0):
        count[t.region] += 1
    assert (count == 1).all()


def test_blend_weight_positive_and_symmetric():
    w = blend_weight(10, 12, 3)
    assert w.min() > 0 and w.max() == 1.0
    assert np.array_equal(w, w[::-1, ::-1])


def test_single_tile_when_untiled_or_tile_covers_slice() -> None:
    for tile in (None, 128):
        (plan,) = plan_tiles(100, 70, tile, 16)
        assert plan.region == (slice(0, 100), slice(0, 70)) and plan.owned == plan.region


@pytest.mark.parametrize(
    ("height", "width", "tile", "overlap"), [(96, 96, 64, 32), (100, 77, 32, 8), (64, 200, 64, 0)]
)
def test_owned_regions_partition_the_slice_and_stay_inside_their_tiles(height, width, tile, overlap) -> None:
    plans = plan_tiles(height, width, tile, overlap)
    count = np.zeros((height, width), int)
    for plan in plans:
        count[plan.owned] += 1
        assert plan.y0 <= plan.own_y0 < plan.own_y1 <= plan.y1
        assert plan.x0 <= plan.own_x0 < plan.own_x1 <= plan.x1
        assert plan.y1 - plan.y0 <= tile and plan.x1 - plan.x0 <= tile
        # away from the slice border an owned pixel is at least overlap // 2 inside its tile
        for lo, own_lo, own_hi, hi, n in ((plan.y0, plan.own_y0, plan.own_y1, plan.y1, height),
                                          (plan.x0, plan.own_x0, plan.own_x1, plan.x1, width)):
            if lo > 0:
                assert own_lo - lo >= overlap // 2
            if hi < n:
                assert hi - own_hi >= overlap // 2
    assert (count == 1).all()


def test_bad_tile_settings_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="overlap"):
        plan_tiles(100, 100, 32, 32)
    with pytest.raises(ConfigError, match="tile"):
        plan_tiles(100, 100, 0, 0)
