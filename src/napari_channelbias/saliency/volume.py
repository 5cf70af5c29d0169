"""Saliency over a range of slices of a (possibly lazy) volume, as an event generator.

Each selected slice's 2D+ window is read and normalised by :func:`napari_channelbias.windowing.iter_windows`
(channel ``c`` of slice ``z`` holds slice ``z - r + c``, ends padded), its maps are computed with
:func:`napari_channelbias.saliency.compute_saliency`, and a
:class:`~napari_channelbias.events.SliceDone` carrying the ``(K, H, W)`` maps is yielded. The result is a
``(Z, K, H, W)`` float32 array, ``Z`` = number of selected slices in the order given: returned in memory,
or streamed slice by slice to a ``.zarr`` / ``.tif`` file through the atomic
:class:`~napari_channelbias.volume_io.VolumeWriter`. Closing the generator (cancel) leaves no partial file:
the writer deletes its temporary and an existing target is left untouched.
"""

from __future__ import annotations

import inspect
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..events import SliceDone
from ..windowing import Normalizer, check_window, iter_windows, n_slices_along
from .compute import compute_saliency
from .registry import get_method

_OPTIONS = {name for name, p in inspect.signature(compute_saliency).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and name != "device"}


def _selected(slices: Iterable[int] | None, n: int, axis: int) -> list[int]:
    chosen = list(range(n)) if slices is None else [int(z) for z in slices]
    if not chosen:
        raise ConfigError(f"no slices selected; the volume has {n} slices along axis {axis} (0..{n - 1})")
    bad = [z for z in chosen if not 0 <= z < n]
    if bad:
        raise ConfigError(f"slice(s) {bad[:5]} out of range; the volume has {n} slices along axis {axis}, "
                          f"valid indices 0..{n - 1}")
    return chosen


def saliency_events(
    model: torch.nn.Module,
    volume: Any,
    method: str,
    *,
    slices: Iterable[int] | None = None,
    window: int = 3,
    padding: str = "mirror",
    axis: int = 0,
    normalizer: Normalizer | None = None,
    out: str | Path | None = None,
    device: str | torch.device = "cpu",
    collect: bool = True,
    store: Any = None,
    model_name: str | None = None,
    **params: Any,
) -> Generator[SliceDone, None, np.ndarray | Path | None]:
    """Per-channel saliency maps of the selected slices, one :class:`SliceDone` per slice.

    Parameters
    ----------
    model
        The segmentation model (see :func:`~napari_channelbias.saliency.compute_saliency`).
    volume
        3-D ``(Z, Y, X)`` array or lazy volume; only the slices the windows need are read.
    method
        A saliency method name (``SALIENCY_METHODS``).
    slices
        Slice indices along ``axis``, any subset in any order (e.g. ``range(10, 20)``); ``None``: all.
    window, padding, axis, normalizer
        How windows are built (:func:`~napari_channelbias.windowing.iter_windows`); ``normalizer=None``
        feeds raw intensities as float32.
    out
        ``None``: return the maps as an array. A ``.zarr`` or ``.tif`` path: stream them there (atomic).
    device
        Where the model runs.
    collect
        With ``out=None``: keep every slice's maps and return them (default). ``False`` keeps nothing and
        returns None -- for consumers that use each slice's maps as it comes (streaming metrics over a
        volume larger than memory).
    store, model_name
        A results store (:class:`~napari_channelbias.store.ResultsStore` or its path, created for this
        volume if absent; not with ``out``): maps go to ``saliency/<model_name>/<method>``, only slices
        not yet done there are computed, the done ones are read back and yielded too (a consumer still
        sees every selected slice), and the store's path is returned.
    **params
        Method options passed to ``compute_saliency`` (``target``, ``points``, ``seed``, ``patch``,
        ``target_layer``, ``tile``, ``overlap``, ``chunk``, ``batch_size``).

    Yields
    ------
    SliceDone
        ``task="saliency"``, the slice ``z``, progress ``done`` of ``total``, ``result`` = float32 maps
        ``(K, H, W)``.

    Returns
    -------
    numpy.ndarray or pathlib.Path or None
        The ``(Z, K, H, W)`` maps when ``out`` is None (None with ``collect=False``), else the path.
    """
    get_method(method)  # fail on a bad name before any slice is read
    unknown = sorted(set(params) - _OPTIONS)
    if unknown:
        raise ConfigError(f"unknown saliency option(s) {', '.join(unknown)}; "
                          f"valid: {', '.join(sorted(_OPTIONS))}")
    window = check_window(window)
    n = n_slices_along(volume, axis)
    chosen = _selected(slices, n, axis)
    plane = tuple(s for a, s in enumerate(volume.shape) if a != axis % 3)
    shape = (len(chosen), window, *plane)
    windows = iter_windows(volume, chosen, window, padding, axis, normalizer)

    def maps_of(x: np.ndarray) -> np.ndarray:
        return compute_saliency(model, x, method, device=device, **params)

    if store is not None:
        if out is not None:
            raise ConfigError("give either out= (a .zarr/.tif file) or store= (a results store), not both")
        return (yield from _into_store(store, model_name, model, card_or_settings, settings, volume, method,
                                       chosen, params, maps_of))

    if out is None:
        result = np.empty(shape, dtype=np.float32) if collect else None
        for i, (z, x) in enumerate(windows):
            maps = maps_of(x)
            if result is not None:
                result[i] = maps  # a copy: a consumer may change the yielded maps in place
            yield SliceDone("saliency", z, i + 1, len(chosen), result=maps)
        return result

    from ..io.write import VolumeWriter

    with VolumeWriter(out, shape, np.float32) as writer:
        for i, (z, x) in enumerate(windows):
            maps = maps_of(x)
            writer[i] = maps
            yield SliceDone("saliency", z, i + 1, len(chosen), result=maps)
    return Path(out)


def _into_store(
    store: Any, model_name: str | None, model: torch.nn.Module, card: Any, settings: InputSettings, volume: Any,
    method: str, chosen: tuple[int, ...], params: dict[str, Any], maps_of: Any,
) -> Generator[SliceDone, None, Path]:
    """``saliency_events`` with a results store: compute what is missing, read back what is done."""
    from ..store.sinks import saliency_sink  # the store is optional: no zarr/ome-zarr import otherwise

    sink = saliency_sink(store, model_name, model, card, settings, volume, method, params)
    todo = set(sink.todo(chosen))
    windows = settings.windows(volume, [z for z in chosen if z in todo])
    for i, z in enumerate(chosen):
        if z in todo:
            wz, x = next(windows)
            maps = maps_of(x)
            sink.write(wz, maps)
        else:
            maps = sink.read(z)
        yield SliceDone("saliency", z, i + 1, len(chosen), result=maps)
    return sink.store.path
