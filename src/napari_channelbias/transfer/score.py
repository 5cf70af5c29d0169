"""The robustness score rho of a representation, from the features of its three views.

Our reading of the thesis's Eq. 4.2 with its chosen settings (ch. 4.2)::

    rho = 1 - (1 / n) * sum_i max(0, d(f(q~_i), f(k_i+)) - d(f(q~_i), f(k_i-)) + eps)

with ``d`` the cosine distance ``1 - <a, b> / (|a| |b|)`` (Eq. 4.3) and ``eps = 0.5``. ``q~_i`` and
``k_i+`` are two augmentations of window ``i``; ``k_i-`` is an augmentation of another window. rho is at
most 1 (every positive pair at least ``eps`` closer than its negative) and at least ``-1.5`` (``d`` lies
in [0, 2], so a loss is at most 2.5). Its standard error is that of the mean of the ``n`` per-window triplet losses,
``std(ddof=1) / sqrt(n)``.

This module is plain NumPy (float64) so the formula can be tested on hand-made feature vectors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

#: The margin the thesis settled on (ch. 4.2; 0.25 gave practically the same results).
EPSILON = 0.5

# Norms below this count as zero: the cosine of a zero vector is taken as 0 (distance 1), not NaN.
_TINY = 1e-12


@dataclass(frozen=True)
class Robustness:
    """rho with its standard error over ``n`` windows, and the mean distances behind it."""

    rho: float
    se: float
    n: int
    mean_d_pos: float
    mean_d_neg: float
    epsilon: float
    losses: tuple[float, ...] = ()
    """The per-window triplet losses (rho = 1 - their mean): paired comparisons between candidates."""

    def to_dict(self) -> dict[str, Any]:
        return {"rho": self.rho, "se": self.se, "n": self.n, "mean_d_pos": self.mean_d_pos,
                "mean_d_neg": self.mean_d_neg, "epsilon": self.epsilon, "losses": list(self.losses)}


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine distance of two ``(n, D)`` arrays, in float64; a zero row is at distance 1."""
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    if a.shape != b.shape:
        raise ValueError(f"feature shapes differ: {a.shape} vs {b.shape}")
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    dots = np.einsum("nd,nd->n", a, b)
    ok = (na > _TINY) & (nb > _TINY)
    cos = np.zeros(len(a))
    cos[ok] = dots[ok] / (na[ok] * nb[ok])
    return 1.0 - np.clip(cos, -1.0, 1.0)


def triplet_losses(q: np.ndarray, k_pos: np.ndarray, k_neg: np.ndarray, epsilon: float = EPSILON) -> np.ndarray:
    """Per-window ``max(0, d(q, k+) - d(q, k-) + eps)`` (the thesis's Eq. 4.1 with cosine ``d``)."""
    return np.maximum(0.0, cosine_distance(q, k_pos) - cosine_distance(q, k_neg) + float(epsilon))


def robustness(q: np.ndarray, k_pos: np.ndarray, k_neg: np.ndarray, epsilon: float = EPSILON) -> Robustness:
    """rho and its standard error from the ``(n, D)`` features of the queries, positives and negatives.

    Raises
    ------
    ValueError
        If fewer than one window is given or the shapes differ.
    """
    if len(q) < 1:
        raise ValueError("robustness needs at least one window")
    losses = triplet_losses(q, k_pos, k_neg, epsilon)
    n = len(losses)
    se = float(np.std(losses, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return Robustness(
        rho=float(1.0 - losses.mean()), se=se, n=n,
        mean_d_pos=float(cosine_distance(q, k_pos).mean()), mean_d_neg=float(cosine_distance(q, k_neg).mean()),
        epsilon=float(epsilon), losses=tuple(float(v) for v in losses),
    )


def paired_difference(losses_a: np.ndarray, losses_b: np.ndarray) -> tuple[float, float]:
    """``rho_a - rho_b`` and its standard error, from the per-window losses of two candidates.

    Both candidates were scored on the same views, so the difference is a paired one: its standard error
    ``std(l_b - l_a, ddof=1) / sqrt(n)`` is usually much smaller than either score's own.
    """
    a, b = np.asarray(losses_a, dtype=np.float64), np.asarray(losses_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 1:
        raise ValueError(f"paired losses must be two equal 1-D arrays, got {a.shape} and {b.shape}")
    diff = b - a
    se = float(np.std(diff, ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else float("nan")
    return float(diff.mean()), se
