"""Which slices to review first, and what rejecting them buys: ranking, coverage curve, correlation.

The paper (sec. 4.6) ranks test images by the mean SA score mu and rejects the lowest: at a coverage of
80 % the model withholds the 20 % of images with the lowest mu, and the mean Dice of the images it
keeps should rise. Here the unit is a slice:

- :func:`review_order`: slices from the most to the least doubtful. Slices whose mu is missing (the
  model predicts nothing or everything there) come first: that is itself a reason to look.
- :func:`coverage_curve`: for k = n, n - 1, ..., 1 kept slices (the k highest mu), the mean Dice and its
  standard error over the kept slices, against the fraction kept k / n; with the oracle (slices ranked
  by their true Dice, the best any ranking can do) for reference. Slices whose Dice is undefined are
  left out and counted.
- :func:`correlations`: Pearson and Spearman correlation of mu and Dice, with n.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ReviewItem:
    """One slice in the review order: its rank (1 = review first), index, mu and why mu is missing."""

    rank: int
    z: int
    mu: float | None
    reason: str | None = None


def _defined(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def review_order(mu: Mapping[int, float | None], reasons: Mapping[int, str | None] | None = None) -> list[ReviewItem]:
    """Slices ordered for proofreading: missing mu first (by z), then ascending mu (ties by z)."""
    reasons = reasons or {}
    missing = sorted(z for z, m in mu.items() if not _defined(m))
    scored = sorted((z for z, m in mu.items() if _defined(m)), key=lambda z: (mu[z], z))
    out = [ReviewItem(i + 1, z, None, reasons.get(z) or "mu is missing") for i, z in enumerate(missing)]
    out += [ReviewItem(len(missing) + i + 1, z, float(mu[z])) for i, z in enumerate(scored)]  # type: ignore[arg-type]
    return out


def _mean_se(values: np.ndarray) -> tuple[float, float]:
    if values.size == 0:
        return float("nan"), float("nan")
    se = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else float("nan")
    return float(values.mean()), se


@dataclass
class CoveragePoint:
    """The kept slices at one coverage: their fraction, count, and mean (SE) Dice; oracle alongside."""

    fraction: float
    kept: int
    dice_mean: float
    dice_se: float
    oracle_mean: float

    def to_dict(self) -> dict[str, Any]:
        return {"fraction": self.fraction, "kept": self.kept, "dice_mean": self.dice_mean,
                "dice_se": self.dice_se, "oracle_mean": self.oracle_mean}


@dataclass
class CoverageCurve:
    """The coverage curve; ``excluded`` counts slices left out because their Dice is undefined."""

    points: list[CoveragePoint]
    n: int
    excluded: int

    def at(self, fraction: float) -> CoveragePoint:
        """The point that keeps ``ceil(fraction * n)`` slices (the paper's table: 100, 90, 70, 50 %)."""
        if not self.points:
            raise ValueError("the coverage curve is empty (no slice with a defined Dice)")
        k = max(1, math.ceil(round(fraction * self.n, 9)))
        return next(p for p in self.points if p.kept == k)

    def to_rows(self) -> list[dict[str, Any]]:
        return [p.to_dict() for p in self.points]


def coverage_curve(mu: Mapping[int, float | None], dice: Mapping[int, float | None]) -> CoverageCurve:
    """Dice of the kept slices against the fraction kept, rejecting the lowest mu first.

    Only slices with a defined Dice take part; among them, a missing mu ranks below every score (it is
    rejected first, as :func:`review_order` reviews it first).
    """
    zs = [z for z in dice if _defined(dice[z])]
    n = len(zs)
    order = [item.z for item in review_order({z: mu.get(z) for z in zs})]  # review first = reject first
    kept_order = np.array([dice[z] for z in reversed(order)], dtype=np.float64)  # best mu first
    oracle = np.sort(np.array([dice[z] for z in zs], dtype=np.float64))[::-1]
    points = []
    for k in range(n, 0, -1):
        mean, se = _mean_se(kept_order[:k])
        points.append(CoveragePoint(k / n, k, mean, se, float(oracle[:k].mean())))
    return CoverageCurve(points, n, len(dice) - n)


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (as Spearman's coefficient needs)."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(x.size, np.float64)
    sorted_x = x[order]
    i = 0
    while i < x.size:
        j = i
        while j + 1 < x.size and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else float("nan")


def correlations(mu: Mapping[int, float | None], dice: Mapping[int, float | None]) -> dict[str, Any]:
    """Pearson and Spearman correlation between mu and Dice over the slices where both are defined.

    Returns ``{"n", "pearson", "spearman"}``; a coefficient is NaN for fewer than 3 slices or a
    constant series (undefined, not zero).
    """
    zs = sorted(z for z in mu if z in dice and _defined(mu[z]) and _defined(dice[z]))
    a = np.array([mu[z] for z in zs], np.float64)
    b = np.array([dice[z] for z in zs], np.float64)
    if len(zs) < 3:
        return {"n": len(zs), "pearson": float("nan"), "spearman": float("nan")}
    return {"n": len(zs), "pearson": _pearson(a, b), "spearman": _pearson(_ranks(a), _ranks(b))}


def ranks_of(order: Sequence[ReviewItem], zs: Sequence[int]) -> dict[int, int]:
    """The review rank of each slice in ``zs`` (where corrupted slices landed, say)."""
    rank = {item.z: item.rank for item in order}
    return {z: rank[z] for z in zs}
