"""Saliency records from an opened results store: the asymmetry panel's figures without recomputing.

Opening a store (drag and drop, *File > Open*, ``channelbias gui STORE``) adds each stored saliency
image as K layers whose metadata names the store and the image's key (:mod:`.store_layers`). Once all K
channel layers of an image are in the viewer, :func:`record_for_layers` turns them into a
:class:`~.saliency_results.SaliencyRecord` like the ones the Saliency section makes: its slices are the
store's done slices, ``maps(cache, z)`` reads slice ``z`` from the store, ``per_slice`` comes from the
stored per-slice asymmetry table and ``volume`` from its summary
(:func:`napari_channelbias.store.asymmetry.stored_asymmetry`). Nothing is computed.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..store.asymmetry import stored_asymmetry
from ..store.results import ResultsStore
from ..store.sinks import saliency_options
from .saliency_layers import META_KEY
from .saliency_results import SaliencyRecord, SaliencyRequest
from .store_layers import STORE_KEY


def stored_saliency_group(layer: Any) -> tuple[str, str] | None:
    """``(store folder, key)`` of a layer the store reader made from a saliency image, else None.

    The Saliency section's own store-backed layers carry :data:`META_KEY` and are left out: their
    records already exist.
    """
    meta = getattr(layer, "metadata", None) or {}
    key = meta.get("key")
    if META_KEY in meta or not meta.get(STORE_KEY) or not isinstance(key, str) or not key.startswith("saliency/"):
        return None
    return str(meta[STORE_KEY]), key


def group_layers(layers: Iterable[Any], group: tuple[str, str]) -> list[Any]:
    """The layers of ``group`` in channel order."""
    found = [layer for layer in layers if stored_saliency_group(layer) == group]
    return sorted(found, key=lambda layer: int(layer.metadata.get("channel", 0)))


def record_for_layers(group: tuple[str, str], layers: list[Any]) -> SaliencyRecord | None:
    """The record of one stored saliency image shown by ``layers`` (None until all K are there)."""
    path, key = group
    store = ResultsStore.open(path)
    image = store.get(key)
    if len(layers) != image.shape[0]:
        return None
    entry = store.entries()[key]
    model, method = entry["model"], entry["method"]
    source = store.info["image"].get("source")
    request = SaliencyRequest(
        model=model, method=method, params=tuple(saliency_options(method, image.settings).items()),
        image=("results store", str(Path(path).resolve()), key),
        image_name=Path(source).stem if source else Path(path).name,
        window=int(image.shape[0]), axis=int(image.spec.slice_axis) - 1,
    )
    record = SaliencyRecord(request, list(layers), computed=set(np.flatnonzero(image.done_mask()).tolist()),
                            store=image, store_path=Path(path))
    stored = stored_asymmetry(store, model, method)
    if stored is not None:
        record.per_slice.update(stored.per_slice)
        record.volume = stored.volume
    return record


def record_name(records: dict[str, SaliencyRecord], record: SaliencyRecord) -> str:
    """The record's name in the shared results: the model's, unless another record holds it."""
    name = record.request.model
    held = records.get(name)
    if held is None or (held.store is not None and held.store.key == record.store.key
                        and Path(held.store_path).resolve() == Path(record.store_path).resolve()):
        return name
    return f"{name} {record.request.method} ({Path(record.store_path).name})"
