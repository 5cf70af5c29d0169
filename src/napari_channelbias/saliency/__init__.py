"""Per-channel saliency of a 2D+ segmentation model: which input slice (channel) drives the output.

Every method maps one normalised float32 window ``(K, H, W)`` to ``K`` non-negative float32 maps
``(K, H, W)``, map ``c`` for input channel ``c`` (slice ``z - r + c``). The definitions are those of the
design notes (section 2), one module per method family:

=======================  ==========================================================  ===================
method                   S_c                                                          module
=======================  ==========================================================  ===================
``full-output``          ``|d sum p_t / d x_c|``                                     ``full_output``
``foreground``           ``|d sum M p_t / d x_c|``, ``M = [p_t > 0.5]`` fixed        ``full_output``
``full-output-points``   ``mean_n |d p_t(h_n, w_n) / d x_c|``, N uniform pixels      ``points``
``foreground-points``    the same with the pixels drawn from ``M``                   ``points``
``occlusion``            ``|sum p_t(clean) - sum p_t(patch of c -> mean)|``          ``occlusion``
``gradcam``              ``|CAM(x) - CAM(x, channel c -> mean)|``                    ``gradcam``
``gradcam++``            the same with Grad-CAM++ weights                            ``gradcam``
=======================  ==========================================================  ===================

``p_t`` is the target-class probability (sigmoid of a single logit, softmax over several; target 0 for a
binary model, 1 for a multi-class one unless given). The model runs in eval mode with its parameters not
requiring grad; both states are restored afterwards. Sums run over the original pixels of the slice:
inputs are padded to a multiple of 32 for the encoder and the padded output is cropped before summing.

Tiling (``tile=...``) bounds memory on large slices; how each method's sums are split over tiles (exact
for pointwise models, approximate near tile borders for others, per-tile CAMs for Grad-CAM) is described
in :mod:`.base` and in each method's module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from .base import SaliencyWarning, as_input, frozen_eval, plan_tiles
from .full_output import foreground_saliency, full_output_saliency
from .gradcam import gradcam_plus_plus_saliency, gradcam_saliency
from .occlusion import occlusion_saliency
from .points import foreground_points_saliency, full_output_points_saliency

__all__ = ["SALIENCY_METHODS", "SaliencyMethod", "SaliencyWarning", "compute_saliency", "get_method"]


@dataclass(frozen=True)
class SaliencyMethod:
    """A registered method: its function and the keyword options it takes beyond target and tiles."""

    name: str
    function: Callable[..., torch.Tensor]
    options: tuple[str, ...]
    summary: str


SALIENCY_METHODS: dict[str, SaliencyMethod] = {
    m.name: m
    for m in (
        SaliencyMethod("full-output", full_output_saliency, (), "|d sum p_t / d x_c|"),
        SaliencyMethod("foreground", foreground_saliency, (), "|d sum M p_t / d x_c|, M = [p_t > 0.5]"),
        SaliencyMethod("full-output-points", full_output_points_saliency, ("points", "seed", "chunk"),
                       "mean |d p_t(pixel) / d x_c| over N uniformly drawn pixels"),
        SaliencyMethod("foreground-points", foreground_points_saliency, ("points", "seed", "chunk"),
                       "mean |d p_t(pixel) / d x_c| over N pixels drawn from M"),
        SaliencyMethod("occlusion", occlusion_saliency, ("patch", "batch_size"),
                       "|change of sum p_t| when a P x P patch of channel c is set to its mean"),
        SaliencyMethod("gradcam", gradcam_saliency, ("target_layer", "batch_size"),
                       "|CAM(x) - CAM(x, channel c set to its mean)|"),
        SaliencyMethod("gradcam++", gradcam_plus_plus_saliency, ("target_layer", "batch_size"),
                       "the same with Grad-CAM++ weights"),
    )
}


def get_method(name: str) -> SaliencyMethod:
    """The registered method called ``name``; a ConfigError listing the valid names otherwise."""
    try:
        return SALIENCY_METHODS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown saliency method {name!r}; valid methods: {', '.join(SALIENCY_METHODS)}"
        ) from None


def _device(device: str | torch.device) -> torch.device:
    from ..devices import resolve_device

    return resolve_device(device)


def compute_saliency(
    model: torch.nn.Module,
    window: Any,
    method: str,
    *,
    target: int | None = None,
    points: int = 100,
    seed: int = 0,
    patch: int = 16,
    target_layer: str | torch.nn.Module | None = None,
    device: str | torch.device = "cpu",
    tile: int | None = None,
    overlap: int = 64,
    chunk: int | None = None,
    batch_size: int = 8,
) -> np.ndarray:
    """Per-channel saliency maps of one slice's window.

    Parameters
    ----------
    model
        Maps ``(B, K, H, W)`` float input to logits ``(B, C, H, W)``. It is moved to ``device`` (in place,
        as ``Module.to`` does) and run in eval mode without parameter gradients; its training flags and
        ``requires_grad`` states are restored on return.
    window
        The normalised input, float32 ``(K, H, W)`` numpy array or tensor, any ``H`` and ``W``.
    method
        A name in :data:`SALIENCY_METHODS`.
    target
        Target class ``t``; default foreground (0 for a binary model, 1 for a multi-class model).
    points, seed, chunk
        ``-points`` methods: number of pixels N, the seed of their draw, and points per backward pass
        (1: one forward pass and N backward passes; k > 1: the input replicated k times in a batch;
        default 1 on CPU, 8 on a GPU; see :mod:`.points`).
    patch
        ``occlusion``: patch size and stride P.
    target_layer
        ``gradcam``/``gradcam++``: module or dotted module name; default the model's ``encoder`` (its
        last stage's features).
    batch_size
        ``occlusion``/``gradcam``/``gradcam++``: perturbed inputs per forward pass.
    device
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``, ``"auto"`` or a ``torch.device``.
    tile, overlap
        Split slices larger than ``tile`` pixels into tiles overlapping by ``overlap`` (memory bound);
        ``None`` runs the whole slice at once. See the package docstring for what tiling changes.

    Options a method does not use are ignored.

    Returns
    -------
    numpy.ndarray
        float32 ``(K, H, W)``, non-negative.

    Raises
    ------
    ConfigError
        Unknown method (the message lists the valid ones), target class, device, target layer, or an
        out-of-range option.
    """
    spec = get_method(method)
    dev = _device(device)
    x = as_input(window, dev)
    tiles = plan_tiles(x.shape[-2], x.shape[-1], tile, overlap)
    given = {"points": points, "seed": seed, "chunk": chunk, "patch": patch, "target_layer": target_layer,
             "batch_size": batch_size}
    options = {name: given[name] for name in spec.options}
    model.to(dev)
    with frozen_eval(model), torch.enable_grad():
        maps = spec.function(model, x, target=target, tiles=tiles, **options)
    return maps.detach().to("cpu", torch.float32).numpy()
