"""Saliency over a range of slices of a (possibly lazy) volume, as an event generator.

Each selected slice's 2D+ window is read and normalised as the model's input settings say (the same
:class:`~napari_channelbias.models.inputs.InputSettings` prediction uses: channel ``c`` of slice ``z``
holds slice ``z - r + c``, ends padded), its maps are computed with
:func:`napari_channelbias.saliency.compute.compute_saliency`, and a
:class:`~napari_channelbias.events.SliceDone` carrying the ``(K, H, W)`` maps is yielded. The result is a
``(Z, K, H, W)`` float32 array, ``Z`` = number of selected slices in the order given: returned in memory,
or streamed slice by slice to a ``.zarr`` / ``.tif`` file through the atomic
:class:`~napari_channelbias.io.write.VolumeWriter`. Closing the generator (cancel) leaves no partial file:
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
from ..io.checks import select_slices
from ..io.write import VolumeWriter
from ..models.checkpoints import ModelCard
from ..models.inputs import InputSettings
from ..windowing import n_slices_along
from .compute import compute_saliency
from .registry import get_method

_OPTIONS = {name for name, p in inspect.signature(compute_saliency).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and name != "device"}


def saliency_events(
    model: torch.nn.Module,
    card_or_settings: ModelCard | dict[str, Any] | InputSettings,
    volume: Any,
    method: str,
    *,
    slices: str | Iterable[int] | None = None,
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
        The segmentation model (see :func:`~napari_channelbias.saliency.compute.compute_saliency`).
    card_or_settings
        How windows are built, as for prediction: the checkpoint's :class:`ModelCard` (or card dict), or
        :class:`~napari_channelbias.models.inputs.InputSettings` (window, padding, axis, normaliser; a
        flat dict without ``normalization`` feeds raw intensities as float32).
    volume
        3-D ``(Z, Y, X)`` array or lazy volume; only the slices the windows need are read.
    method
        A saliency method name (``SALIENCY_METHODS``).
    slices
        Slice indices along the settings' axis, any subset in any order (e.g. ``range(10, 20)``), or an
        ``"A:B"`` text; ``None``: all (:func:`~napari_channelbias.io.checks.select_slices`).
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
    settings = InputSettings.from_any(card_or_settings)
    n = n_slices_along(volume, settings.axis)
    chosen = select_slices(slices, n, settings.axis)
    plane = tuple(s for a, s in enumerate(volume.shape) if a != settings.axis)
    shape = (len(chosen), settings.window, *plane)
    windows = settings.windows(volume, chosen)

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
