"""Online ProtoSeg: a differentiable SA-score loss on chosen layers, added to the training loss.

The paper (sec. 3.2, "online ProtoSeg") adds the SA score of deep features to the training loss and
finds it raises the features' segmentation ability without hurting the output. Our reading, for a
batch of patches with ground truth ``G``:

- for each chosen layer and each patch, prototypes are the masked means of the features under ``G``
  brought to the layer's resolution (area averaging, as offline; during training the truth is known,
  so it defines the prototypes rather than the model's still-changing output);
- the soft assignment is the softmax of the negative squared distances (no argmax, so gradients flow);
  its foreground map is brought to patch size (bilinear);
- the loss is 1 - soft Dice(foreground map, G), averaged over the patches where both classes occur
  and over the layers. Patches with an empty or full ``G`` have no second prototype and are skipped.

The term is ``lambda * loss``; ``lambda = 0`` (the default) leaves training untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .layers import FeatureHooks, layer_catalog
from .protoseg import class_weights, probability_map, prototypes, to_slice

DEFAULT_LAYERS = "last2"


def soft_sa_loss(features: torch.Tensor, truth: torch.Tensor) -> torch.Tensor | None:
    """1 - soft Dice of the ProtoSeg foreground map of ``features`` ``(B, C, h, w)`` against binary
    ``truth`` ``(B, H, W)``; the mean over the patches where it is defined, ``None`` if none is."""
    losses = []
    size = tuple(truth.shape[-2:])
    for f, g in zip(features, truth, strict=True):
        fg = int((g > 0).sum())
        if fg == 0 or fg == g.numel():
            continue
        weights = class_weights(g, 2, tuple(f.shape[-2:]))
        p = to_slice(probability_map(f.float(), prototypes(f.float(), weights))[1], size)
        t = (g > 0).float()
        losses.append(1.0 - 2.0 * (p * t).sum() / (p.sum() + t.sum()).clamp(min=1e-6))
    return torch.stack(losses).mean() if losses else None


class OnlineProtoSeg:
    """Keeps the chosen layers' features of each training forward pass and turns them into the loss.

    Use as a context manager around the training loop; after each forward, :meth:`loss` gives the
    averaged soft SA loss of the layers against the batch's binary truth (zero when undefined).
    """

    def __init__(self, model: nn.Module, layers: str | Sequence[str] = DEFAULT_LAYERS) -> None:
        specs = layer_catalog(model).select(layers)
        self.hooks = FeatureHooks(model, specs, detach=False)

    def __enter__(self) -> OnlineProtoSeg:
        self.hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.hooks.__exit__(*exc)

    def loss(self, truth: torch.Tensor) -> torch.Tensor:
        terms = [t for t in (soft_sa_loss(f, truth) for f in self.hooks.take().values()) if t is not None]
        if not terms:
            return torch.zeros((), device=truth.device)
        return torch.stack(terms).mean()
