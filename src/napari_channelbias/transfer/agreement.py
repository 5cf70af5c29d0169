"""How well a score predicts downstream quality: Spearman correlation and the thesis's TIS.

Used to validate the robustness score against held-out Dice (``channelbias study --rank-inits``, the
ISBI validation in ``docs/transfer.md``).

- Spearman's rank correlation: Pearson's correlation of the ranks, ties given their average rank.
  Undefined (NaN) for fewer than three pairs or a constant variable.
- Transferability indicator score (thesis Eq. 3.1): ``TIS = m(theta*) / max_theta m(theta)``, where
  ``theta*`` is the candidate the indicator ranks highest and ``m`` the downstream metric (Dice here).
  1.0 means the score picked the best candidate; ties in the score take the first candidate given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n of ``values`` (ascending); tied values share the mean of their ranks."""
    x = np.asarray(values, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and x[order[j + 1]] == x[order[i]]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation of paired values; NaN when fewer than 3 pairs or one side is constant."""
    if len(x) != len(y):
        raise ValueError(f"spearman needs paired values, got {len(x)} and {len(y)}")
    if len(x) < 3:
        return math.nan
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / denom) if denom > 0 else math.nan


def transferability_indicator_score(score: Mapping[str, float], metric: Mapping[str, float]) -> float:
    """``metric`` of the top-``score`` candidate over the best ``metric``, on the candidates both name.

    Raises
    ------
    ValueError
        If the two mappings share no candidate.
    """
    common = [k for k in score if k in metric]
    if not common:
        raise ValueError("score and metric name no common candidate")
    top = max(common, key=lambda k: score[k])  # max keeps the first of equal scores
    best = max(metric[k] for k in common)
    return float(metric[top] / best) if best > 0 else math.nan
