"""Where the volume drivers put each finished slice when their output is a results store.

:func:`~napari_channelbias.segmentation.prediction.predict_events` and
:func:`~napari_channelbias.saliency.volume.saliency_events` stay one loop over slices; given a store they
ask a sink which of their slices are still to do (:meth:`todo`: a rerun computes only those) and hand it
each finished slice (:meth:`write`). The same sinks serve the Dask tasks, which open the store by path
on the worker and write only their own slices. The exact settings of the run, including a digest of the
model's weights, are recorded with each image, so a store never mixes slices of two different runs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..io.read import open_volume, volume_scale
from ..saliency.registry import get_method
from .layout import model_name_from
from .results import ResultsStore


def weights_digest(model: Any) -> str:
    """SHA-256 (first 16 hex digits) of a torch module's state dict: names, shapes, dtypes and values."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{name}:{array.dtype}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def open_store(store: ResultsStore | str | Path, volume: Any, *, source: str | None = None,
               scale: Any = None, translation: Any = None) -> ResultsStore:
    """A store opened for writing: ``store`` itself, or the store at a path (created for ``volume``).

    ``source``, the analysed image's path, is recorded absolute, so opening the store from another
    folder (``channelbias gui STORE``, a drop on napari) still finds the image to show beside the results.
    """
    if isinstance(store, ResultsStore):
        return store
    return ResultsStore.create(store, tuple(int(s) for s in volume.shape), scale=scale, translation=translation,
                               source=None if source is None else os.path.abspath(source))


def store_for_image(store: ResultsStore | str | Path, image: str | Path, volume: Any = None,
                    translation: Any = None) -> ResultsStore:
    """The store for the image file ``image``, created with its voxel size (:func:`~..io.read.volume_scale`)."""
    if isinstance(store, ResultsStore):
        return store
    volume = open_volume(image) if volume is None else volume
    return open_store(store, volume, source=str(image), scale=volume_scale(image), translation=translation)


def _name(model_name: str | None, card: Mapping[str, Any] | None) -> str:
    if model_name:
        return model_name
    source = (card or {}).get("source") or (card or {}).get("name") or "model"
    return model_name_from(str(source))


class PredictionSink:
    """Probabilities and labels of one model in a store; a slice is done once its labels are written."""

    def __init__(self, store: ResultsStore, model_name: str | None, *, classes: int, axis: int,
                 probability_dtype: str, label_dtype: Any, settings: Mapping[str, Any],
                 card: Mapping[str, Any] | None = None) -> None:
        self.store, self.model_name = store, _name(model_name, card)
        self.probability_dtype = probability_dtype
        self.probs, self.labels = store.prediction(
            self.model_name, classes=classes, axis=axis, probability_dtype=probability_dtype,
            label_dtype=str(np.dtype(label_dtype)), settings=dict(settings), card=dict(card) if card else None)

    def todo(self, slices: Iterable[int]) -> list[int]:
        """The slices not finished in both images, in the order given."""
        missing = set(self.probs.missing(slices)) | set(self.labels.missing(slices))
        return [int(z) for z in slices if int(z) in missing]

    def write(self, z: int, labels: np.ndarray, probs: np.ndarray) -> None:
        """Slice ``z``: float probabilities ``(C, H, W)`` (stored as uint8 ``round(255 p)`` by default)."""
        plane = probs[0] if probs.shape[0] == 1 else probs
        if self.probability_dtype == "uint8":
            plane = np.rint(plane * 255.0).astype(np.uint8)
        self.probs.write_slice(z, plane)
        self.labels.write_slice(z, labels)  # last: a slice with labels is complete


class SaliencySink:
    """The per-channel saliency of one model and method in a store."""

    def __init__(self, store: ResultsStore, model_name: str | None, method: str, *, window: int, axis: int,
                 settings: Mapping[str, Any], card: Mapping[str, Any] | None = None) -> None:
        self.store, self.model_name, self.method = store, _name(model_name, card), method
        self.image = store.saliency(self.model_name, method, window=window, axis=axis, settings=dict(settings),
                                    card=dict(card) if card else None)

    def todo(self, slices: Iterable[int]) -> list[int]:
        return self.image.missing(slices)

    def write(self, z: int, maps: np.ndarray) -> None:
        self.image.write_slice(z, maps)

    def read(self, z: int) -> np.ndarray:
        return self.image.read_slice(z)


def _card_dict(card_or_settings: Any) -> dict[str, Any] | None:
    if hasattr(card_or_settings, "to_dict") and hasattr(card_or_settings, "model"):
        return card_or_settings.to_dict()
    if isinstance(card_or_settings, dict) and "model" in card_or_settings:
        return dict(card_or_settings)
    return None


def input_fingerprint(model: Any, input_settings: Any) -> dict[str, Any]:
    """What makes two runs' slices interchangeable: the weights and how windows are built."""
    return {"weights": weights_digest(model), "window": input_settings.window,
            "padding": input_settings.padding, "axis": input_settings.axis,
            "normalizer": repr(input_settings.normalizer)}


_GENERAL_OPTIONS = ("target", "tile", "overlap")  # options every method takes (not in its registry entry)


def saliency_options(method: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options that identify a saliency run: those ``method`` uses, unset (None) ones left out.

    The CLI passes every option it has (``--points`` on an occlusion run), the GUI only the shown ones;
    both must find the same stored run, so an option the method ignores is not part of its identity.
    ``compile`` counts only when on (off is the plain eager path).
    """
    used = set(get_method(method).options) | set(_GENERAL_OPTIONS) | {"compile"}
    return {k: v for k, v in sorted(options.items())
            if k in used and v is not None and not (k == "compile" and not v)}


def prediction_sink(
    store: ResultsStore | str | Path, model_name: str | None, model: Any, card_or_settings: Any,
    input_settings: Any, volume: Any, *, classes: int, probability_dtype: str, label_dtype: Any,
    **options: Any,
) -> PredictionSink:
    """The sink of :func:`~napari_channelbias.segmentation.prediction.predict_events` (its ``store=``)."""
    card = _card_dict(card_or_settings)
    settings = {**input_fingerprint(model, input_settings), **options}
    return PredictionSink(open_store(store, volume), model_name, classes=classes, axis=input_settings.axis,
                          probability_dtype=probability_dtype, label_dtype=label_dtype, settings=settings,
                          card=card)


def saliency_sink(
    store: ResultsStore | str | Path, model_name: str | None, model: Any, card_or_settings: Any,
    input_settings: Any, volume: Any, method: str, options: Mapping[str, Any],
) -> SaliencySink:
    """The sink of :func:`~napari_channelbias.saliency.volume.saliency_events` (its ``store=``)."""
    card = _card_dict(card_or_settings)
    settings = {**input_fingerprint(model, input_settings), "method": method, **saliency_options(method, options)}
    return SaliencySink(open_store(store, volume), model_name, method, window=input_settings.window,
                        axis=input_settings.axis, settings=settings, card=card)
