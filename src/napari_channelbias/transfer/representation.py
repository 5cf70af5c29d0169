"""The representation f of a candidate initialisation: its encoder's second-to-last level.

A candidate is the segmentation model :func:`~napari_channelbias.models.factory.build_model` makes for
an init (``imagenet``, ``uniform-*``, ``average``, ``mirror``, ``random`` or ``checkpoint:PATH``) --
exactly the weights fine-tuning would start from. Only its encoder is kept; it runs in eval mode
without gradients. smp encoders return one feature map per level (input, stride 2, 4, 8, 16, 32);
following the thesis (ch. 4.2) f is the *second-to-last* level (stride 16 for a depth-5 encoder),
because the last level carries the most source-specific features.

``pooled=True`` averages f over its spatial positions (one C-vector per window): the thesis's choice
when only the decoder will be trained. ``pooled=False`` (the default here, because this package fine-
tunes the whole network) flattens the ``C x h x w`` map, so a flipped view must also map to a
correspondingly flipped feature map to count as close.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..models.checkpoints import read_checkpoint
from ..models.factory import build_model
from ..models.spec import CHECKPOINT_PREFIX, RANDOM_INIT, ModelSpec, normalise_init_name

#: Which encoder level f is taken from (Python index into the encoder's list of feature maps).
LEVEL = -2


def candidate_spec(init: str, arch: str, encoder: str, window: int, weights_path: str | None = None) -> ModelSpec:
    """The model spec of one candidate; a ``checkpoint:PATH`` candidate keeps its own architecture.

    A checkpoint's card fixes its architecture, encoder and classes (its weights only fit those); its
    window must still equal ``window``, since every candidate sees the same windows
    (:func:`~napari_channelbias.models.factory.build_model` says so otherwise).
    """
    init = normalise_init_name(init)
    if init.startswith(CHECKPOINT_PREFIX):
        card, _ = read_checkpoint(init[len(CHECKPOINT_PREFIX):])
        model = dict(card.get("model") or {})
        return ModelSpec(arch=model.get("arch", arch), encoder=model.get("encoder", encoder), init=init,
                         window=window, classes=int(model.get("classes", 1)))
    return ModelSpec(arch=arch, encoder=encoder, init=init, window=window, weights_path=weights_path)


def build_encoder(spec: ModelSpec, seed: int = 0) -> tuple[nn.Module, dict[str, Any]]:
    """The candidate's encoder in eval mode with frozen parameters, and the model's provenance.

    The ``random`` candidate is drawn from ``torch.manual_seed(seed)`` inside a forked RNG state, so it
    is the same network on every call and the caller's random state is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        if spec.init == RANDOM_INIT:
            torch.manual_seed(seed)
        model, provenance = build_model(spec)
    encoder = getattr(model, "encoder", None)
    if not isinstance(encoder, nn.Module):  # every smp model has one; a guard for future architectures
        raise TypeError(f"{type(model).__name__} has no .encoder module to take features from")
    del model  # the decoder is not needed for the score
    encoder.eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    return encoder, provenance


def encoder_features(
    encoder: nn.Module, windows: np.ndarray, pooled: bool = False, batch_size: int = 16,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """f for each window: ``(n, C)`` pooled or ``(n, C * h * w)`` unpooled, float32 on the CPU.

    Parameters
    ----------
    encoder
        An smp encoder (returns its list of feature maps), in eval mode.
    windows
        ``(n, K, P, P)`` normalised windows, ``P`` a multiple of 32.
    """
    device = torch.device(device)
    encoder.to(device)
    out = []
    with torch.inference_mode():
        for start in range(0, len(windows), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(windows[start:start + batch_size])).to(device)
            levels = encoder(x)
            f = levels[LEVEL]
            f = f.mean(dim=(2, 3)) if pooled else f.flatten(1)
            out.append(f.float().cpu().numpy())
    return np.concatenate(out, axis=0)
