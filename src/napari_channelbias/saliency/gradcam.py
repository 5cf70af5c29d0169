"""``gradcam`` and ``gradcam++``, channel-occluded.

A class activation map is computed at a target layer with activations ``A_k(i, j)`` (k = feature map):

* class score ``Y = sum_{h,w} p_t(h, w)``, the target probability summed over the output (the original
  pixels of the slice or tile; padding to a multiple of 32 is cropped first);
* ``gradcam``: ``alpha_k = mean_{i,j} dY/dA_k(i,j)``, ``CAM = ReLU(sum_k alpha_k A_k)``;
* ``gradcam++`` (Chattopadhyay et al. 2018, in the closed form of the exponential score that common
  implementations use): with ``g = dY/dA``,
  ``a_k(i,j) = g^2 / (2 g^2 + sum_{a,b} A_k(a,b) g^3)`` (0 where ``g == 0`` or the denominator is 0),
  ``w_k = sum_{i,j} a_k(i,j) ReLU(g_k(i,j))``, ``CAM = ReLU(sum_k w_k A_k)``.

Raw magnitudes after the ReLU, no min-max scaling (scaling per map would erase exactly the differences
between channels this package measures). Per input channel ``c``::

    S_c = | CAM(x) - CAM(x with channel c replaced by its mean over the slice) |

upsampled bilinearly (``align_corners=False``) from the layer's grid to the padded input and cropped to
the slice. The K occluded copies run in batches of ``batch_size`` (at least 2) whose first element is the
clean input, so each difference compares outputs of one batched call (batches of different sizes may
round differently); with ``batch_size >= K + 1`` that is a single forward and backward pass.

Target layer: a module or its dotted name in ``model.named_modules()``; by default the model's
``encoder`` (segmentation-models-pytorch), whose output is the list of its stages' features, of which the
last, deepest one is used. For any module whose output is a list or tuple the last element is used.
The activation is replaced, inside the forward pass, by a detached copy that requires grad, so the
backward pass stops at the layer instead of running through the encoder.

Tiles: each tile computes its own CAM (its class score is the sum over the tile's output, and the
gradient pooling runs over the tile's feature map), and the maps are assembled from the regions each tile
owns. Because of that global pooling, tiled and whole-slice Grad-CAM maps differ even for pointwise
models; use tiles only where a whole slice does not fit in memory.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..tiling import Tile, padded_size
from .base import channel_means, check_positive, crop_tile, forward_probability


def resolve_target_layer(
    model: torch.nn.Module, target_layer: str | torch.nn.Module | None
) -> torch.nn.Module:
    """The module whose output feeds the CAM: given, named, or the model's ``encoder`` by default."""
    if isinstance(target_layer, torch.nn.Module):
        return target_layer
    if target_layer is None:
        encoder = getattr(model, "encoder", None)
        if isinstance(encoder, torch.nn.Module):
            return encoder
        convs = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
        raise ConfigError(
            "Grad-CAM needs a target layer and this model has no `encoder` to default to; pass "
            f"target_layer=<module name>, e.g. one of its convolutions: {', '.join(convs[-6:]) or 'none'}"
        )
    try:
        return model.get_submodule(target_layer)
    except AttributeError:
        names = [name for name, _ in model.named_modules() if name]
        hint = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        raise ConfigError(f"the model has no module named {target_layer!r} for Grad-CAM; module names "
                          f"are dotted paths such as: {hint}") from None


class _ActivationCapture:
    """Forward hook that swaps the layer's output for a leaf requiring grad and keeps that leaf."""

    def __init__(self) -> None:
        self.activation: torch.Tensor | None = None

    def __call__(self, module: torch.nn.Module, inputs: Any, output: Any) -> Any:
        last = output[-1] if isinstance(output, (list, tuple)) else output
        if not isinstance(last, torch.Tensor) or last.ndim != 4:
            shape = tuple(last.shape) if isinstance(last, torch.Tensor) else type(last).__name__
            raise ConfigError(f"Grad-CAM needs a layer with (B, F, h, w) feature maps; the target layer "
                              f"gives {shape}; choose another target_layer")
        self.activation = last.detach().requires_grad_(True)
        # A clone goes downstream, so an in-place op after the layer cannot alter the kept activation.
        passed = self.activation.clone()
        if isinstance(output, list):
            return [*output[:-1], passed]
        if isinstance(output, tuple):
            return (*output[:-1], passed)
        return passed


def cam_from(activation: torch.Tensor, grad: torch.Tensor, plus_plus: bool) -> torch.Tensor:
    """CAM ``(B, h, w)`` from activations and score gradients ``(B, F, h, w)``; ReLU, no scaling."""
    if plus_plus:
        g2 = grad * grad
        denom = 2 * g2 + activation.sum(dim=(2, 3), keepdim=True) * g2 * grad
        safe = torch.where(denom != 0, denom, torch.ones_like(denom))
        alpha = torch.where((grad != 0) & (denom != 0), g2 / safe, torch.zeros_like(g2))
        weights = (alpha * torch.relu(grad)).sum(dim=(2, 3))
    else:
        weights = grad.mean(dim=(2, 3))
    return torch.relu((weights[:, :, None, None] * activation).sum(dim=1))


def _tile_cams(
    model: torch.nn.Module, layer: torch.nn.Module, inputs: torch.Tensor, target: int | None,
    plus_plus: bool,
) -> torch.Tensor:
    """CAMs of a batch ``(B, K, h, w)`` upsampled to ``(B, h, w)``."""
    capture = _ActivationCapture()
    handle = layer.register_forward_hook(capture)
    try:
        score = forward_probability(model, inputs, target).sum()
    finally:
        handle.remove()
    if capture.activation is None:
        raise ConfigError("the Grad-CAM target layer was not used in the model's forward pass; "
                          "choose a layer the output depends on")
    activation = capture.activation
    (grad,) = torch.autograd.grad(score, activation, allow_unused=True)
    if grad is None:
        raise ConfigError("the model's output does not depend on the Grad-CAM target layer; choose another")
    cam = cam_from(activation.detach(), grad, plus_plus)
    height, width = inputs.shape[-2:]
    up = F.interpolate(cam[:, None], size=(padded_size(height), padded_size(width)), mode="bilinear",
                       align_corners=False)
    return up[:, 0, :height, :width]


def _occluded_cam_saliency(
    model: torch.nn.Module, x: torch.Tensor, target: int | None, tiles: list[Tile],
    target_layer: str | torch.nn.Module | None, batch_size: int, plus_plus: bool,
) -> torch.Tensor:
    batch_size = check_positive("batch_size", batch_size)
    if batch_size < 2:
        raise ConfigError(
            f"Grad-CAM needs batch_size >= 2 (the clean input plus occluded copies), got {batch_size}"
        )
    layer = resolve_target_layer(model, target_layer)
    n_channels = x.shape[1]
    means = channel_means(x)
    maps = torch.zeros_like(x[0])
    for plan in tiles:
        xt = crop_tile(x, plan)
        own_y, own_x = plan.owned_local
        step = batch_size - 1
        for first in range(0, n_channels, step):
            channels = range(first, min(first + step, n_channels))
            inputs = xt.repeat(len(channels) + 1, 1, 1, 1)  # index 0 stays clean
            for k, c in enumerate(channels, start=1):
                inputs[k, c] = means[c]
            cams = _tile_cams(model, layer, inputs, target, plus_plus)
            change = (cams[1:] - cams[:1]).abs()[:, own_y, own_x]
            maps[first:first + len(channels), plan.owned[0], plan.owned[1]] = change
    return maps


def gradcam_saliency(
    model: torch.nn.Module, x: torch.Tensor, *, target: int | None, tiles: list[Tile],
    target_layer: str | torch.nn.Module | None = None, batch_size: int = 8,
) -> torch.Tensor:
    """Channel-occluded Grad-CAM maps ``(K, H, W)`` of a ``(1, K, H, W)`` input (model already frozen)."""
    return _occluded_cam_saliency(model, x, target, tiles, target_layer, batch_size, plus_plus=False)


def gradcam_plus_plus_saliency(
    model: torch.nn.Module, x: torch.Tensor, *, target: int | None, tiles: list[Tile],
    target_layer: str | torch.nn.Module | None = None, batch_size: int = 8,
) -> torch.Tensor:
    """Channel-occluded Grad-CAM++ maps ``(K, H, W)`` of a ``(1, K, H, W)`` input (model already frozen)."""
    return _occluded_cam_saliency(model, x, target, tiles, target_layer, batch_size, plus_plus=True)
