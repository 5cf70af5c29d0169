"""Segmentation quality of a trained model on labelled slices: per-slice metrics, mean and SE.

Evaluation is prediction (the same tiled engine the user runs) followed by
:func:`napari_channelbias.seg_metrics.slice_metrics` per slice, so the numbers describe exactly what
``channelbias predict`` writes. For a binary model the ground truth is :func:`.labels.binary_target` under the
foreground the model was trained on (from its model card); a multi-class model is compared
class by class.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from typing import Any

import numpy as np
import torch

from ..events import SliceDone
from ..models.checkpoints import ModelCard
from ..windowing import slice_along
from .labels import binary_target, card_foreground, check_labels
from .metrics import slice_metrics, summarise
from .prediction import predict_events


def evaluate_events(
    model: torch.nn.Module,
    card: ModelCard,
    image: Any,
    labels: Any,
    *,
    slices: str | Iterable[int] | None = None,
    device: str | torch.device = "auto",
    tile: int = 512,
    overlap: int = 64,
    batch_size: int = 4,
    compile: bool = False,
    foreground: int | str | None = None,
) -> Generator[SliceDone, None, dict[str, Any]]:
    """Predict the chosen slices and score them against ``labels``; yields ``SliceDone`` per slice.

    ``slices`` count along the model's slicing axis (``card.axis``). A binary model is scored against
    :func:`.labels.binary_target` with the foreground it was trained on (from its card); ``foreground``
    overrides it (``"any"`` or a value), for labels encoded differently from the training labels.

    Returns
    -------
    dict
        ``{"per_slice": {z: {metric: value}}, "summary": {metric: {"mean", "se", "n"}}}``.
    """
    classes = card.classes
    foreground = card_foreground(card, foreground)
    check_labels(labels, image.shape, classes, foreground)
    per_slice: dict[int, dict[str, float]] = {}
    gen = predict_events(model, card, image, slices=slices, tile=tile, overlap=overlap,
                         batch_size=batch_size, device=device, compile=compile)
    try:
        for event in gen:
            truth = np.asarray(slice_along(labels, event.z, card.axis))
            if classes == 1:
                metrics = slice_metrics(np.asarray(event.result) > 0, binary_target(truth, foreground))
            else:
                metrics = slice_metrics(np.asarray(event.result), truth, num_classes=classes)
            per_slice[event.z] = metrics
            yield SliceDone("evaluate", event.z, event.done, event.total, result=metrics)
    finally:
        gen.close()
    return {"per_slice": per_slice, "summary": summarise(list(per_slice.values()))}
