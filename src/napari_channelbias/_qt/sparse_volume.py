"""In-memory volumes for the viewer's layers that cost memory only for the slices written into them.

The GUI shows results computed slice by slice (labels, probabilities, saliency maps) as full-size layers
aligned with the image. A plain ``np.zeros`` of such a layer is committed by the OS page by page as it
is written, but the allocation itself is refused for a volume beyond RAM plus swap (a 100 GB stack's
float32 layers), before a single slice is computed. These volumes are zarr arrays in a ``MemoryStore``:
uncompressed (writing a slice is a copy), one slice thick along the axes given and at most
:data:`IN_PLANE_CHUNK` wide otherwise, and zarr keeps no chunk that holds only zeros. napari shows,
paints, fills and undoes on them like on a numpy array (it reads them slice by slice).

A run that fills every slice still needs the memory of all of them: :func:`refuse_beyond_budget` is the
one rule for how much of the RAM such a run may take, with the fix (a results store) in its message.
"""

from __future__ import annotations

from typing import Any

import psutil
import zarr
from zarr.storage import MemoryStore

from ..errors import ConfigError

IN_PLANE_CHUNK = 2048  # an unwritten 8192^2 slice reads as zeros in 0.07 s in 2048^2 chunks, 0.6 s in one
MEMORY_FRACTION = 0.25  # results held in memory may take at most this share of the available RAM


def in_memory_volume(shape: tuple[int, ...], thin: tuple[int, ...], dtype: str) -> zarr.Array:
    """A zero ``shape`` volume of ``dtype`` in memory, chunked one element thick along the ``thin`` axes.

    Parameters
    ----------
    shape
        The layer's shape (the image's, with a class axis in front for multi-class probabilities).
    thin
        The axes a result is written along one index at a time: the slice axis (and a class axis).
    dtype
        ``"uint8"`` for labels, ``"float32"`` for probabilities and saliency maps.
    """
    chunks = tuple(1 if a in thin else min(int(n), IN_PLANE_CHUNK) for a, n in enumerate(shape))
    return zarr.create_array(store=MemoryStore(), shape=tuple(int(n) for n in shape), chunks=chunks, dtype=dtype,
                             fill_value=0, compressors=None)


def is_in_memory_volume(data: Any) -> bool:
    """Whether ``data`` is an :func:`in_memory_volume` (not a store-backed or user-given array)."""
    return isinstance(data, zarr.Array) and isinstance(data.store, MemoryStore)


def memory_budget() -> int:
    """Bytes the results of one run may hold in memory: :data:`MEMORY_FRACTION` of the available RAM now."""
    return int(MEMORY_FRACTION * psutil.virtual_memory().available)


def refuse_beyond_budget(need: int, what: str) -> None:
    """A ConfigError naming the fix if ``what`` would hold ``need`` bytes, more than :func:`memory_budget`.

    ``what`` says what would be held (e.g. "whole-volume saliency of 2 model(s) on a 30x512x512 volume").
    """
    budget = memory_budget()
    if need > budget:
        raise ConfigError(
            f"{what} would hold {need / 2**30:.1f} GiB in memory, more than the {budget / 2**30:.1f} GiB allowed "
            "(a quarter of the available RAM): type a results store path (DIR.ome.zarr) under 'store' to write "
            "the results to disk and show them lazily"
        )
