"""Slice asymmetry metrics: exact values on hand-made distributions, agreement with scipy, symmetry properties."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

from napari_channelbias.asymmetry.metrics import (
    BHATTACHARYYA_DISJOINT,
    _w1_cdf,
    bhattacharyya,
    cdf_pair,
    empirical_cdf,
    histogram256,
    jensen_shannon,
    joint_scale,
    joint_scale_factor,
    slice_asymmetry,
    wasserstein_1d,
)
from napari_channelbias.errors import ConfigError, VolumeError


def saliency(k: int, size: int = 32, seed: int = 0, gains: tuple[float, ...] | None = None) -> np.ndarray:
    """Seeded non-negative maps (K, size, size), channel c multiplied by gains[c]."""
    rng = np.random.default_rng(seed)
    maps = rng.exponential(size=(k, size, size)).astype(np.float32)
    if gains is not None:
        maps *= np.asarray(gains, dtype=np.float32)[:, None, None]
    return maps


def mirror_symmetric(k: int, seed: int = 0) -> np.ndarray:
    maps = saliency(k, seed=seed)
    for c in range(k // 2):
        maps[k - 1 - c] = maps[c]
    return maps


# --- joint scaling ---------------------------------------------------------------------------------------


def test_joint_scale_puts_joint_percentile_at_255_and_clips():
    maps = saliency(3, size=64, gains=(1.0, 2.0, 3.0))
    scaled = joint_scale(maps)
    assert scaled.dtype == np.float32
    assert joint_scale_factor(maps) * np.percentile(maps.astype(np.float64), 99.9) == pytest.approx(255.0)
    assert scaled.max() == 255.0
    assert np.mean(scaled == 255.0) == pytest.approx(0.001, abs=2 / maps.size)  # the top 0.1% clipped
    assert scaled.min() >= 0.0


@pytest.mark.parametrize("percentile", [100.0, 99.9, 99.0, 50.0, 0.01])
@pytest.mark.parametrize("k", [3, 5])
def test_joint_scale_factor_uses_numpy_linear_percentile(percentile, k):
    maps = saliency(k, size=17, seed=k, gains=tuple(1.0 + c for c in range(k)))
    expected = 255.0 / np.percentile(maps.astype(np.float64), percentile)
    assert joint_scale_factor(maps, percentile) == pytest.approx(expected, rel=1e-12)


def test_joint_scale_keeps_ratios_between_channels():
    base = saliency(1, size=16)[0]
    maps = np.stack([base, 2 * base, 4 * base])
    scaled = joint_scale(maps, percentile=100.0)  # the max maps to 255: nothing is clipped
    np.testing.assert_allclose(scaled[1], 2 * scaled[0], rtol=1e-6)
    np.testing.assert_allclose(scaled[2], 4 * scaled[0], rtol=1e-6)
    shares = slice_asymmetry(maps, percentile=100.0).shares
    np.testing.assert_allclose(shares, [1 / 7, 2 / 7, 4 / 7], rtol=1e-6)


def test_joint_scale_of_all_zero_slice_stays_zero():
    maps = np.zeros((3, 8, 8), np.float32)
    assert joint_scale_factor(maps) == 1.0
    assert not joint_scale(maps).any()


def test_joint_scale_of_sparse_maps_uses_the_maximum():
    maps = np.zeros((3, 32, 32), np.float32)
    maps[1, 0, 0] = 2.0  # 1 of 3072 values: the 99.9th percentile is 0
    assert joint_scale(maps)[1, 0, 0] == 255.0


def test_joint_scale_rejects_bad_percentile():
    with pytest.raises(ConfigError, match="percentile"):
        joint_scale(saliency(3), percentile=0.0)


# --- W1 --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "m"), [(1, 1), (5, 5), (4096, 4096), (1, 7), (100, 37), (3000, 4096)])
def test_w1_equals_scipy_on_random_data(n, m):
    rng = np.random.default_rng(n * 1000 + m)
    a = rng.exponential(size=n).astype(np.float32)
    b = (rng.exponential(size=m) * 1.3 + 0.2).astype(np.float32)
    expected = wasserstein_distance(a.ravel(), b.ravel())
    assert wasserstein_1d(a, b) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert wasserstein_1d(b, a) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_cdf_fallback_for_huge_inputs_equals_scipy():
    rng = np.random.default_rng(9)
    a, b = np.sort(rng.exponential(size=300)), np.sort(rng.integers(0, 3, size=77).astype(np.float64))
    assert _w1_cdf(a, b) == pytest.approx(wasserstein_distance(a, b), rel=1e-12)


def test_w1_equals_scipy_with_ties_and_2d_inputs():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 4, size=(16, 16)).astype(np.float32)
    b = rng.integers(0, 6, size=(8, 20)).astype(np.float32)
    assert wasserstein_1d(a, b) == pytest.approx(wasserstein_distance(a.ravel(), b.ravel()), rel=1e-12)


def test_w1_hand_made():
    assert wasserstein_1d(np.zeros(10), np.full(10, 5.0)) == 5.0  # two point masses
    assert wasserstein_1d(np.zeros(3), np.full(7, 5.0)) == 5.0  # point masses, unequal sizes
    assert wasserstein_1d([0, 1, 3], [5, 6, 8]) == 5.0
    uniform = np.linspace(0.0, 1.0, 1001)
    assert wasserstein_1d(uniform, uniform + 0.3) == pytest.approx(0.3, abs=1e-12)  # shift
    assert wasserstein_1d(uniform, uniform[::2] + 0.3) == pytest.approx(0.3, abs=1e-12)
    # F_a = 2/3 and F_b = 1/2 on [0, 1): W1 = 1/6
    assert wasserstein_1d([0, 0, 1], [0, 1]) == pytest.approx(1 / 6, rel=1e-12)
    assert wasserstein_1d([2.0, 2.0], [2.0]) == 0.0


def test_w1_of_empty_input_raises():
    with pytest.raises(ValueError):
        wasserstein_1d(np.array([]), np.ones(3))


def test_shaded_cdf_area_equals_w1():
    rng = np.random.default_rng(5)
    a, b = rng.exponential(size=300), rng.exponential(size=200) * 1.5
    grid = np.union1d(a, b)
    x, fa = empirical_cdf(a, grid)
    _, fb = empirical_cdf(b, grid)
    area = float(np.sum(np.diff(x) * np.abs(fa - fb)[:-1]))
    assert area == pytest.approx(wasserstein_1d(a, b), rel=1e-12)


def test_cdf_pair_area_equals_w1_exactly_on_union_and_within_two_spacings_on_grid():
    rng = np.random.default_rng(6)
    a, b = rng.exponential(size=(20, 20)), rng.exponential(size=(10, 30)) * 2.0
    x, fa, fb = cdf_pair(a, b)
    assert np.sum(np.diff(x) * np.abs(fa - fb)[:-1]) == pytest.approx(wasserstein_1d(a, b), rel=1e-12)
    x, fa, fb = cdf_pair(a, b, max_points=200)
    assert x.size == 200
    assert abs(np.sum(np.diff(x) * np.abs(fa - fb)[:-1]) - wasserstein_1d(a, b)) <= 2 * (x[1] - x[0])


def test_empirical_cdf_without_grid_is_a_step_function_to_one():
    x, f = empirical_cdf(np.array([3.0, 1.0, 1.0, 2.0]))
    np.testing.assert_array_equal(x, [1.0, 2.0, 3.0])
    np.testing.assert_allclose(f, [0.5, 0.75, 1.0])


# --- histogram metrics -----------------------------------------------------------------------------------


def test_histogram256_matches_numpy_histogram():
    values = np.random.default_rng(1).uniform(0, 255, size=10_000)
    np.testing.assert_array_equal(histogram256(values), np.histogram(values, bins=256, range=(0, 255))[0])
    assert histogram256(np.array([255.0, 300.0, -1.0]))[[0, 255]].tolist() == [1, 2]


def test_jensen_shannon_hand_made():
    assert jensen_shannon([3, 1, 0], [6, 2, 0]) == 0.0
    assert jensen_shannon([1, 0], [0, 1]) == 1.0  # base 2: disjoint gives the maximum 1
    # m = (0.75, 0.25): 0.5 * log2(4/3) + 0.5 * (0.5 log2(2/3) + 0.5 log2(2))
    expected = 0.5 * math.log2(4 / 3) + 0.25 * (math.log2(2 / 3) + 1.0)
    assert jensen_shannon([1, 0], [1, 1]) == pytest.approx(expected, rel=1e-12)
    p, q = np.array([5.0, 1, 0, 2]), np.array([1.0, 1, 3, 0])
    assert jensen_shannon(p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2, rel=1e-10)


def test_bhattacharyya_hand_made_and_disjoint_cap():
    assert bhattacharyya([2, 2], [5, 5]) == 0.0
    assert bhattacharyya([1, 0], [1, 1]) == pytest.approx(0.5 * math.log(2), rel=1e-12)  # BC = sqrt(1/2)
    assert bhattacharyya([1, 0], [0, 1]) == BHATTACHARYYA_DISJOINT
    # finite values are at most 0.5 ln(n m); the cap is at least that for up to 1e12 values each
    assert math.isfinite(BHATTACHARYYA_DISJOINT)
    assert BHATTACHARYYA_DISJOINT >= 0.5 * math.log(1e12 * 1e12) - 1e-12


# --- slice metrics ---------------------------------------------------------------------------------------


def test_slice_metrics_equal_scipy_for_k3():
    maps = saliency(3, size=48, gains=(0.7, 1.0, 1.4))
    s = slice_asymmetry(maps)
    scaled = joint_scale(maps).reshape(3, -1)
    w = {(i, j): wasserstein_distance(scaled[i], scaled[j]) for i, j in [(0, 1), (0, 2), (1, 2)]}
    assert s.swd == pytest.approx(w[0, 2], rel=1e-12)
    assert s.fwd == pytest.approx(np.mean(list(w.values())), rel=1e-12)
    assert s.w1[2][1] == pytest.approx(w[1, 2], rel=1e-12)
    hist = [np.histogram(ch, bins=256, range=(0, 255))[0] for ch in scaled]
    assert s.js_sym == pytest.approx(jensenshannon(hist[0], hist[2], base=2) ** 2, rel=1e-9)
    bc = np.sum(np.sqrt(hist[0] / hist[0].sum() * hist[2] / hist[2].sum()))
    assert s.bhatt_sym == pytest.approx(-math.log(bc), rel=1e-9)
    np.testing.assert_allclose(s.shares, scaled.sum(axis=1) / scaled.sum(), rtol=1e-6)
    assert s.scale == pytest.approx(joint_scale_factor(maps))
    assert json.loads(json.dumps(s.to_dict()))["w1"][0][2] == s.swd


def test_swd_of_shifted_channels_equals_shift_without_scaling():
    base = saliency(1, size=32)[0]
    maps = np.stack([base, base + 1.0, base + 2.5])
    s = slice_asymmetry(maps, scaling="none")
    assert s.swd == pytest.approx(2.5, rel=1e-6)
    assert s.fwd == pytest.approx((1.0 + 2.5 + 1.5) / 3, rel=1e-6)


@pytest.mark.parametrize("k", [3, 5, 7])
def test_mirror_symmetric_maps_have_zero_symmetric_metrics(k):
    s = slice_asymmetry(mirror_symmetric(k, seed=k))
    assert s.swd == 0.0 and s.js_sym == 0.0 and s.bhatt_sym == 0.0
    assert s.fwd > 0.0 and s.js_full > 0.0
    np.testing.assert_allclose(s.shares, s.shares[::-1], rtol=1e-12)


@pytest.mark.parametrize("k", [3, 5, 7])
def test_reversing_channels_keeps_swd_fwd_and_reverses_shares(k):
    maps = saliency(k, seed=k, gains=tuple(1.0 + 0.3 * c for c in range(k)))
    s, r = slice_asymmetry(maps), slice_asymmetry(maps[::-1])
    for name in ("swd", "fwd", "js_sym", "js_full", "bhatt_sym", "bhatt_full"):
        assert getattr(r, name) == pytest.approx(getattr(s, name), rel=1e-12)
    np.testing.assert_allclose(r.shares, s.shares[::-1], rtol=1e-12)
    np.testing.assert_allclose(np.array(r.w1), np.array(s.w1)[::-1, ::-1], rtol=1e-12)


@pytest.mark.parametrize("k", [3, 5])
def test_full_metrics_invariant_under_channel_permutation(k):
    maps = saliency(k, seed=10 + k, gains=tuple(1.0 + 0.5 * c for c in range(k)))
    perm = np.random.default_rng(k).permutation(k)
    s, p = slice_asymmetry(maps), slice_asymmetry(maps[perm])
    for name in ("fwd", "js_full", "bhatt_full"):
        assert getattr(p, name) == pytest.approx(getattr(s, name), rel=1e-12)


def test_all_zero_slice_is_symmetric_with_equal_shares():
    s = slice_asymmetry(np.zeros((5, 8, 8), np.float32))
    assert s.swd == s.fwd == s.js_full == s.bhatt_full == 0.0
    assert s.shares == (0.2,) * 5


@pytest.mark.parametrize(
    ("maps", "error", "match"),
    [
        (np.ones((1, 8, 8), np.float32), ConfigError, "at least 3"),
        (np.ones((4, 8, 8), np.float32), ConfigError, "odd"),
        (np.ones((8, 8), np.float32), VolumeError, "shape"),
        (-np.ones((3, 8, 8), np.float32), VolumeError, "non-negative"),
        (np.full((3, 8, 8), np.nan, np.float32), VolumeError, "NaN"),
    ],
)
def test_bad_maps_raise_clear_errors(maps, error, match):
    with pytest.raises(error, match=match):
        slice_asymmetry(maps)


def test_unknown_scaling_lists_options():
    with pytest.raises(ConfigError, match="joint, none"):
        slice_asymmetry(saliency(3), scaling="minmax")
