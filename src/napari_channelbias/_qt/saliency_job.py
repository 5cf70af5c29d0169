"""The Saliency section's worker job: one model's maps for some slices, their metrics, maybe into a store.

Runs in the bridge's worker thread (the workspace cache is thread-safe) and yields one
:class:`~napari_channelbias.events.SliceDone` per slice carrying a :class:`SliceSaliency` (maps and
asymmetry metrics), so the GUI thread only shows what arrives. Two outputs:

* **memory** (no store): cached slices first, then the core's
  :func:`~napari_channelbias.saliency.volume.saliency_events` for the rest; every slice goes into the
  workspace's saliency cache.
* **a results store** (:class:`StoreTarget`): ``saliency_events(store=...)`` computes only the slices not
  done in the store (a cancelled run resumes) and reads the done ones back; each slice's asymmetry row
  goes into the store's per-slice table as it lands, and a whole-volume run ends with the volume summary
  (:mod:`napari_channelbias.store.asymmetry`, the rule ``channelbias asymmetry --store`` uses). Only
  current-slice results go into the cache: a whole volume's maps stay on disk.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..asymmetry.metrics import SliceAsymmetry, slice_asymmetry
from ..asymmetry.volume import VolumeAsymmetry
from ..events import SliceDone
from ..models.inputs import InputSettings
from ..saliency.volume import saliency_events
from ..store.asymmetry import asymmetry_table, write_asymmetry, write_slice_row
from ..store.results import ResultsStore
from .saliency_results import SaliencyRequest


@dataclass(frozen=True)
class SliceSaliency:
    """What the worker hands the GUI for one slice: the maps and their metrics (None for K < 3)."""

    maps: np.ndarray
    metrics: SliceAsymmetry | None


@dataclass(frozen=True)
class StoreTarget:
    """Where a store-mode job writes: the store and the model's name inside it."""

    store: ResultsStore
    model: str


def store_options(params: Sequence[tuple[str, Any]], compile: bool) -> dict[str, Any]:
    """The request's method options as ``saliency_events`` takes them (unset ones left out)."""
    out = {k: v for k, v in params if v is not None}
    if compile:
        out["compile"] = True
    return out


def saliency_job(request: SaliencyRequest, model: Any, card: Any, volume: Any, slices: Sequence[int],
                 cache: Any, device: str, whole_volume: bool, compile: bool = False,
                 store: StoreTarget | None = None) -> Generator[Any, None, Any]:
    """Maps and metrics of ``slices`` (see the module docstring).

    Returns the whole volume's VolumeAsymmetryResult for a whole-volume run of a model with K >= 3,
    else None.
    """
    acc = VolumeAsymmetry(request.window) if whole_volume and request.window >= 3 else None
    table = None
    if store is not None and request.window >= 3:
        table = asymmetry_table(store.store, store.model, request.method, request.window, axis=request.axis)
    total, done = len(slices), 0

    def package(z: int, maps: np.ndarray) -> SliceDone:
        nonlocal done
        done += 1
        if acc is not None:
            metrics = acc.add(z, maps)
        else:
            metrics = slice_asymmetry(maps) if request.window >= 3 else None
        if table is not None and metrics is not None:
            write_slice_row(table, z, metrics)
        return SliceDone("saliency", z, done, total, result=SliceSaliency(maps, metrics))

    todo = list(slices)
    if store is None:
        todo = []
        for z in slices:
            maps = cache.get(request.key(z))
            if maps is None:
                todo.append(z)
            else:
                yield package(z, maps)
    if todo:
        # collect=False: each slice goes into the cache, the store or the layers as it comes; a second
        # copy of the volume's maps inside the core would double the memory of a whole-volume run.
        if store is None:
            settings: Any = InputSettings(request.window, card.padding, request.axis, card.normalizer())
            extra: dict[str, Any] = {}
        else:  # the card itself: the store records it with the maps (what a CLI run records too)
            settings, extra = card, {"store": store.store, "model_name": store.model}
        gen = saliency_events(model, settings, volume, request.method, slices=todo, device=device,
                              collect=False, **extra, **store_options(request.params, compile))
        try:
            for event in gen:
                if isinstance(event, SliceDone):
                    if store is None or not whole_volume:
                        cache.put(request.key(event.z), event.result)
                    yield package(event.z, event.result)
                else:
                    yield event
        finally:
            gen.close()
    if acc is None:
        return None
    result = acc.result()
    if store is not None:
        write_asymmetry(store.store, store.model, request.method, result, axis=request.axis)
    return result
