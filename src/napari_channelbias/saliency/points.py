"""``full-output-points`` and ``foreground-points``: the mean input-gradient magnitude of single pixels.

N output pixels ``(h_n, w_n)`` are drawn (seeded) and each one is back-propagated on its own::

    S_c(h, w) = (1 / N) sum_n | d p_t(h_n, w_n) / d x_c(h, w) |

``full-output-points`` draws the pixels uniformly from the whole slice, ``foreground-points`` from the
foreground ``M = [p_t > 0.5]`` of the clean forward pass. Both draw *without replacement*: N distinct
pixels, so the map is an unbiased sample estimate of the mean over the pool. When the pool holds N
pixels or fewer (a small slice, or a small foreground), every pixel of it is used once and the mean runs
over all of them: that is the quantity the sample estimates, computed exactly, and repeating pixels
would only add noise. An empty foreground gives all-zero maps and a :class:`SaliencyWarning`.

The draw depends only on ``seed`` and the pool (not on the input values outside ``M``), so the same
seed selects the same pixels for a window and its z-reversal.

Batching: the input is replicated ``chunk`` times in the batch and row ``n`` back-propagates point ``n``
(``sum_n p_t[n, h_n, w_n]``, whose gradient with respect to row ``n`` is exactly that point's gradient,
the rows being independent in eval mode): one forward and one backward pass per chunk. That was kept over
the alternative of a single forward pass plus batched vector-Jacobian products
(``torch.autograd.grad(..., is_grads_batched=True)``, a vmap over the backward pass), which is exact too
but, in torch 2.x on CPU, runs the batched convolution and batch-norm backward rules largely as a loop
plus concatenation: on the smp U-Net (EfficientNet-Lite0) at 512 x 512 it was ~3.5x slower than
replication and ~3x slower than N plain sequential backward passes, while replication beat the
sequential passes (``benchmarks/bench_saliency.py`` measures all three side by side and checks that the
maps agree). Memory grows with ``chunk``: each row keeps a forward pass's activations for the backward
pass (about 0.65 GB per row for that U-Net at 512 x 512 on CPU), so the default of 8 rows peaks near
5.5 GB there, against about 1.7 GB for ``chunk=1`` at ~1.4x the time per point; large slices want
``tile`` or a smaller ``chunk``.

Tiles: the points are drawn over the whole slice once; each point is back-propagated in the tile that
owns it (its output pixel lies deepest inside that tile), and the magnitudes are added into the slice
map. A pointwise model gives the whole-slice result exactly; otherwise a point's gradient is exact when
the receptive field around it fits inside its tile.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from .base import SaliencyWarning, TilePlan, check_positive, crop_tile, foreground_mask, forward_probability


def draw_points(pool: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` distinct flat pixel indices drawn uniformly from ``pool`` (all of it if it has ``<= n``)."""
    pool = np.asarray(pool, dtype=np.int64)
    if pool.size <= n:
        return np.sort(pool)
    return np.sort(np.random.default_rng(seed).choice(pool, size=n, replace=False))


def _point_gradients(
    model: torch.nn.Module, xt: torch.Tensor, target: int | None, ly: torch.Tensor, lx: torch.Tensor,
    chunk: int,
) -> torch.Tensor:
    """Sum over the points of ``|d p_t(point) / d xt|``, ``(K, h, w)``: one replicated batch per chunk."""
    total = torch.zeros_like(xt[0])
    for start in range(0, ly.numel(), chunk):
        cy, cx = ly[start:start + chunk], lx[start:start + chunk]
        rows = xt.repeat(cy.numel(), 1, 1, 1).requires_grad_(True)
        p = forward_probability(model, rows, target)
        picked = p[torch.arange(cy.numel(), device=p.device), cy, cx].sum()
        (grads,) = torch.autograd.grad(picked, rows)
        total += grads.abs().sum(dim=0)
    return total


def _points_saliency(
    model: torch.nn.Module, x: torch.Tensor, target: int | None, tiles: list[TilePlan], pool: np.ndarray,
    points: int, seed: int, chunk: int,
) -> torch.Tensor:
    points, chunk = check_positive("points", points), check_positive("chunk", chunk)
    height, width = x.shape[-2:]
    flat = draw_points(pool, points, seed)
    maps = torch.zeros_like(x[0])
    if flat.size == 0:
        return maps
    py, px = flat // width, flat % width
    for plan in tiles:
        mine = (py >= plan.own_y0) & (py < plan.own_y1) & (px >= plan.own_x0) & (px < plan.own_x1)
        if not mine.any():
            continue
        ly = torch.as_tensor(py[mine] - plan.y0, device=x.device)
        lx = torch.as_tensor(px[mine] - plan.x0, device=x.device)
        ys, xs = plan.region
        maps[:, ys, xs] += _point_gradients(model, crop_tile(x, plan), target, ly, lx, chunk)
    return maps / flat.size


def full_output_points_saliency(
    model: torch.nn.Module, x: torch.Tensor, *, target: int | None, tiles: list[TilePlan],
    points: int = 100, seed: int = 0, chunk: int = 8,
) -> torch.Tensor:
    """Mean ``|d p_t(h_n, w_n) / d x_c|`` over ``points`` pixels drawn uniformly (seeded), ``(K, H, W)``."""
    height, width = x.shape[-2:]
    pool = np.arange(height * width, dtype=np.int64)
    return _points_saliency(model, x, target, tiles, pool, points, seed, chunk)


def foreground_points_saliency(
    model: torch.nn.Module, x: torch.Tensor, *, target: int | None, tiles: list[TilePlan],
    points: int = 100, seed: int = 0, chunk: int = 8,
) -> torch.Tensor:
    """As :func:`full_output_points_saliency` with the pixels drawn from ``M = [p_t > 0.5]``.

    Fewer than ``points`` foreground pixels: all of them are used. None: zeros and a SaliencyWarning.
    """
    mask = foreground_mask(model, x, target, tiles)
    pool = np.flatnonzero(mask.cpu().numpy().ravel())
    if pool.size == 0:
        warnings.warn("foreground-points saliency: the model predicts no foreground pixel (p_t > 0.5) in "
                      "this slice, so the maps are all zeros", SaliencyWarning, stacklevel=3)
    return _points_saliency(model, x, target, tiles, pool, points, seed, chunk)
