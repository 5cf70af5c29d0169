"""Volume asymmetry: pooled metrics against the exact concatenated values, per-slice mean and SE, merging,
model comparison tables and aligned series."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from napari_channelbias.asymmetry.metrics import (
    bhattacharyya,
    histogram256,
    jensen_shannon,
    joint_scale,
    slice_asymmetry,
)
from napari_channelbias.asymmetry.volume import VolumeAsymmetry, aligned_series, compare_models, volume_asymmetry
from napari_channelbias.errors import ConfigError


def saliency(k: int, size: int = 32, seed: int = 0, gains: tuple[float, ...] | None = None) -> np.ndarray:
    """Seeded non-negative maps (K, size, size), channel c multiplied by gains[c]."""
    rng = np.random.default_rng(seed)
    maps = rng.exponential(size=(k, size, size)).astype(np.float32)
    if gains is not None:
        maps *= np.asarray(gains, dtype=np.float32)[:, None, None]
    return maps


def volume_slices(n: int = 5, k: int = 3, size: int = 24):
    return [(z, saliency(k, size=size, seed=100 + z, gains=tuple(1.0 + 0.4 * c for c in range(k))))
            for z in range(n)]


@pytest.mark.parametrize("bins", [1024, 65536])
def test_pooled_w1_within_one_bin_of_exact_concatenated_w1(bins):
    slices = volume_slices()
    res = volume_asymmetry(slices, window=3, bins=bins)
    scaled = np.concatenate([joint_scale(m).reshape(3, -1) for _, m in slices], axis=1)
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        exact = wasserstein_distance(scaled[i], scaled[j])
        assert abs(res.pooled.w1[i][j] - exact) <= res.w1_error_bound
    assert res.w1_error_bound == 255 / bins
    assert abs(res.pooled.swd - wasserstein_distance(scaled[0], scaled[2])) <= 255 / bins


def test_pooled_histogram_metrics_and_shares_are_exact():
    slices = volume_slices(k=5)
    res = volume_asymmetry(slices, window=5)
    scaled = np.concatenate([joint_scale(m).reshape(5, -1) for _, m in slices], axis=1)
    hist = [histogram256(ch) for ch in scaled]
    assert res.pooled.js_sym == pytest.approx(
        (jensen_shannon(hist[0], hist[4]) + jensen_shannon(hist[1], hist[3])) / 2, rel=1e-12)
    assert res.pooled.bhatt_sym == pytest.approx(
        (bhattacharyya(hist[0], hist[4]) + bhattacharyya(hist[1], hist[3])) / 2, rel=1e-12)
    np.testing.assert_allclose(res.pooled.shares, scaled.sum(axis=1) / scaled.sum(), rtol=1e-6)


def test_slice_mean_and_standard_error():
    slices = volume_slices(n=4)
    res = volume_asymmetry(slices, window=3)
    swd = np.array([slice_asymmetry(m).swd for _, m in slices])
    assert res.slice_mean["swd"] == pytest.approx(swd.mean(), rel=1e-12)
    assert res.slice_se["swd"] == pytest.approx(swd.std(ddof=1) / 2.0, rel=1e-12)
    assert set(res.slice_se) == {"swd", "fwd", "js_sym", "js_full", "bhatt_sym", "bhatt_full",
                                 "share_0", "share_1", "share_2"}
    z, values = res.series_of("swd")
    np.testing.assert_array_equal(z, [0, 1, 2, 3])
    np.testing.assert_allclose(values, swd)


def test_single_slice_has_nan_se_and_json_null():
    res = volume_asymmetry(volume_slices(n=1), window=3)
    assert math.isnan(res.slice_se["swd"])
    data = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert data["slice_se"]["swd"] is None and data["n_slices"] == 1
    assert "scale" not in data["pooled"] and data["series"][0]["z"] == 0


def test_merge_equals_sequential_accumulation():
    slices = volume_slices(n=6)
    whole = volume_asymmetry(slices, window=3)
    left, right = VolumeAsymmetry(3), VolumeAsymmetry(3)
    for z, m in slices:
        (left if z % 2 else right).add(z, m)
    assert left.merge(right).result() == whole
    with pytest.raises(ConfigError, match="settings"):
        VolumeAsymmetry(3).merge(VolumeAsymmetry(3, bins=1024))


def test_accumulator_guards():
    acc = VolumeAsymmetry(3)
    with pytest.raises(ValueError, match="no slices"):
        acc.result()
    acc.add(0, saliency(3))
    with pytest.raises(ValueError, match="already"):
        acc.add(0, saliency(3))
    with pytest.raises(ConfigError, match="window 3"):
        acc.add(1, saliency(5))
    with pytest.raises(ConfigError, match="at least 3"):
        VolumeAsymmetry(1)
    x, f = acc.pooled_cdf(0)
    assert x[-1] == 255.0 and f[-1] == 1.0 and np.all(np.diff(f) >= 0)


def test_rows_comparison_and_aligned_series():
    a = volume_asymmetry(volume_slices(n=3), window=3)
    b = volume_asymmetry(volume_slices(n=5)[2:], window=3)
    rows = a.to_rows()
    assert [r["scope"] for r in rows] == ["slice"] * 3 + ["pooled", "slice_mean", "slice_se"]
    assert rows[0]["z"] == 0 and rows[3]["swd"] == a.pooled.swd
    table = compare_models({"imagenet": a, "uniform-green": b})
    assert [r["model"] for r in table] == ["imagenet", "uniform-green"]
    assert table[1]["swd_mean"] == b.slice_mean["swd"] and table[0]["n_slices"] == 3
    z, series = aligned_series({"imagenet": a, "uniform-green": b}, "swd")
    np.testing.assert_array_equal(z, [0, 1, 2, 3, 4])
    assert np.isnan(series["uniform-green"][:2]).all() and np.isnan(series["imagenet"][3:]).all()
    assert series["imagenet"][2] == series["uniform-green"][2]  # slice 2 has the same maps in both


def test_result_from_dict_gives_back_what_to_dict_wrote():
    from napari_channelbias.asymmetry.volume import VolumeAsymmetryResult

    rng = np.random.default_rng(3)
    acc = VolumeAsymmetry(3)
    for z in (2, 0, 1):
        acc.add(z, rng.random((3, 10, 10)).astype(np.float32))
    result = acc.result()
    assert VolumeAsymmetryResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    one = VolumeAsymmetry(3)
    one.add(0, rng.random((3, 10, 10)).astype(np.float32))
    back = VolumeAsymmetryResult.from_dict(json.loads(json.dumps(one.result().to_dict())))
    assert math.isnan(back.slice_se["swd"]) and back.pooled == one.result().pooled  # JSON null -> nan
