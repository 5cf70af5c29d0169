"""Window sampling: bounded reads on a huge lazy volume, the same crops as the windowing code, seeded."""

from __future__ import annotations

import numpy as np
import pytest

from napari_channelbias.errors import ConfigError
from napari_channelbias.io.synthetic import CountingVolume
from napari_channelbias.transfer.sampling import fit_patch_size, plan_windows, sample_windows
from napari_channelbias.windowing import Normalizer, extract_window


def test_reads_only_the_sampled_crops_of_a_100_gb_volume():
    vol = CountingVolume((1600, 8192, 8192))  # 107 GB as uint8
    n, k, p = 12, 3, 64
    sample = sample_windows(vol, n=n, patch_size=p, window=k, seed=3)
    assert sample.windows.shape == (n, k, p, p)
    assert len(vol.reads) == sample.crops_read <= n * k
    assert all(pixels == p * p for _, pixels in vol.reads)  # crops only: no whole slice, no fit pass
    assert sample.windows.min() >= 0.0 and sample.windows.max() <= 1.0


def test_windows_equal_the_windowing_code_on_the_same_crop():
    rng = np.random.default_rng(0)
    vol = rng.integers(0, 1000, size=(6, 96, 128)).astype(np.uint16)
    sample = sample_windows(vol, n=10, patch_size=32, window=3, padding="mirror", seed=1)
    norm = Normalizer(mode="percentile", low=0.5, high=99.5, lo=sample.normalizer.lo, hi=sample.normalizer.hi)
    for pos, w in zip(sample.positions, sample.windows, strict=True):
        full = extract_window(vol, pos.z, 3, "mirror", normalizer=norm)
        np.testing.assert_array_equal(w, full[:, pos.y:pos.y + 32, pos.x:pos.x + 32])


def test_normaliser_is_fitted_on_the_crops():
    rng = np.random.default_rng(2)
    vol = rng.normal(100, 20, size=(5, 64, 64)).astype(np.float32)
    sample = sample_windows(vol, n=8, patch_size=32, window=1, seed=0)
    crops = np.stack([vol[p.z, p.y:p.y + 32, p.x:p.x + 32] for p in sample.positions]).astype(np.float64)
    lo, hi = np.percentile(crops, [0.5, 99.5])
    assert sample.normalizer.lo == pytest.approx(lo) and sample.normalizer.hi == pytest.approx(hi)
    raw = sample_windows(vol, n=8, patch_size=32, window=1, seed=0, normalization={"mode": "none"})
    np.testing.assert_array_equal(raw.windows[:, 0], crops.astype(np.float32))


def test_zero_padding_gives_zero_channels():
    vol = np.full((4, 64, 64), 7, dtype=np.uint8)
    vol[0] = 3
    sample = sample_windows(vol, n=8, patch_size=32, window=3, padding="zero", slices=range(0, 1), seed=0,
                            normalization={"mode": "none"})
    assert np.all(sample.windows[:, 0] == 0) and np.all(sample.windows[:, 1] == 3)
    assert np.all(sample.windows[:, 2] == 7)


def test_positions_are_distinct_grid_cells_and_seeded():
    a = plan_windows((50, 256, 320), n=40, patch_size=64, slices=range(50), seed=5)
    b = plan_windows((50, 256, 320), n=40, patch_size=64, slices=range(50), seed=5)
    c = plan_windows((50, 256, 320), n=40, patch_size=64, slices=range(50), seed=6)
    assert a == b and a != c
    assert len(set(a)) == 40
    assert all(p.y % 64 == 0 and p.x % 64 == 0 and p.y + 64 <= 256 and p.x + 64 <= 320 for p in a)
    small = plan_windows((2, 64, 64), n=10, patch_size=32, slices=range(2), seed=0)
    assert len(small) == 8  # every cell of 2 slices x 2 x 2, no more


def test_other_axis_reads_planes_along_it():
    vol = np.arange(64 * 40 * 64, dtype=np.float32).reshape(64, 40, 64)
    sample = sample_windows(vol, n=4, patch_size=32, window=1, axis=1, seed=0, normalization={"mode": "none"})
    for pos, w in zip(sample.positions, sample.windows, strict=True):
        np.testing.assert_array_equal(w[0], vol[pos.y:pos.y + 32, pos.z, pos.x:pos.x + 32])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 1}, "at least 2 windows"),
        ({"patch_size": 48}, "multiple of 32"),
        ({"patch_size": 128}, "exceeds"),
        ({"slices": range(9, 12)}, "outside"),
        ({"normalization": {"mode": "imagenet"}}, "not available"),
        ({"n": 4, "slices": range(0, 1), "patch_size": 64}, "only 1 window"),
    ],
)
def test_bad_settings_are_config_errors(kwargs, match):
    vol = np.zeros((8, 64, 64), dtype=np.uint8)
    with pytest.raises(ConfigError, match=match):
        sample_windows(vol, **{"n": 4, "patch_size": 32, **kwargs})


def test_patch_size_fits_small_planes():
    assert fit_patch_size((10, 512, 512)) == 128
    assert fit_patch_size((10, 100, 80)) == 64
    assert fit_patch_size((70, 10, 500), axis=1) == 64  # planes along axis 1 are 70 x 500
    with pytest.raises(ConfigError, match="smaller than 32"):
        fit_patch_size((4, 31, 64))
