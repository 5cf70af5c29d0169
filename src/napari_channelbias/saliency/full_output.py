"""``full-output`` and ``foreground``: the input gradient of the summed target probability.

``full-output``::

    S_c(h, w) = | d sum_{h', w'} p_t(h', w') / d x_c(h, w) |

``foreground``: the same with the sum weighted by the fixed mask ``M = [p_t > 0.5]`` of the clean
forward pass (``M`` is a constant, not differentiated)::

    S_c(h, w) = | d sum_{h', w'} M(h', w') p_t(h', w') / d x_c(h, w) |

One forward and one backward pass per tile. The sums run over the original pixels of the slice only: the
input is padded to a multiple of 32 for the encoder and the padded output pixels are cropped before the
sum; the gradient is taken with respect to the unpadded input.

Tiles: the gradient of a sum is the sum of the gradients of its parts. Each tile differentiates the sum
over the output pixels it owns (for ``foreground``: the owned pixels of ``M``, with ``M`` taken from that
tile's clean pass), the signed gradients are added into one slice-sized array, and the magnitude is taken
only at the end. The result equals the whole-slice map exactly when every owned output pixel and its
gradient are computed exactly inside its tile, i.e. when the model's receptive field radius fits in half
the overlap and the model is translation equivariant at the tile offsets (always true for a pointwise
1x1 model); otherwise owned pixels near a tile border see less context and the maps agree approximately.
"""

from __future__ import annotations

import warnings

import torch

from ..tiling import Tile
from .base import SaliencyWarning, crop_tile, forward_probability


def _summed_probability_gradient(
    model: torch.nn.Module, x: torch.Tensor, target: int | None, tiles: list[Tile], foreground: bool
) -> torch.Tensor:
    grad_sum = torch.zeros_like(x[0])
    foreground_pixels = 0
    for plan in tiles:
        xt = crop_tile(x, plan).requires_grad_(True)
        p = forward_probability(model, xt, target)[0]
        owned = p[plan.owned_local]
        if foreground:
            mask = (owned.detach() > 0.5).to(owned.dtype)
            foreground_pixels += int(mask.sum().item())
            owned = owned * mask
        (grad,) = torch.autograd.grad(owned.sum(), xt)
        ys, xs = plan.region
        grad_sum[:, ys, xs] += grad[0]
    if foreground and foreground_pixels == 0:
        warnings.warn("foreground saliency: the model predicts no foreground pixel (p_t > 0.5) in this "
                      "slice, so the maps are all zeros", SaliencyWarning, stacklevel=4)
    return grad_sum.abs()


def full_output_saliency(
    model: torch.nn.Module, x: torch.Tensor, *, target: int | None, tiles: list[Tile]
) -> torch.Tensor:
    """``| d sum p_t / d x_c |`` ``(K, H, W)`` of a ``(1, K, H, W)`` input (model already frozen)."""
    return _summed_probability_gradient(model, x, target, tiles, foreground=False)


def foreground_saliency(
    model: torch.nn.Module, x: torch.Tensor, *, target: int | None, tiles: list[Tile]
) -> torch.Tensor:
    """``| d sum M p_t / d x_c |`` with ``M = [p_t > 0.5]`` fixed; zeros (and a warning) if ``M`` is empty."""
    return _summed_probability_gradient(model, x, target, tiles, foreground=True)
