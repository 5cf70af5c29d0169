"""``occlusion``: how much the summed target probability changes when one channel's patch is blanked.

The slice is cut into ``P x P`` patches on a grid anchored at the slice origin (stride ``P``; the last row
and column of patches are narrower when ``H`` or ``W`` is not a multiple of ``P``). For every patch and
every input channel ``c`` separately, the patch of channel ``c`` is replaced by that channel's mean over
the whole slice, and::

    S_c(patch) = | sum_{h,w} p_t(clean)(h, w) - sum_{h,w} p_t(occluded)(h, w) |

is written into every pixel of the patch. The sums run over the original pixels of the slice (padding to
a multiple of 32 is cropped from the output first). They are evaluated as ``sum (p_clean - p_occluded)``
in float64: the same number, but without losing a small difference between two large float32 sums.

Cost: ``K * ceil(H / P) * ceil(W / P)`` forward passes without gradients, run in batches of
``batch_size`` (at least 2) whose first element is the clean input: the reference comes from the very
same batched call, so outside a patch's receptive field the two outputs are bitwise equal and add
nothing (a batch of one and a batch of eight may round differently). A channel the model ignores gets
exactly zero.

Tiles: the channel means are those of the whole slice. Each tile evaluates every patch that intersects it
(blanking the part inside the tile) and sums the probability change over the output pixels it owns; the
signed changes of all tiles are added per patch and the magnitude is taken at the end. This equals the
whole-slice result exactly for a pointwise model, and whenever each owned pixel's receptive field lies
inside its tile.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ..tiling import Tile
from .base import channel_means, check_positive, crop_tile, forward_probability


def _patch_ranges(start: int, stop: int, patch: int) -> list[tuple[int, int, int]]:
    """(grid index, lo, hi) of the patches meeting ``[start, stop)``, clipped to it."""
    return [(i, max(i * patch, start), min((i + 1) * patch, stop))
            for i in range(start // patch, (stop - 1) // patch + 1)]


def occlusion_saliency(
    model: torch.nn.Module, x: torch.Tensor, *, target: int | None, tiles: list[Tile],
    patch: int = 16, batch_size: int = 8,
) -> torch.Tensor:
    """Per-channel occlusion maps ``(K, H, W)`` of a ``(1, K, H, W)`` input (model already frozen)."""
    patch, batch_size = check_positive("patch", patch), check_positive("batch_size", batch_size)
    if batch_size < 2:
        raise ConfigError(
            f"occlusion needs batch_size >= 2 (the clean input plus perturbations), got {batch_size}"
        )
    n_channels, height, width = x.shape[1:]
    means = channel_means(x)
    grid_h, grid_w = -(-height // patch), -(-width // patch)
    change = torch.zeros((n_channels, grid_h, grid_w), dtype=torch.float64, device=x.device)
    with torch.no_grad():
        for plan in tiles:
            xt = crop_tile(x, plan)
            own_y, own_x = plan.owned_local
            # (channel, patch row, patch column, local rows, local columns) of every perturbation
            jobs = [(c, i, j, slice(ly0 - plan.y0, ly1 - plan.y0), slice(lx0 - plan.x0, lx1 - plan.x0))
                    for c in range(n_channels)
                    for i, ly0, ly1 in _patch_ranges(plan.y0, plan.y1, patch)
                    for j, lx0, lx1 in _patch_ranges(plan.x0, plan.x1, patch)]
            step = batch_size - 1
            for start in range(0, len(jobs), step):
                batch = jobs[start:start + step]
                inputs = xt.repeat(len(batch) + 1, 1, 1, 1)  # index 0 stays clean
                for k, (c, _, _, rows, cols) in enumerate(batch, start=1):
                    inputs[k, c, rows, cols] = means[c]
                p = forward_probability(model, inputs, target)[:, own_y, own_x]
                delta = (p[:1] - p[1:]).double().sum(dim=(1, 2))
                for k, (c, i, j, _, _) in enumerate(batch):
                    change[c, i, j] += delta[k]
    maps = change.abs().float()
    maps = maps.repeat_interleave(patch, dim=1).repeat_interleave(patch, dim=2)
    return maps[:, :height, :width].contiguous()
