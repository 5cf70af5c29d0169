"""What the saliency section computed, shared with the asymmetry panel: one record per model.

The saliency section (:mod:`.saliency_dock`) writes, the asymmetry panel (:mod:`.asymmetry_panel`) reads.
Both find the same :class:`SaliencyResults` through :func:`saliency_results` (one per workspace, i.e. per
viewer) instead of holding references to each other, so either dock can be opened or closed on its own.
A :class:`SaliencyRecord` holds what the panel needs for one model: the request that identifies its maps
(:class:`SaliencyRequest`), its K layers, which slices are computed, their asymmetry metrics and the
whole-volume figures; ``SaliencyResults.changed(model)`` says when any of that changed.
"""

from __future__ import annotations

import weakref
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from napari.layers import Image
from qtpy.QtCore import QObject, Signal

from ..asymmetry.metrics import SliceAsymmetry
from ..asymmetry.volume import VolumeAsymmetryResult
from ..workspace import SaliencyKey, Workspace


@dataclass(frozen=True)
class SaliencyRequest:
    """Everything that identifies one model's saliency maps except the slice."""

    model: str
    method: str
    params: tuple[tuple[str, Any], ...]  # the method's options, sorted (hashable)
    image: Hashable  # workspace.image_token of the image layer's data
    image_name: str
    window: int
    axis: int

    def key(self, z: int) -> SaliencyKey:
        """The workspace cache key of slice ``z``."""
        return SaliencyKey.make(self.model, self.method, dict(self.params), self.image, z)

    def describe(self) -> str:
        """``"full-output"`` or ``"occlusion (patch 16)"`` for labels and legends."""
        shown = ", ".join(f"{k} {v}" for k, v in self.params if v is not None)
        return f"{self.method} ({shown})" if shown else self.method


@dataclass
class SaliencyRecord:
    """What is known about one model's saliency on its current request.

    ``computed`` holds the slices whose maps are in the layers; ``per_slice`` their asymmetry metrics
    (for K >= 3); ``volume`` the pooled figures of the last whole-volume run (None before one).
    ``store`` is the results-store image (a :class:`~napari_channelbias.store.StoredImage`) the layers
    read from, or None for in-memory layers; ``store_path`` that store's folder.
    """

    request: SaliencyRequest
    layers: list[Image]
    computed: set[int] = field(default_factory=set)
    per_slice: dict[int, SliceAsymmetry] = field(default_factory=dict)
    volume: VolumeAsymmetryResult | None = None
    display_max: float = 0.0
    data_max: float = 0.0
    store: Any = None
    store_path: Any = None

    def maps(self, cache: Any, z: int) -> np.ndarray | None:
        """Slice ``z``'s maps ``(K, H, W)``: from the cache, else from the store or the layers (same
        values), else None."""
        maps = cache.get(self.request.key(z))
        if maps is not None:
            return maps
        if z not in self.computed:
            return None
        if self.store is not None:
            return self.store.read_slice(z)
        index = [slice(None)] * 3
        index[self.request.axis] = z
        return np.stack([np.asarray(layer.data[tuple(index)]) for layer in self.layers])


class SaliencyResults(QObject):
    """The saliency records of one workspace; ``changed(model)`` fires when a model's maps change."""

    changed = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.records: dict[str, SaliencyRecord] = {}

    def get(self, model: str) -> SaliencyRecord | None:
        return self.records.get(model)

    def names(self) -> list[str]:
        return list(self.records)


_RESULTS: weakref.WeakKeyDictionary[Workspace, SaliencyResults] = weakref.WeakKeyDictionary()


def saliency_results(workspace: Workspace) -> SaliencyResults:
    """The saliency records shared by the docks of ``workspace`` (created on first use)."""
    results = _RESULTS.get(workspace)
    if results is None:
        results = _RESULTS[workspace] = SaliencyResults()
    return results
