"""Validation during training: which slices (and which part of them) are scored, and the scoring.

Validation predicts the chosen slices with the same tiled engine as prediction and scores them against
the labels (Dice, IoU, precision, recall, accuracy; mean and standard error over slices). On a small
volume that is every slice of the validation block, whole. On a stack of thousands of 16k x 16k slices a
whole block would be read and predicted at every validation (hundreds of GB each time), so the scored
pixels are bounded by :data:`VAL_MAX_PIXELS`: evenly spaced slices of the block (ends included), and,
when even one slice is larger than the budget, the same centred region of each. The no-leakage gap
around the block (:func:`~napari_channelbias.segmentation.training.split_train_val`) still covers the whole block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..windowing import Normalizer, extract_window, slice_along
from .labels import binary_target
from .metrics import slice_metrics, summarise
from .prediction import TiledPredictor

# Validation scores at most this many pixels (32 M: 128 slices of 512 x 512, two of 4k x 4k); volumes
# within it are validated whole, exactly as before the bound existed.
VAL_MAX_PIXELS = 1 << 25


@dataclass(frozen=True)
class ValidationPlan:
    """The slices validation scores, and the region (rows, columns) of each; ``None``: the whole slice."""

    slices: list[int]
    region: tuple[slice, slice] | None = None

    def describe(self) -> dict[str, Any]:
        """For the model card: the region as ``[[y0, y1], [x0, x1]]`` (None: whole slices)."""
        if self.region is None:
            return {"val_region": None}
        return {"val_region": [[r.start, r.stop] for r in self.region]}


def validation_plan(block: list[int], plane: tuple[int, int], max_pixels: int = VAL_MAX_PIXELS) -> ValidationPlan:
    """The bounded part of the validation ``block`` of slices with ``plane`` (height, width) to score.

    Whole slices while ``len(block) * H * W <= max_pixels``; else evenly spaced slices of the block, as
    many as fit (at least one), and if one slice alone exceeds the budget, a centred square-ish region
    of at most ``max_pixels`` pixels (rows and columns each at least 32, so the encoder still sees a
    meaningful patch).
    """
    if not block:
        return ValidationPlan([])
    h, w = int(plane[0]), int(plane[1])
    per_slice = h * w
    keep = max(1, min(len(block), max_pixels // max(1, per_slice)))
    if keep >= len(block):
        slices = list(block)
    else:
        picks = np.unique(np.linspace(0, len(block) - 1, keep).round().astype(int))
        slices = [block[int(i)] for i in picks]
    if per_slice <= max_pixels:
        return ValidationPlan(slices)
    side = math.isqrt(max_pixels)
    rh = min(h, max(32, side if w >= side else max_pixels // w))
    rw = min(w, max(32, max_pixels // rh))
    y0, x0 = (h - rh) // 2, (w - rw) // 2
    return ValidationPlan(slices, (slice(y0, y0 + rh), slice(x0, x0 + rw)))


def validate(
    model: torch.nn.Module, image: Any, labels: Any, plan: ValidationPlan, config: Any, window: int,
    normalizer: Normalizer, classes: int, device: torch.device,
) -> dict[str, dict[str, float]]:
    """Predict and score the planned slices (regions) with ``config``'s padding, axis, tile, precision and
    foreground (a :class:`~napari_channelbias.segmentation.training.TrainConfig`); the model is put back
    in training mode."""
    predictor = TiledPredictor(model, tile=config.val_tile, overlap=min(64, config.val_tile // 4),
                               batch_size=None, device=device, amp=config.amp, compile=config.compile)
    rows = []
    for z in plan.slices:
        win = extract_window(image, z, window, config.padding, config.axis, normalizer, region=plan.region)
        ((_, probs),) = predictor.push(z, win) + predictor.flush()
        truth = slice_along(labels, z, config.axis, plan.region)
        if classes == 1:
            rows.append(slice_metrics(probs[0] > 0.5, binary_target(truth, config.foreground)))
        else:
            rows.append(slice_metrics(probs.argmax(axis=0), truth, num_classes=classes))
    model.train()
    return summarise(rows)
