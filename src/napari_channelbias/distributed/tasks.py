"""The functions Dask runs on a worker: one block of slices through the same core generators.

Each opens the image by path (reading only its slices and their halo), takes the model its
:class:`~.plugin.ModelPlugin` loaded, and runs :func:`~napari_channelbias.segmentation.prediction.predict_events`,
:func:`~napari_channelbias.saliency.volume.saliency_events` or
:func:`~napari_channelbias.segmentation.evaluation.evaluate_events` on the block, exactly as the
single-process path runs them on the whole selection. Outputs go to the worker's own chunks of the
results store; what is returned is small and merges exactly (slice lists, per-slice metric rows, a
:class:`~napari_channelbias.asymmetry.volume.VolumeAsymmetry` of the block's slices).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..asymmetry.volume import VolumeAsymmetry
from ..events import SliceDone, run_to_end
from ..io.read import open_volume
from ..saliency.volume import saliency_events
from ..segmentation.evaluation import evaluate_events
from ..segmentation.prediction import predict_events
from .plugin import worker_model


def _device_of(model: Any) -> Any:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return "cpu"


def predict_block(plugin: str, image: str, store: str, model_name: str, block: Sequence[int],
                  options: Mapping[str, Any]) -> tuple[int, ...]:
    """Predict ``block`` into the store; returns the block."""

    model, card = worker_model(plugin)
    run_to_end(predict_events(model, card, open_volume(image), slices=list(block), store=store,
                              model_name=model_name, device=_device_of(model), **dict(options)))
    return tuple(block)


def saliency_block(plugin: str, image: str, store: str | None, model_name: str | None, method: str,
                   block: Sequence[int], params: Mapping[str, Any],
                   asymmetry: Mapping[str, Any] | None) -> VolumeAsymmetry | None:
    """Saliency of ``block`` (into the store if given); returns the block's asymmetry accumulator."""

    model, card = worker_model(plugin)
    acc = VolumeAsymmetry(card.window, **dict(asymmetry)) if asymmetry is not None else None

    def add(event: Any) -> None:
        if acc is not None and isinstance(event, SliceDone):
            acc.add(event.z, event.result)

    run_to_end(saliency_events(model, card, open_volume(image), method, slices=list(block), store=store,
                               model_name=model_name, collect=False, device=_device_of(model), **dict(params)),
               add)
    return acc


def evaluate_block(plugin: str, image: str, labels: str, block: Sequence[int],
                   options: Mapping[str, Any]) -> dict[int, dict[str, float]]:
    """Per-slice segmentation metrics of ``block``."""

    model, card = worker_model(plugin)
    result = run_to_end(evaluate_events(model, card, open_volume(image), open_volume(labels), slices=list(block),
                                        device=_device_of(model), **dict(options)))
    return dict(result["per_slice"])
