"""The K saliency layers of one model: names, colours, in-memory or store-backed data, one contrast limit.

For a model with a window of K slices, saliency produces K maps per slice, one per input channel
(channel c holds slice z - r + c). They are shown as K image layers ``"<model> saliency z-1"``,
``"... z"``, ``"... z+1"`` with additive blending and colours that add up to grey where attention is
equal (red, green, blue for K = 3), so a channel that gets more attention tints the overlay at a glance.
The K layers of one model share *one* contrast limit (joint scaling, as the metrics do).

Two backings, both full ``(Z, Y, X)`` volumes aligned with the image (scale, translate, rotate, shear,
affine):

* **in memory** (no results store): float32 volumes that hold only the slices written
  (:func:`~.sparse_volume.in_memory_volume`; zeros where nothing was written), so current-slice
  saliency works on a volume of any size. A whole-volume run fills every slice, so it is refused
  beyond the memory budget (:func:`check_memory_budget`) with the fix in the message.
* **store-backed** (a results store typed): each layer reads its channel straight from the store's zarr
  levels (:class:`~.store_layers.ChannelView`, multiscale where the store has levels); nothing is held,
  and a refresh shows the slices written since, whatever the volume's size.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from napari.experimental import link_layers, unlink_layers
from napari.layers import Image
from napari.utils.colormaps import Colormap

from ..asymmetry.figures import channel_labels
from .data_section import SALIENCY_LAYER_KEY, full_resolution
from .saliency_results import SaliencyRecord, SaliencyRequest
from .sparse_volume import in_memory_volume, is_in_memory_volume, refuse_beyond_budget
from .store_layers import channel_views

META_KEY = SALIENCY_LAYER_KEY  # marks our layers; the Data section leaves them out of its image list
_ALIGN = ("scale", "translate", "rotate", "shear", "affine")


def saliency_layer_name(model: str, channel_label: str) -> str:
    """``"lite0-imagenet saliency z-1"``: the layer of one model's channel."""
    return f"{model} saliency {channel_label}"


def channel_colormaps(window: int) -> list[str | Colormap]:
    """One colormap per channel whose colours add up to grey when all channels are equally bright.

    K = 3 uses napari's red, green and blue. Other K use colours ``0.5 + 0.5 cos(2 pi (c / K - j / 3))``
    for R, G, B (j = 0, 1, 2): K hues evenly spaced round the colour wheel whose cosines cancel, so the K
    colours sum to exactly equal R, G and B. K = 1 is gray.
    """
    if window == 1:
        return ["gray"]
    if window == 3:
        return ["red", "green", "blue"]
    maps: list[str | Colormap] = []
    for c, label in enumerate(channel_labels(window)):
        rgb = [0.5 + 0.5 * math.cos(2.0 * math.pi * (c / window - j / 3.0)) for j in range(3)]
        maps.append(Colormap([[0.0, 0.0, 0.0, 1.0], [*rgb, 1.0]], name=f"channelbias {label}"))
    return maps


# ------------------------------------------------------------------------------------------ memory bound
def check_memory_budget(shape: tuple[int, ...], windows: list[int]) -> None:
    """Refuse whole-volume in-memory layers (K float32 volumes per model) beyond the memory budget.

    :func:`~.sparse_volume.refuse_beyond_budget`: a ConfigError that names the fix, a results store,
    where the maps go to disk and the layers read them lazily, whatever the volume's size.
    """
    need = sum(windows) * int(np.prod(shape)) * 4
    refuse_beyond_budget(need, f"whole-volume saliency of {len(windows)} model(s) on a {'x'.join(map(str, shape))} "
                               "volume (float32 layers)")


# ------------------------------------------------------------------------------------------- the layers
def _meta(request: SaliencyRequest, c: int, stored: Any, store_path: Any) -> dict[str, Any]:
    meta = {"model": request.model, "channel": c, "window": request.window, "method": request.describe(),
            "image": request.image_name}
    if stored is not None:
        meta.update(store=str(store_path), key=stored.key)
    return meta


def prepare_layers(viewer: Any, request: SaliencyRequest, image: Image, stored: Any = None,
                   store_path: Any = None) -> list[Image]:
    """K layers aligned with ``image``: in-memory volumes (:func:`~.sparse_volume.in_memory_volume`), or
    reading ``stored`` (a StoredImage of the store at ``store_path``).

    An existing in-memory layer of the same name is reused for an in-memory request (its position and
    the user's display tweaks stay); any other existing layer of that name is replaced.
    """
    data = full_resolution(image)
    shape = tuple(int(s) for s in data.shape)
    views = channel_views(stored) if stored is not None else None
    align = {attr: getattr(image, attr) for attr in _ALIGN}
    layers = []
    labels = channel_labels(request.window)
    for c, (label, cmap) in enumerate(zip(labels, channel_colormaps(request.window), strict=True)):
        name = saliency_layer_name(request.model, label)
        meta = {META_KEY: _meta(request, c, stored, store_path)}
        old = viewer.layers[name] if name in viewer.layers else None
        if views is None and old is not None and is_in_memory_volume(old.data) and not old.multiscale:
            old.data = in_memory_volume(shape, (request.axis,), "float32")
            for attr, value in align.items():
                setattr(old, attr, value)
            old.metadata = {**old.metadata, **meta}
            layer = old
        else:
            if old is not None:
                viewer.layers.remove(old)
            content = in_memory_volume(shape, (request.axis,), "float32") if views is None else views[c]
            layer = viewer.add_image(content, name=name, colormap=cmap, blending="additive",
                                     contrast_limits=(0.0, 1.0), multiscale=views is not None and
                                     isinstance(content, list), metadata=meta, **align)
        layer.contrast_limits_range = (0.0, 1.0)
        layer.contrast_limits = (0.0, 1.0)
        layers.append(layer)
    if len(layers) > 1:
        unlink_layers(layers, ("contrast_limits", "gamma"))
        link_layers(layers, ("contrast_limits", "gamma"))
    return layers


def show_slice(record: SaliencyRecord, z: int, maps: np.ndarray, refresh: bool = True) -> None:
    """Slice ``z``'s maps are in: into the in-memory layers (a store-backed record reads them itself),
    ``computed``, and the shared contrast limit (the largest per-slice joint 99.9th percentile so far)."""
    if record.store is None:
        index: list[Any] = [slice(None)] * 3
        index[record.request.axis] = z
        for layer, channel in zip(record.layers, maps, strict=True):
            layer.data[tuple(index)] = channel
    record.computed.add(z)
    positive = maps[maps > 0]
    if positive.size:
        record.display_max = max(record.display_max, float(np.percentile(maps, 99.9)) or positive.max())
        record.data_max = max(record.data_max, float(positive.max()))
    if refresh:
        refresh_layers(record)


def refresh_layers(record: SaliencyRecord) -> None:
    """Apply the record's contrast limit and redraw its layers (store-backed ones re-read the store)."""
    hi = record.display_max or 1.0
    for layer in record.layers:
        layer.contrast_limits_range = (0.0, max(record.data_max, hi))
        layer.contrast_limits = (0.0, hi)
        layer.refresh()
