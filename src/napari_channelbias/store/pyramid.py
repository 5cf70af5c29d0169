"""Multiscale levels of a results image: halve the slice plane until it is at most about 2048 pixels.

napari draws a multiscale layer from the level that fits the screen, so planes larger than
:data:`PYRAMID_FROM` get extra levels, each half the previous in the two in-plane axes (never along the
slicing axis: a slice stays one chunk thick at every level, so a slice's levels are written together
and its done mark covers all of them). Levels are strided samples (``plane[::2, ::2]``, "nearest" as in
ome-zarr's default scaler): exact for labels, and a sample index ``i`` of level ``l`` is pixel
``i * 2**l`` of level 0, so the translation stays that of level 0 and only the scale doubles.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PYRAMID_FROM = 2048  # planes with an edge above this get downsampled levels
MAX_LEVELS = 8


def level_factors(plane: Sequence[int]) -> list[int]:
    """Downsampling factors of the levels for a slice plane ``(H, W)``: ``[1]``, ``[1, 2]``, ``[1, 2, 4]`` ..."""
    factors = [1]
    while max(-(-s // factors[-1]) for s in plane) > PYRAMID_FROM and len(factors) < MAX_LEVELS:
        factors.append(factors[-1] * 2)
    return factors


def level_shape(shape: Sequence[int], in_plane: Sequence[int], factor: int) -> tuple[int, ...]:
    """The shape of a level: axes in ``in_plane`` divided by ``factor`` (rounded up), the others kept."""
    return tuple(-(-int(s) // factor) if a in in_plane else int(s) for a, s in enumerate(shape))


def downsample(plane: np.ndarray, factor: int) -> np.ndarray:
    """Strided sample of the last two axes of ``plane`` (``(..., H, W)``), contiguous."""
    if factor == 1:
        return plane
    return np.ascontiguousarray(plane[..., ::factor, ::factor])


def level_transforms(
    scale: Sequence[float], translation: Sequence[float], in_plane: Sequence[int], factor: int
) -> list[dict[str, object]]:
    """NGFF ``coordinateTransformations`` of one level: the scale doubled per halving, translation kept."""
    s = [float(v) * (factor if a in in_plane else 1) for a, v in enumerate(scale)]
    out: list[dict[str, object]] = [{"type": "scale", "scale": s}]
    if any(float(t) != 0.0 for t in translation):
        out.append({"type": "translation", "translation": [float(t) for t in translation]})
    return out
