"""Whole-volume channel-asymmetry metrics: pooled over slices, per-slice mean and SE, model comparison.

The slice-level definitions (joint scaling, W1, JS, Bhattacharyya, channel shares) are in
:mod:`napari_channelbias.asymmetry`. :class:`VolumeAsymmetry` pools each channel's values over slices
(after each slice's own scaling) in bounded memory, see its docstring for the error bound.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..windowing import check_window
from .metrics import (
    HIST_BINS,
    MAX_VALUE,
    METRICS,
    SCALINGS,
    SliceAsymmetry,
    _bin_counts_sorted,
    _check_percentile,
    _metrics_from,
    _slice_stats,
    all_pairs,
)


def _mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error std/sqrt(n) with ddof=1; SE is nan for a single value."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size < 2:
        return float(arr.mean()), math.nan
    return float(arr.mean()), float(arr.std(ddof=1) / math.sqrt(arr.size))


def _json_float(x: float) -> float | None:
    return None if math.isnan(x) else x


def _float(x: Any) -> float:
    return math.nan if x is None else float(x)


def _slice_from_dict(d: Mapping[str, Any]) -> SliceAsymmetry:
    """The :class:`SliceAsymmetry` of its ``to_dict`` (extra keys such as ``z`` are ignored)."""
    return SliceAsymmetry(
        window=int(d["window"]), **{m: _float(d[m]) for m in METRICS},
        shares=tuple(_float(v) for v in d["shares"]),
        w1=tuple(tuple(_float(v) for v in row) for row in d["w1"]), scale=_float(d.get("scale", 1.0)),
    )


@dataclass(frozen=True)
class VolumeAsymmetryResult:
    """Volume metrics: pooled over all slices, and the mean and standard error of the per-slice values.

    ``pooled`` holds the metrics of each channel's distribution pooled over the slices (its ``scale`` is
    1.0: no further scaling). ``slice_mean`` / ``slice_se`` map every scalar metric (see
    :meth:`SliceAsymmetry.scalars`) to the mean and standard error (std / sqrt(n), ddof=1) over slices;
    the SE is nan for a single slice. ``series`` holds ``(z, SliceAsymmetry)`` sorted by z.
    """

    window: int
    scaling: str
    percentile: float
    bins: int
    n_slices: int
    pooled: SliceAsymmetry
    slice_mean: Mapping[str, float]
    slice_se: Mapping[str, float]
    series: tuple[tuple[int, SliceAsymmetry], ...]

    @property
    def w1_error_bound(self) -> float:
        """Largest possible error of the pooled W1 values (one fine-bin width)."""
        return MAX_VALUE / self.bins

    def series_of(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """``(z, values)`` of one scalar metric over the slices."""
        z = np.array([z for z, _ in self.series], dtype=np.int64)
        return z, np.array([s.scalars()[metric] for _, s in self.series], dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (nan becomes None)."""
        pooled = self.pooled.to_dict()
        pooled.pop("scale")
        return {
            "window": self.window, "scaling": self.scaling, "percentile": self.percentile,
            "bins": self.bins, "w1_error_bound": self.w1_error_bound, "n_slices": self.n_slices,
            "pooled": pooled,
            "slice_mean": {k: _json_float(v) for k, v in self.slice_mean.items()},
            "slice_se": {k: _json_float(v) for k, v in self.slice_se.items()},
            "series": [{"z": z, **s.to_dict()} for z, s in self.series],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VolumeAsymmetryResult:
        """The result :meth:`to_dict` wrote (e.g. a results store's summary); None values come back as nan.

        ``series`` may be absent (a summary saved without it): the result then has no per-slice series.
        """
        window = int(data["window"])
        pooled = _slice_from_dict({"window": window, "scale": 1.0, **data["pooled"]})
        return cls(
            window=window, scaling=str(data["scaling"]), percentile=float(data["percentile"]),
            bins=int(data["bins"]), n_slices=int(data["n_slices"]), pooled=pooled,
            slice_mean={k: _float(v) for k, v in data["slice_mean"].items()},
            slice_se={k: _float(v) for k, v in data["slice_se"].items()},
            series=tuple((int(row["z"]), _slice_from_dict(row)) for row in data.get("series") or ()),
        )

    def to_rows(self) -> list[dict[str, Any]]:
        """Flat rows for a CSV: one ``scope="slice"`` row per slice, then pooled, slice_mean, slice_se."""
        rows: list[dict[str, Any]] = [{"scope": "slice", "z": z, **s.scalars()} for z, s in self.series]
        rows.append({"scope": "pooled", "z": None, **self.pooled.scalars()})
        rows.append({"scope": "slice_mean", "z": None, **self.slice_mean})
        rows.append({"scope": "slice_se", "z": None, **self.slice_se})
        return rows


class VolumeAsymmetry:
    """Accumulates asymmetry metrics slice by slice, in memory that does not grow with the volume.

    Each call of :meth:`add` computes the slice's metrics (kept as the per-slice series) and adds the
    slice's scaled values to per-channel fixed-width histograms over [0, 255]: ``bins`` fine bins for the
    pooled W1 and the 256 metric bins for pooled JS and Bhattacharyya (exact: 256-bin histograms add
    up). Pooled shares come from the channel sums. Memory is O(K * bins) plus a few numbers per slice.

    The pooled W1 is computed from the fine-histogram CDFs with each value moved to its bin centre,
    which moves every value by at most half a bin width; the pooled W1 (and so SWd, FWd) differs from the
    exact W1 of the concatenated scaled values by at most one bin width, ``255 / bins`` (0.0039 for the
    default 65536 bins), provided the values lie in [0, 255] (always true under joint scaling).
    """

    def __init__(self, window: int, scaling: str = "joint", percentile: float = 99.9, bins: int = 65536):
        self.window = check_window(window)
        if self.window < 3:
            raise ConfigError(f"channel asymmetry needs a window of at least 3 channels, got {window}")
        if scaling not in SCALINGS:
            raise ConfigError(f"unknown scaling {scaling!r}; valid options: {', '.join(SCALINGS)}")
        _check_percentile(percentile)
        if int(bins) != bins or bins < HIST_BINS:
            raise ConfigError(f"bins must be an integer >= {HIST_BINS}, got {bins!r}")
        self.scaling, self.percentile, self.bins = scaling, float(percentile), int(bins)
        self._fine = np.zeros((self.window, self.bins), dtype=np.int64)
        self._hists = np.zeros((self.window, HIST_BINS), dtype=np.int64)
        self._sums = np.zeros(self.window, dtype=np.float64)
        self._series: dict[int, SliceAsymmetry] = {}

    def __len__(self) -> int:
        return len(self._series)

    @property
    def bin_width(self) -> float:
        return MAX_VALUE / self.bins

    def add(self, z: int, maps: np.ndarray) -> SliceAsymmetry:
        """Add slice ``z``'s saliency maps ``(K, H, W)``; returns the slice's metrics."""
        z = int(z)
        if z in self._series:
            raise ValueError(f"slice {z} was already added")
        stats = _slice_stats(maps, self.scaling, self.percentile, self.window)
        for c, row in enumerate(stats.sorted_scaled):
            self._fine[c] += _bin_counts_sorted(row, self.bins)
        self._hists += stats.hists
        self._sums += stats.sums
        self._series[z] = stats.metrics
        return stats.metrics

    def merge(self, other: VolumeAsymmetry) -> VolumeAsymmetry:
        """Add another accumulator's slices to this one (for work split over processes); returns self."""
        mine = (self.window, self.scaling, self.percentile, self.bins)
        theirs = (other.window, other.scaling, other.percentile, other.bins)
        if mine != theirs:
            raise ConfigError(f"cannot merge accumulators with different settings: {mine} vs {theirs}")
        common = self._series.keys() & other._series.keys()
        if common:
            raise ValueError(f"both accumulators hold slices {sorted(common)[:5]}")
        self._fine += other._fine
        self._hists += other._hists
        self._sums += other._sums
        self._series.update(other._series)
        return self

    def pooled_cdf(self, channel: int) -> tuple[np.ndarray, np.ndarray]:
        """Pooled CDF of one channel: ``x`` the fine bins' right edges, ``F`` the fraction below each."""
        counts = self._fine[channel]
        x = np.arange(1, self.bins + 1) * self.bin_width
        return x, np.cumsum(counts) / max(int(counts.sum()), 1)

    def _pooled_w1(self) -> np.ndarray:
        cdf = np.cumsum(self._fine, axis=1) / self._fine.sum(axis=1, keepdims=True)
        w1 = np.zeros((self.window, self.window))
        for i, j in all_pairs(self.window):
            # Point masses at bin centres, one bin width apart: W1 = w * sum_k |F_i(k) - F_j(k)|.
            w1[i, j] = w1[j, i] = self.bin_width * float(np.abs(cdf[i, :-1] - cdf[j, :-1]).sum())
        return w1

    def result(self) -> VolumeAsymmetryResult:
        """Pooled metrics, per-slice mean and standard error, and the series."""
        if not self._series:
            raise ValueError("no slices were added to the volume accumulator")
        series = tuple(sorted(self._series.items()))
        scalars = [s.scalars() for _, s in series]
        stats = {name: _mean_se([row[name] for row in scalars]) for name in scalars[0]}
        return VolumeAsymmetryResult(
            window=self.window, scaling=self.scaling, percentile=self.percentile, bins=self.bins,
            n_slices=len(series),
            pooled=_metrics_from(self._pooled_w1(), self._hists, self._sums, 1.0),
            slice_mean={k: v[0] for k, v in stats.items()},
            slice_se={k: v[1] for k, v in stats.items()},
            series=series,
        )


def volume_asymmetry(
    slices: Iterable[tuple[int, np.ndarray]], window: int, scaling: str = "joint", percentile: float = 99.9,
    bins: int = 65536,
) -> VolumeAsymmetryResult:
    """Run :class:`VolumeAsymmetry` over ``(z, maps)`` pairs and return its result."""
    acc = VolumeAsymmetry(window, scaling, percentile, bins)
    for z, maps in slices:
        acc.add(z, maps)
    return acc.result()


def compare_models(results: Mapping[str, VolumeAsymmetryResult]) -> list[dict[str, Any]]:
    """One table row per model: pooled metrics, per-slice mean and SE of each metric, pooled shares."""
    rows = []
    for name, res in results.items():
        row: dict[str, Any] = {"model": name, "window": res.window, "n_slices": res.n_slices}
        for m in METRICS:
            row[m] = getattr(res.pooled, m)
            row[f"{m}_mean"] = res.slice_mean[m]
            row[f"{m}_se"] = res.slice_se[m]
        row.update({f"share_{c}": s for c, s in enumerate(res.pooled.shares)})
        rows.append(row)
    return rows


def aligned_series(
    results: Mapping[str, VolumeAsymmetryResult], metric: str = "swd"
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per-slice values of ``metric`` for several models on a common z axis (nan where a model lacks z)."""
    per_model = {
        name: {int(z): s.scalars()[metric] for z, s in res.series} for name, res in results.items()
    }
    z = np.array(sorted(set().union(*per_model.values())), dtype=np.int64)
    return z, {name: np.array([vals.get(int(k), math.nan) for k in z]) for name, vals in per_model.items()}
