"""Parts every saliency method shares: model state, the target probability, tiles and their ownership.

The model maps a float32 batch ``(B, K, H, W)`` to logits ``(B, C, H, W)``; the probability map is
``sigmoid`` of the single logit for a binary model (C == 1) and ``softmax`` over the C classes otherwise.
``p_t`` is the probability of the target class ``t``: channel 0 of a binary model, class 1 of a
multi-class model unless chosen otherwise.

Encoders need heights and widths that are multiples of 32, so every forward pass goes through
:func:`~napari_channelbias.tiling.pad_to_multiple` and the output is cut back with
:func:`~napari_channelbias.tiling.crop_to` *before* anything is summed: every sum over output pixels runs
over the original pixels only, and gradients are taken with respect to the unpadded input (the padding is
part of the differentiated graph, so a padded pixel's gradient flows back to the pixel it copies).

Tiles (see :func:`plan_tiles`) split a large slice for memory. Each tile *owns* the output pixels closest
to its centre (the owned regions partition the slice; each lies at least ``overlap // 2`` pixels inside
its tile except along the slice border). A method that sums over output pixels sums, per tile, over the
pixels that tile owns, so adding the tiles' contributions reproduces the whole-slice sum exactly whenever
each owned output pixel is computed exactly inside its tile.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..tiling import crop_to, pad_to_multiple, tile_starts


class SaliencyWarning(UserWarning):
    """A saliency result that is valid but degenerate (for example an empty foreground: all zeros)."""


@contextmanager
def frozen_eval(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Put ``model`` in eval mode with parameters not requiring grad; restore both states afterwards.

    Every submodule's own ``training`` flag is restored (a model may keep, say, frozen batch-norm layers
    in eval mode while the rest trains), and so is every parameter's ``requires_grad``.
    """
    modes = [(m, m.training) for m in model.modules()]
    grads = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in grads:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for m, mode in modes:
            m.training = mode
        for p, flag in grads:
            p.requires_grad_(flag)


def as_input(window: Any, device: torch.device) -> torch.Tensor:
    """A ``(K, H, W)`` numpy array or tensor as a detached float32 batch ``(1, K, H, W)`` on ``device``."""
    if not isinstance(window, torch.Tensor):
        window = np.ascontiguousarray(window)  # torch cannot wrap negative strides, e.g. window[::-1]
    x = torch.as_tensor(window)
    if x.ndim != 3:
        raise ValueError(f"a saliency window is (K, H, W); got shape {tuple(x.shape)}")
    return x.detach().to(device=device, dtype=torch.float32).unsqueeze(0).contiguous()


def resolve_target(n_classes: int, target: int | None) -> int:
    """The target class: given, or the foreground default (0 for a binary model, else class 1)."""
    if target is None:
        return 0 if n_classes == 1 else 1
    valid = "0 (the single output channel)" if n_classes == 1 else f"0..{n_classes - 1}"
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)) or not 0 <= target < n_classes:
        raise ConfigError(f"target class {target!r} does not exist in a model with {n_classes} output "
                          f"channel(s); valid targets: {valid}")
    return int(target)


def target_probability(logits: torch.Tensor, target: int | None) -> torch.Tensor:
    """``p_t`` of logits ``(B, C, H, W)`` as ``(B, H, W)``: sigmoid for C == 1, softmax over C otherwise."""
    t = resolve_target(logits.shape[1], target)
    if logits.shape[1] == 1:
        return torch.sigmoid(logits[:, 0])
    return torch.softmax(logits, dim=1)[:, t]


def forward_probability(model: torch.nn.Module, x: torch.Tensor, target: int | None) -> torch.Tensor:
    """``p_t`` ``(B, H, W)`` of ``x`` ``(B, K, H, W)``; padded to a multiple of 32, output cropped back."""
    padded, size = pad_to_multiple(x)
    logits = crop_to(model(padded), size)
    if logits.ndim != 4 or logits.shape[0] != x.shape[0]:
        raise ValueError(f"the model must map (B, K, H, W) to logits (B, C, H, W); got {tuple(logits.shape)}")
    return target_probability(logits, target)


def channel_means(x: torch.Tensor) -> torch.Tensor:
    """Mean of every input channel over the whole slice, ``(K,)``, for the mean-replacement methods."""
    return x[0].mean(dim=(1, 2))


@dataclass(frozen=True)
class TilePlan:
    """One tile: the input region it reads and the output region it accounts for (global coordinates)."""

    y0: int
    y1: int
    x0: int
    x1: int
    own_y0: int
    own_y1: int
    own_x0: int
    own_x1: int

    @property
    def region(self) -> tuple[slice, slice]:
        """Rows and columns of the slice this tile reads."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def owned(self) -> tuple[slice, slice]:
        """Rows and columns (global) whose output pixels this tile accounts for."""
        return slice(self.own_y0, self.own_y1), slice(self.own_x0, self.own_x1)

    @property
    def owned_local(self) -> tuple[slice, slice]:
        """:attr:`owned` in the tile's own coordinates."""
        return (slice(self.own_y0 - self.y0, self.own_y1 - self.y0),
                slice(self.own_x0 - self.x0, self.own_x1 - self.x0))


def _axis_plan(length: int, tile: int | None, overlap: int) -> list[tuple[int, int, int, int]]:
    """(start, stop, own_start, own_stop) per tile along one axis; ownership splits overlaps in half."""
    if tile is None or tile >= length:
        return [(0, length, 0, length)]
    starts = tile_starts(length, tile, overlap)
    stops = [min(s + tile, length) for s in starts]
    # The boundary between neighbours sits in the middle of their overlap, as far as possible from
    # both tiles' borders, so an owned pixel has the most context its tile can give it.
    bounds = [0] + [(starts[i + 1] + stops[i]) // 2 for i in range(len(starts) - 1)] + [length]
    return [(starts[i], stops[i], bounds[i], bounds[i + 1]) for i in range(len(starts))]


def plan_tiles(height: int, width: int, tile: int | None = None, overlap: int = 64) -> list[TilePlan]:
    """Tiles covering a ``height`` x ``width`` slice whose owned regions partition it.

    ``tile=None`` (or a tile at least as large as the slice) gives one tile owning everything. Tiles of a
    multiple of 32 avoid padding inside each tile.
    """
    if tile is not None:
        if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or tile < 1:
            raise ConfigError(f"tile must be a positive number of pixels (e.g. 512) or None, got {tile!r}")
        if not 0 <= overlap < tile:
            raise ConfigError(f"overlap must be in [0, tile) = [0, {tile}), got {overlap!r}")
    rows, cols = _axis_plan(height, tile, overlap), _axis_plan(width, tile, overlap)
    return [TilePlan(y0, y1, x0, x1, oy0, oy1, ox0, ox1)
            for (y0, y1, oy0, oy1) in rows for (x0, x1, ox0, ox1) in cols]


def crop_tile(x: torch.Tensor, plan: TilePlan) -> torch.Tensor:
    """The tile's part of a ``(1, K, H, W)`` input, detached and contiguous."""
    ys, xs = plan.region
    return x[..., ys, xs].detach().contiguous()


def foreground_mask(
    model: torch.nn.Module, x: torch.Tensor, target: int | None, tiles: list[TilePlan]
) -> torch.Tensor:
    """``M = [p_t > 0.5]`` ``(H, W)`` of the clean input, assembled from the tiles' owned regions."""
    mask = torch.zeros(x.shape[-2:], dtype=torch.bool, device=x.device)
    with torch.no_grad():
        for plan in tiles:
            p = forward_probability(model, crop_tile(x, plan), target)[0]
            mask[plan.owned] = p[plan.owned_local] > 0.5
    return mask


def check_positive(name: str, value: Any) -> int:
    """``value`` as an int if it is a positive integer, else a ConfigError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
