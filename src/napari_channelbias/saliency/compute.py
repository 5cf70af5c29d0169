"""``compute_saliency``: one slice's window in, ``K`` per-channel saliency maps out, any registered method.

The method's function is looked up from the torch-free :mod:`.registry`; this module holds what every
method shares around it: the device, the input batch, the tile plan, and the model's eval state
(restored on return).
"""

from __future__ import annotations

import warnings
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch

from ..devices import resolve_device
from ..segmentation.fast_path import compiles_gradients, gradient_friendly_forward, prepare_model
from ..tiling import plan_tiles
from . import full_output, gradcam, occlusion, points
from .base import SaliencyWarning, as_input, frozen_eval
from .registry import SaliencyMethod, get_method

__all__ = ["DEFAULT_TILE", "compute_saliency", "method_function"]

# Autograd keeps every activation of the slice for the backward pass: a Lite0 U-Net's full-output pass
# measured +0.43 GB of peak memory at 512 px and +1.5 GB at 1024 px (it grows with the pixels), so an
# untiled 4096-pixel slice needs about 24 GB and the process is killed. Slices up to this size run
# whole; larger ones are tiled.
DEFAULT_TILE = 1024

# The method modules by their name in the registry (``SaliencyMethod.module``).
_MODULES = {m.__name__.rpartition(".")[2]: m for m in (full_output, gradcam, occlusion, points)}


def method_function(method: SaliencyMethod) -> Any:
    """The function that computes ``method``'s maps (see :class:`~.registry.SaliencyMethod`)."""
    return getattr(_MODULES[method.module], method.function)


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
    compile: bool = False,
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
        A name in :data:`~.registry.SALIENCY_METHODS`.
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
        ``None`` means :data:`DEFAULT_TILE` (1024: slices up to that size run whole, about 1.5 GB of
        autograd memory for a Lite0 U-Net); give a larger tile to run a larger slice whole. See the
        package docstring for what tiling changes.
    compile
        Run the model through ``torch.compile`` (:mod:`napari_channelbias.segmentation.fast_path`; the
        first call per input shape compiles, later calls and runs reuse it). Grad-CAM methods stay eager:
        they hook a layer per call, and a compiled graph would not see a hook added after compiling. On
        the CPU every method stays eager, with a :class:`SaliencyWarning`: compiled saliency measured
        slower there (:func:`~napari_channelbias.segmentation.fast_path.compiles_gradients`).

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
    dev = resolve_device(device)
    x = as_input(window, dev)
    tiles = plan_tiles(x.shape[-2], x.shape[-1], DEFAULT_TILE if tile is None else tile, overlap)
    given = {"points": points, "seed": seed, "chunk": chunk, "patch": patch, "target_layer": target_layer,
             "batch_size": batch_size}
    options = {name: given[name] for name in spec.options}
    # The device's fastest exact layout (channels_last on the CPU), maybe compiled; see fast_path.
    compiled = compile and spec.module != "gradcam"
    if compiled and not compiles_gradients(dev):
        warnings.warn("saliency runs without torch.compile on the CPU: compiled, it measured slower than the "
                      "eager fast path (docs/performance.md); prediction and training do compile",
                      SaliencyWarning, stacklevel=2)
        compiled = False
    runner = prepare_model(model, dev, compile=compiled)
    # Eval batch norms as one multiply-add, in-place activations out of place: same values to rounding,
    # a cheaper backward (inductor fuses these itself when compiled).
    forward = nullcontext() if compiled else gradient_friendly_forward(dev)
    with frozen_eval(model), torch.enable_grad(), forward:
        maps = method_function(spec)(runner, x, target=target, tiles=tiles, **options)
    return maps.detach().to("cpu", torch.float32).numpy()
