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

How the N backward passes are organised (``chunk``, points per backward pass; every way is exact, the
same numbers as N separate ``backward`` calls):

* ``chunk=1``: one forward pass per tile, then one backward pass per point on the retained graph.
* ``chunk=k > 1``: the input replicated ``k`` times in the batch, row ``n`` back-propagating point ``n``
  (``sum_n p_t[n, h_n, w_n]``; the rows are independent in eval mode): one forward and one backward pass
  of batch ``k`` per ``k`` points, so the forward is repeated but every kernel runs batched.
* ``None`` (default): 1 on CPU, 8 on a GPU.

Measured on CPU (``benchmarks/bench_saliency.py``: smp U-Net, EfficientNet-Lite0, 512 x 512, N = 100,
torch 2.14, 2 threads, a shared machine), in process CPU time: plain loop of N backward passes 164 s,
``chunk=1`` 179 s, one forward plus batched vector-Jacobian products (``torch.autograd.grad(...,
is_grads_batched=True)``, 8 at a time) 174 s, replicated batch of 8 211 s; single-threaded with N = 8:
5.5 s, -, 6.9 s, 13.7 s. Batching buys no work on a CPU: a backward pass for one input gradient costs only
about 1-1.3 forward passes, replication repeats the forward pass, and the vmapped convolution and
batch-norm backward rules run largely as a per-row loop plus concatenation (the profiler shows one
convolution backward call per row). Wall times under load varied by up to 1.5x from run to run (the
VJPs were the fastest by wall time in one run and the slowest in another), so the CPU default is the
sequential loop, which also needs the least memory. On a GPU, where a batch-1 backward pass over the
deep, small feature maps leaves the device mostly idle, the replicated batch is the variant whose
kernels run truly batched; that default is reasoned, not measured here. Memory: each replicated row
keeps a forward pass's activations for its backward pass (about 0.65 GB per row for that U-Net at
512 x 512), so ``chunk=8`` peaks near 5.5 GB there against about 1.7 GB for ``chunk=1``; large slices
want ``tile``.

Tiles: the points are drawn over the whole slice once; each point is back-propagated in the tile that
owns it (its output pixel lies deepest inside that tile), and the magnitudes are added into the slice
map. A pointwise model gives the whole-slice result exactly; otherwise a point's gradient is exact when
the receptive field around it fits inside its tile.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ..tiling import Tile
from .base import SaliencyWarning, check_positive, crop_tile, foreground_mask, forward_probability


def draw_points(pool: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` distinct flat pixel indices drawn uniformly from ``pool`` (all of it if it has ``<= n``)."""
    pool = np.asarray(pool, dtype=np.int64)
    if pool.size <= n:
        return np.sort(pool)
    return np.sort(np.random.default_rng(seed).choice(pool, size=n, replace=False))


def default_chunk(device: torch.device) -> int:
    """Points per backward pass when not given: 1 (sequential, one forward) on CPU, 8 elsewhere."""
    return 1 if device.type == "cpu" else 8


def _point_gradients(
    model: torch.nn.Module, xt: torch.Tensor, target: int | None, ly: torch.Tensor, lx: torch.Tensor,
    chunk: int,
) -> torch.Tensor:
    """Sum over the points of ``|d p_t(point) / d xt|``, ``(K, h, w)``."""
    total = torch.zeros_like(xt[0])
    if chunk == 1:  # one forward pass, one backward pass per point on the retained graph
        xt = xt.requires_grad_(True)
        p = forward_probability(model, xt, target)[0]
        for n in range(ly.numel()):
            (grad,) = torch.autograd.grad(p[ly[n], lx[n]], xt, retain_graph=n + 1 < ly.numel())
            total += grad[0].abs()
        return total
    for start in range(0, ly.numel(), chunk):  # replicated rows, row n back-propagates point n
        cy, cx = ly[start:start + chunk], lx[start:start + chunk]
        rows = xt.repeat(cy.numel(), 1, 1, 1).requires_grad_(True)
        p = forward_probability(model, rows, target)
        picked = p[torch.arange(cy.numel(), device=p.device), cy, cx].sum()
        (grads,) = torch.autograd.grad(picked, rows)
        total += grads.abs().sum(dim=0)
    return total


def _points_saliency(
    model: torch.nn.Module, x: torch.Tensor, target: int | None, tiles: list[Tile], pool: np.ndarray,
    points: int, seed: int, chunk: int | None,
) -> torch.Tensor:
    points = check_positive("points", points)
    chunk = default_chunk(x.device) if chunk is None else check_positive("chunk", chunk)
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
    model: torch.nn.Module, x: torch.Tensor, *, target: int | None, tiles: list[Tile],
    points: int = 100, seed: int = 0, chunk: int | None = None,
) -> torch.Tensor:
    """Mean ``|d p_t(h_n, w_n) / d x_c|`` over ``points`` pixels drawn uniformly (seeded), ``(K, H, W)``."""
    height, width = x.shape[-2:]
    pool = np.arange(height * width, dtype=np.int64)
    return _points_saliency(model, x, target, tiles, pool, points, seed, chunk)


def foreground_points_saliency(
    model: torch.nn.Module, x: torch.Tensor, *, target: int | None, tiles: list[Tile],
    points: int = 100, seed: int = 0, chunk: int | None = None,
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
