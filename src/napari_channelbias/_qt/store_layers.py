"""Open a results store as napari layers: lazy, multiscale, nothing recomputed.

Every image of the store becomes a layer backed by dask arrays over its zarr levels (napari reads only
the chunks it draws, so memory does not grow with the volume): the labels of each model as a Labels
layer, its probabilities and each saliency channel (``z-1``, ``z``, ``z+1``) as Image layers, all with
the store's voxel size and translation. The analysed image itself comes first when the store records
its path and it still exists. The per-slice tables and their summaries stay in the store; each layer's
metadata names the store and key so a widget can read them back (:func:`stored_asymmetry`).
No Qt here: napari calls this reader headless too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..io.read import open_volume
from ..store.results import ResultsStore
from ..store.tables import open_table

LayerData = tuple[Any, dict[str, Any], str]
STORE_KEY = "channelbias_store"  # layer metadata: the results store (folder) of an image or stored result


def is_results_store(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a napari-channelbias results store (a zarr group with our root attributes)."""
    p = Path(os.fspath(path))
    if not p.is_dir() or not any((p / m).exists() for m in (".zgroup", "zarr.json")):
        return False
    try:
        ResultsStore.open(p)
    except Exception:  # any unreadable or foreign group: not ours
        return False
    return True


class ChannelView:
    """One channel of a stored ``(K, Z, Y, X)`` level, read straight from zarr on every access.

    For layers that fill while a run writes the store: napari keeps an opportunistic cache of computed
    dask chunks, so a dask-backed layer would go on showing a slice as it was when first drawn (empty);
    this view reads the chunks napari asks for each time (a refresh shows what has been written since)
    and holds nothing.
    """

    def __init__(self, array: Any, channel: int) -> None:
        self.array, self.channel = array, int(channel)
        self.shape = tuple(int(s) for s in array.shape[1:])
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)
        self.size = int(np.prod(self.shape))

    def __getitem__(self, index: Any) -> np.ndarray:
        index = index if isinstance(index, tuple) else (index,)
        return np.asarray(self.array[(self.channel, *index)])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:  # whole channel: small volumes only
        out = self[...]
        return out if dtype is None else out.astype(dtype)

    def __len__(self) -> int:
        return self.shape[0]


def channel_views(image: Any) -> list[Any]:
    """Per channel of a stored saliency image: its :class:`ChannelView` (a list of them per level when
    the image has a pyramid, as napari's multiscale layers take)."""
    views = [[ChannelView(level, c) for level in image.levels] for c in range(image.shape[0])]
    return [v if len(v) > 1 else v[0] for v in views]


def _levels(levels: list[Any], index: tuple[Any, ...] = ()) -> Any:
    arrays = [level[index] if index else level for level in levels]
    return arrays if len(arrays) > 1 else arrays[0]


def store_layer_data(path: str | os.PathLike[str]) -> list[LayerData]:
    """Layer data ``(data, metadata, layer_type)`` for everything in the store at ``path``."""
    store = ResultsStore.open(path)
    common = {"scale": store.scale, "translate": store.translation}
    layers: list[LayerData] = []
    source = store.info["image"].get("source")
    if source and Path(source).exists():
        layers.append((open_volume(source), {"name": Path(source).stem, **common,
                                             "metadata": {"source_path": source, STORE_KEY: str(store.path)}},
                       "image"))
    for key, entry in store.entries().items():
        if entry["kind"] == "table":
            continue
        image = store.get(key)
        done = int(image.done_mask().sum())
        meta = {"metadata": {STORE_KEY: str(store.path), "key": key, "slices_done": done}, **common}
        levels = image.lazy_levels()
        model = entry["model"]
        if entry["kind"] == "labels":
            layers.append((_levels(levels), {**meta, "name": f"{model} labels"}, "labels"))
        elif entry["kind"] == "probabilities":
            if image.spec.axes[0] == "c":
                for c in range(image.shape[0]):
                    layers.append((_levels(levels, (c,)), {**meta, "name": f"{model} p(class {c})",
                                                           "visible": False}, "image"))
            else:
                layers.append((_levels(levels), {**meta, "name": f"{model} probability", "visible": False,
                                                 "colormap": "magma"}, "image"))
        elif entry["kind"] == "saliency":
            for c, channel in enumerate(image.spec.channel_names or ()):
                name = f"{model} {entry['method']} {channel}"
                channel_meta = {"metadata": {**meta["metadata"], "channel": c}}
                layers.append((_levels(levels, (c,)), {**meta, **channel_meta, "name": name, "colormap": "inferno",
                                                       "blending": "additive", "visible": c == 0}, "image"))
    return layers


def read_store(path: Any) -> list[LayerData]:
    """npe2 reader for a results store (a single path)."""
    single = path[0] if isinstance(path, (list, tuple)) else path
    return store_layer_data(single)


def stored_asymmetry(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The whole-volume asymmetry summaries in the store, by ``model method`` (nothing recomputed)."""
    store = ResultsStore.open(path)
    out = {}
    for key, entry in store.entries().items():
        if entry["kind"] == "table" and entry["method"].startswith("asymmetry-"):
            summary = open_table(store, key).summary
            if summary is not None:
                out[f"{entry['model']} {entry['method'].removeprefix('asymmetry-')}"] = summary
    return out
