"""Channel-asymmetry metrics of per-channel saliency maps (DESIGN section 2, "Asymmetry metrics").

A slice's saliency is ``S`` of shape ``(K, H, W)``, one non-negative map per input channel of an odd
window ``K = 2r + 1`` (channel ``c`` holds slice ``z - r + c``). These definitions are our
reconstruction of the paper's metrics:

- Joint scaling (default): one factor for all K maps of the slice so that their joint 99.9th percentile
  becomes 255, then values clipped at 255. Ratios between channels are kept. ``scaling="none"`` uses the
  values as given; the histogram metrics and the pooled volume distributions then count values above
  255 in the top bin, so "none" is meant for maps already on a 0..255 scale.
- W1: the 1-D Wasserstein distance between the empirical distributions of the values of two maps.
- SWd: mean W1 over the mirror pairs ``(c, K-1-c)``, ``c < r`` (for K = 3: W1(channel 0, channel 2)).
  FWd: mean W1 over all pairs ``c < c'``.
- JS: Jensen-Shannon *divergence* with base-2 logarithms (in [0, 1], 0 for equal histograms), on
  256-bin histograms over [0, 255]; ``js_sym`` averages the mirror pairs, ``js_full`` all pairs.
- Bhattacharyya distance ``-ln sum_k sqrt(p_k q_k)`` on the same histograms (``bhatt_sym``,
  ``bhatt_full``). Disjoint histograms would give infinity, which JSON cannot store; they give
  :data:`BHATTACHARYYA_DISJOINT` = -ln(1e-12) ~ 27.63 instead. Any finite value is at most
  0.5 ln(n m) for histograms of n and m values, below the cap up to 1e12 values each, so order is kept.
- Channel share ``a_c = sum S_c / sum S`` on the scaled maps. An all-zero slice has no asymmetry: every
  distance is 0 and every share is 1/K.

The volume-level metrics (:class:`VolumeAsymmetry`, :func:`volume_asymmetry`, :func:`compare_models`,
:func:`aligned_series`) live in :mod:`napari_channelbias.volume_asymmetry` and are re-exported here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from ..errors import ConfigError, VolumeError
from ..windowing import check_window

SCALINGS = ("joint", "none")
HIST_BINS = 256
MAX_VALUE = 255.0
BHATTACHARYYA_DISJOINT = -math.log(1e-12)
METRICS = ("swd", "fwd", "js_sym", "js_full", "bhatt_sym", "bhatt_full")


def mirror_pairs(window: int) -> list[tuple[int, int]]:
    """Channel pairs ``(c, K-1-c)`` for ``c < r``: the pairs z-reversal swaps."""
    return [(c, window - 1 - c) for c in range(window // 2)]


def all_pairs(window: int) -> list[tuple[int, int]]:
    """All channel pairs ``(c, c')`` with ``c < c'``."""
    return list(combinations(range(window), 2))


def _check_percentile(percentile: float) -> float:
    if not 0.0 < percentile <= 100.0:
        raise ConfigError(f"scaling percentile must be in (0, 100], got {percentile!r}")
    return float(percentile)


def _factor_of_sorted(rows: np.ndarray, percentile: float, max_value: float = MAX_VALUE) -> float:
    """Joint scaling factor from the K channels' values, each row sorted ascending.

    The joint percentile is numpy's default ("linear") percentile of all values. Only its two order
    statistics are needed, and they are among the largest ``N - lo`` values of every row, so a small
    sort of the rows' tails replaces a partition of the whole slice.
    """
    total = rows.size
    pos = (total - 1) * _check_percentile(percentile) / 100.0
    lo = min(int(math.floor(pos)), total - 1)
    frac = pos - lo
    need = total - lo
    tail = np.sort(np.concatenate([row[-need:] for row in rows]).astype(np.float64))
    first = lo - (total - tail.size)  # index of union rank lo in the tail
    a, b = float(tail[first]), float(tail[min(first + 1, tail.size - 1)])
    ref = a + (b - a) * frac
    if ref <= 0.0:  # sparse maps: a zero percentile would need an infinite factor; use the maximum
        ref = float(tail[-1])
    return max_value / ref if ref > 0.0 else 1.0


def _sorted_rows(maps: np.ndarray) -> np.ndarray:
    maps = np.asarray(maps, dtype=np.float32)
    return np.sort(maps.reshape(maps.shape[0] if maps.ndim > 1 else 1, -1), axis=1)


def joint_scale_factor(maps: np.ndarray, percentile: float = 99.9, max_value: float = MAX_VALUE) -> float:
    """The factor :func:`joint_scale` multiplies by: ``max_value`` / joint ``percentile`` of all maps.

    Sparse maps whose joint percentile is 0 but which have positive values are scaled by their maximum
    instead (a zero percentile would need an infinite factor); an all-zero slice gets 1.0.
    """
    return _factor_of_sorted(_sorted_rows(maps), percentile, max_value)


def joint_scale(maps: np.ndarray, percentile: float = 99.9, max_value: float = MAX_VALUE) -> np.ndarray:
    """Scale all K maps of one slice by one factor so their joint ``percentile`` becomes ``max_value``.

    Values above ``max_value`` are clipped. An all-zero slice stays zero. Returns a new float32 array.
    """
    maps = np.asarray(maps, dtype=np.float32)
    scaled = maps * np.float32(joint_scale_factor(maps, percentile, max_value))
    return np.minimum(scaled, np.float32(max_value), out=scaled)


def _w1_cdf(sa: np.ndarray, sb: np.ndarray) -> float:
    """W1 of two sorted 1-D arrays as scipy computes it: the integral of |F_a - F_b| over the values."""
    both = np.concatenate((sa, sb)).astype(np.float64)
    both.sort(kind="stable")
    fa = np.searchsorted(sa, both[:-1], side="right") / sa.size
    fb = np.searchsorted(sb, both[:-1], side="right") / sb.size
    return float(np.dot(np.abs(fa - fb), np.diff(both)))


def _w1_sorted(sa: np.ndarray, sb: np.ndarray) -> float:
    """Exact W1 between two sorted 1-D arrays, as the integral of |quantile_a(t) - quantile_b(t)| over t."""
    n, m = sa.size, sb.size
    if n == m:
        # Equal sizes: the optimal coupling matches order statistics, W1 = mean |a_(i) - b_(i)|.
        diff = np.subtract(sa, sb, dtype=np.float64)
        return float(np.abs(diff, out=diff).mean())
    if n * m >= 2**62:  # the integer breakpoints below would overflow int64
        return _w1_cdf(sa, sb)
    # The quantile functions are steps at t = i/n and j/m. In units of 1/(n m) these breakpoints are the
    # integers i*m and j*n; on [t_k, t_k+1) the quantiles are sa[t_k // m] and sb[t_k // n]. Merging two
    # integer runs (the stable sort detects them) is cheaper than scipy's float merge and binary searches.
    t = np.concatenate((np.arange(n, dtype=np.int64) * m, np.arange(m, dtype=np.int64) * n))
    t.sort(kind="stable")
    widths = np.diff(t, append=np.int64(n * m)).astype(np.float64)  # np.dot of float and int is slow
    gaps = np.abs(np.subtract(sa[t // m], sb[t // n], dtype=np.float64))
    return float(np.dot(gaps, widths) / (n * m))


def wasserstein_1d(a: np.ndarray, b: np.ndarray) -> float:
    """1-D Wasserstein distance W1 between the empirical distributions of the values of ``a`` and ``b``.

    Equals ``scipy.stats.wasserstein_distance(a.ravel(), b.ravel())``; the arrays may differ in size.
    """
    a = np.asarray(a).ravel()
    b = np.asarray(b).ravel()
    if a.size == 0 or b.size == 0:
        raise ValueError("wasserstein_1d needs two non-empty value sets")
    return _w1_sorted(np.sort(a), np.sort(b))


def _bin_counts_sorted(values: np.ndarray, bins: int) -> np.ndarray:
    """Counts of sorted ``values`` in ``bins`` equal bins over [0, 255], from binary searches of the edges.

    Bin k holds [k, k+1) * 255/bins; values at or above 255 go in the top bin, negative ones in bin 0.
    """
    edges = np.arange(1, bins) * (MAX_VALUE / bins)  # exact in float64 when bins is a power of two
    if values.dtype == np.float32:
        # x < e for float32 x exactly when x < (the smallest float32 >= e): search float32 edges
        e32 = edges.astype(np.float32)
        edges = np.where(e32 < edges, np.nextafter(e32, np.float32(np.inf)), e32)
    below = np.searchsorted(values, edges, side="left")
    return np.diff(below, prepend=0, append=values.size).astype(np.int64)


def histogram256(values: np.ndarray) -> np.ndarray:
    """Counts of ``values`` in 256 equal bins over [0, 255] (int64).

    Bin k holds [k, k+1) * 255/256; values at or above 255 go in the top bin and negative ones in bin 0.
    """
    values = np.asarray(values)
    if values.dtype != np.float32:
        values = values.astype(np.float64)
    return _bin_counts_sorted(np.sort(values.ravel()), HIST_BINS)


def jensen_shannon(hist_a: np.ndarray, hist_b: np.ndarray) -> float:
    """Jensen-Shannon divergence, base 2, in [0, 1], between two histograms (counts or probabilities)."""
    p = np.asarray(hist_a, dtype=np.float64)
    q = np.asarray(hist_b, dtype=np.float64)
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl_to_m(x: np.ndarray) -> float:
        nz = x > 0  # 0 log 0 = 0; where x > 0, m > 0 too
        return float(np.sum(x[nz] * np.log2(x[nz] / m[nz])))

    return min(max(0.5 * kl_to_m(p) + 0.5 * kl_to_m(q), 0.0), 1.0)


def bhattacharyya(hist_a: np.ndarray, hist_b: np.ndarray) -> float:
    """Bhattacharyya distance ``-ln BC`` between two histograms; :data:`BHATTACHARYYA_DISJOINT` if BC = 0."""
    p = np.asarray(hist_a, dtype=np.float64)
    q = np.asarray(hist_b, dtype=np.float64)
    bc = float(np.sum(np.sqrt(p / p.sum() * (q / q.sum()))))
    if bc <= 0.0:
        return BHATTACHARYYA_DISJOINT
    return max(-math.log(min(bc, 1.0)), 0.0)


def empirical_cdf(values: np.ndarray, grid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Empirical CDF ``F(x) = fraction of values <= x`` for plots.

    Without ``grid``: ``x`` is the sorted distinct values and ``F`` the step heights there. With ``grid``:
    ``F`` at the grid points. Drawn as steps (``where="post"``) on the union of two value sets as the
    grid, the area between two CDFs is ``sum(diff(x) * |F_a - F_b|[:-1])``, which is exactly their W1.
    """
    v = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if v.size == 0:
        raise ValueError("empirical_cdf needs at least one value")
    x = np.unique(v) if grid is None else np.asarray(grid, dtype=np.float64)
    return x, np.searchsorted(v, x, side="right") / v.size


def cdf_pair(
    a: np.ndarray, b: np.ndarray, max_points: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CDFs of two value sets on a common grid, for drawing them and shading the area between them.

    Returns ``x, F_a, F_b``. With ``max_points=None`` the grid is the union of both value sets and the
    step area ``sum(diff(x) * |F_a - F_b|[:-1])`` equals ``wasserstein_1d(a, b)`` exactly. A whole slice
    has ~10^6 distinct values, too many to draw: ``max_points`` then gives an even grid over the value
    range, on which that area differs from W1 by at most two grid spacings (each CDF rises by at most
    1 in total, and a rise inside a grid interval changes that interval's area by at most its width).
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if max_points is None:
        grid = np.union1d(a, b)
    else:
        grid = np.linspace(min(a.min(), b.min()), max(a.max(), b.max()), max(int(max_points), 2))
    x, fa = empirical_cdf(a, grid)
    return x, fa, empirical_cdf(b, grid)[1]


@dataclass(frozen=True)
class SliceAsymmetry:
    """Asymmetry metrics of one slice (or of the pooled volume). See the module docstring.

    ``w1`` is the symmetric K x K matrix of pairwise W1 (zero diagonal); ``scale`` the joint scaling
    factor applied (1.0 for ``scaling="none"``, an all-zero slice and the pooled volume).
    """

    window: int
    swd: float
    fwd: float
    js_sym: float
    js_full: float
    bhatt_sym: float
    bhatt_full: float
    shares: tuple[float, ...]
    w1: tuple[tuple[float, ...], ...]
    scale: float = 1.0

    def scalars(self) -> dict[str, float]:
        """Every scalar metric by name, shares as ``share_0 .. share_{K-1}``."""
        out = {m: float(getattr(self, m)) for m in METRICS}
        out.update({f"share_{c}": s for c, s in enumerate(self.shares)})
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {"window": self.window, **{m: getattr(self, m) for m in METRICS},
                "shares": list(self.shares), "w1": [list(row) for row in self.w1], "scale": self.scale}


def _metrics_from(w1: np.ndarray, hists: np.ndarray, sums: np.ndarray, scale: float) -> SliceAsymmetry:
    """Assemble the metrics from a W1 matrix, 256-bin histograms and channel sums."""
    k = w1.shape[0]
    sym, full = mirror_pairs(k), all_pairs(k)
    js = {p: jensen_shannon(hists[p[0]], hists[p[1]]) for p in full}
    bh = {p: bhattacharyya(hists[p[0]], hists[p[1]]) for p in full}
    total = float(sums.sum())
    shares = tuple(float(s / total) for s in sums) if total > 0 else (1.0 / k,) * k
    return SliceAsymmetry(
        window=k,
        swd=float(np.mean([w1[p] for p in sym])),
        fwd=float(np.mean([w1[p] for p in full])),
        js_sym=float(np.mean([js[p] for p in sym])),
        js_full=float(np.mean([js[p] for p in full])),
        bhatt_sym=float(np.mean([bh[p] for p in sym])),
        bhatt_full=float(np.mean([bh[p] for p in full])),
        shares=shares,
        w1=tuple(tuple(float(v) for v in row) for row in w1),
        scale=float(scale),
    )


def _sorted_checked(maps: np.ndarray, window: int | None = None) -> np.ndarray:
    """Each channel's values sorted (K, H*W) float32, after checking shape and values."""
    maps = np.asarray(maps)
    if maps.ndim != 3:
        raise VolumeError(f"saliency maps of a slice must have shape (K, H, W), got shape {maps.shape}")
    k = check_window(maps.shape[0])
    if k < 3:
        raise ConfigError(
            "channel asymmetry needs a window of at least 3 channels (there are no channel pairs with "
            f"K = {k}); use a 2D+ model with window 3, 5 or 7"
        )
    if window is not None and k != window:
        raise ConfigError(f"saliency maps have {k} channels but the analysis was set up for window {window}")
    if maps.size == 0:
        raise VolumeError(f"saliency maps of shape {maps.shape} hold no values")
    rows = _sorted_rows(maps)
    # sorted: negative values and -inf come first, NaN and +inf last
    if not (np.isfinite(rows[:, -1]).all() and (rows[:, 0] >= 0).all()):
        raise VolumeError(
            "saliency maps must be finite and non-negative (absolute attributions); found NaN, inf or "
            "negative values - check the saliency method's output"
        )
    return rows


@dataclass(frozen=True)
class _SliceStats:
    """What one slice contributes: its metrics and the parts the volume accumulator pools."""

    metrics: SliceAsymmetry
    sorted_scaled: np.ndarray  # (K, H*W), each row the channel's scaled values in ascending order
    hists: np.ndarray
    sums: np.ndarray


def _slice_stats(maps: np.ndarray, scaling: str, percentile: float, window: int | None = None) -> _SliceStats:
    if scaling not in SCALINGS:
        raise ConfigError(f"unknown scaling {scaling!r}; valid options: {', '.join(SCALINGS)}")
    # Sort each channel once: scaling is monotone (a positive factor, then a clip), so the rows stay
    # sorted, and the percentile, every pair's W1 and the histograms all read the sorted rows.
    rows = _sorted_checked(maps, window)
    factor = 1.0
    if scaling == "joint":
        factor = _factor_of_sorted(rows, percentile)
        rows *= np.float32(factor)  # the same float32 operations as joint_scale, so the same values
        np.minimum(rows, np.float32(MAX_VALUE), out=rows)
    k = rows.shape[0]
    w1 = np.zeros((k, k))
    for i, j in all_pairs(k):
        w1[i, j] = w1[j, i] = _w1_sorted(rows[i], rows[j])
    hists = np.stack([_bin_counts_sorted(row, HIST_BINS) for row in rows])
    sums = rows.sum(axis=1, dtype=np.float64)
    return _SliceStats(_metrics_from(w1, hists, sums, factor), rows, hists, sums)


def slice_asymmetry(maps: np.ndarray, scaling: str = "joint", percentile: float = 99.9) -> SliceAsymmetry:
    """All asymmetry metrics of one slice's saliency maps ``(K, H, W)``, K odd and >= 3."""
    return _slice_stats(maps, scaling, percentile).metrics


__all__ = [
    "BHATTACHARYYA_DISJOINT",
    "HIST_BINS",
    "MAX_VALUE",
    "METRICS",
    "SCALINGS",
    "SliceAsymmetry",
    "all_pairs",
    "bhattacharyya",
    "cdf_pair",
    "empirical_cdf",
    "histogram256",
    "jensen_shannon",
    "joint_scale",
    "joint_scale_factor",
    "mirror_pairs",
    "slice_asymmetry",
    "wasserstein_1d",
]
