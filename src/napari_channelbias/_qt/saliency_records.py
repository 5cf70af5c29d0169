"""The Saliency section's records kept in step with the viewer's layers.

A model's :class:`~.saliency_results.SaliencyRecord` is kept while its request, its K layers and their
backing (memory, or which store image) stay the same; otherwise new layers are made and filled with what
is already known (the store's finished slices, or the cache's). Records also come from an opened results
store (:mod:`.stored_records`) and go when their layers, or the image they explain, are removed. Every
change is announced through ``SaliencyResults.changed`` for the asymmetry panel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image

from ..asymmetry.metrics import slice_asymmetry
from ..store.asymmetry import stored_asymmetry
from ..store.layout import saliency_key
from ..workspace import SaliencyCache, image_token
from .data_section import full_resolution
from .saliency_job import StoreTarget
from .saliency_layers import META_KEY, prepare_layers, refresh_layers, show_slice
from .saliency_results import SaliencyRecord, SaliencyRequest, SaliencyResults
from .stored_records import group_layers, record_for_layers, record_name, stored_saliency_group


def is_own(record: SaliencyRecord | None) -> bool:
    """True for a record whose layers the section made (not an opened store's)."""
    return record is not None and bool(record.layers) and META_KEY in record.layers[0].metadata


def record_for(viewer: Any, results: SaliencyResults, cache: SaliencyCache, request: SaliencyRequest,
               image: Image, target: StoreTarget | None = None) -> SaliencyRecord:
    """The model's record for ``request``: kept if it matches (same backing), else new, layers ready.

    Parameters
    ----------
    viewer, results, cache
        The napari viewer, the workspace's saliency results and its saliency cache.
    request
        What the maps are of (model, method, parameters, image).
    image
        The image layer the request explains (the layers are aligned with it).
    target
        The results store the maps go to, or None for in-memory layers.
    """
    record = results.get(request.model)
    layers_alive = record is not None and all(layer in viewer.layers for layer in record.layers)
    stored = target.store.get(saliency_key(target.model, request.method)) if target is not None else None
    same_backing = record is not None and (
        (stored is None and record.store is None)
        or (stored is not None and record.store is not None and record.store.key == stored.key
            and record.store_path == target.store.path))
    if record is not None and record.request == request and layers_alive and is_own(record) and same_backing:
        return record
    store_path = target.store.path if target is not None else None
    layers = prepare_layers(viewer, request, image, stored, store_path)
    record = SaliencyRecord(request, layers, store=stored, store_path=store_path)
    results.records[request.model] = record
    if stored is not None:  # what the store already holds shows at once (a resumed run)
        record.computed.update(np.flatnonzero(stored.done_mask()).tolist())
        kept = stored_asymmetry(target.store, target.model, request.method)
        if kept is not None:
            record.per_slice.update(kept.per_slice)
        for z in sorted(record.computed)[-1:]:  # a contrast limit from one stored slice
            show_slice(record, z, stored.read_slice(z), refresh=False)
        refresh_layers(record)
    else:  # slices this request already has in the cache show at once
        n = full_resolution(image).shape[request.axis]
        for z in range(n):
            maps = cache.get(request.key(z))
            if maps is not None:
                show_slice(record, z, maps)
                if request.window >= 3:
                    record.per_slice[z] = slice_asymmetry(maps)
    results.changed.emit(request.model)
    return record


def adopt_stored(viewer: Any, results: SaliencyResults, layers: list[Any]) -> None:
    """Records for the saliency images of an opened results store (once all K layers are in)."""
    for group in dict.fromkeys(g for layer in layers if (g := stored_saliency_group(layer))):
        record = record_for_layers(group, group_layers(viewer.layers, group))
        if record is None:
            continue
        name = record_name(results.records, record)
        if is_own(results.get(name)):
            continue  # this section's own run into that store: its record is live
        results.records[name] = record
        results.changed.emit(name)


def layer_removed(results: SaliencyResults, cache: SaliencyCache, layer: Any) -> None:
    """Forget what depended on ``layer``: an opened store's record, or the removed image's cached maps."""
    own_layer = META_KEY in layer.metadata
    for name, rec in list(results.records.items()):
        if rec.store is not None and layer in rec.layers and not own_layer:
            del results.records[name]  # an opened store's layer is gone: so is its record
            results.changed.emit(name)
    if isinstance(layer, Image) and not own_layer and stored_saliency_group(layer) is None:
        # The image is gone: its cached maps can never be asked for again.
        cache.evict(image=image_token(full_resolution(layer), layer.name))


def refresh_own_store_layers(results: SaliencyResults) -> None:
    """Re-read the store for the section's store-backed layers (the slices since the last refresh)."""
    for record in results.records.values():
        if record.store is not None and is_own(record):
            refresh_layers(record)


def status_text(results: SaliencyResults) -> str:
    """One line per model with saliency: method and how many slices are computed (and where)."""
    lines = []
    for rec in results.records.values():
        n = rec.layers[0].data.shape[rec.request.axis] if rec.layers else 0
        where = f" (store {Path(rec.store_path).name})" if rec.store is not None else ""
        lines.append(f"{rec.request.model}: {rec.request.describe()}, {len(rec.computed)} of {n} slices{where}")
    return "\n".join(lines) or "No saliency computed yet."


__all__ = ["adopt_stored", "is_own", "layer_removed", "record_for", "refresh_own_store_layers", "status_text"]
