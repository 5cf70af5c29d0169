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

Tiles (see :func:`~napari_channelbias.tiling.plan_tiles`) split a large slice for memory. Each tile
*owns* the output pixels closest to its centre (the owned regions partition the slice; each lies at
least ``overlap // 2`` pixels inside its tile except along the slice border). A method that sums over
output pixels sums, per tile, over the pixels that tile owns, so adding the tiles' contributions
reproduces the whole-slice sum exactly whenever each owned output pixel is computed exactly inside its
tile.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..segmentation.fast_path import prepare_input
from ..tiling import Tile, crop_to, pad_to_multiple


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
    logits = crop_to(model(prepare_input(padded)), size)  # the device's fastest layout (fast_path)
    if logits.ndim != 4 or logits.shape[0] != x.shape[0]:
        raise ValueError(f"the model must map (B, K, H, W) to logits (B, C, H, W); got {tuple(logits.shape)}")
    return target_probability(logits, target)


def channel_means(x: torch.Tensor) -> torch.Tensor:
    """Mean of every input channel over the whole slice, ``(K,)``, for the mean-replacement methods."""
    return x[0].mean(dim=(1, 2))


def crop_tile(x: torch.Tensor, plan: Tile) -> torch.Tensor:
    """The tile's part of a ``(1, K, H, W)`` input, detached and contiguous."""
    ys, xs = plan.region
    return x[..., ys, xs].detach().contiguous()


def foreground_mask(
    model: torch.nn.Module, x: torch.Tensor, target: int | None, tiles: list[Tile]
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
