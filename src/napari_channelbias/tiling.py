"""Tiles, padding and blending for slices larger than one network input.

Encoders downsample by 32, so every network input must have a height and width that are multiples of
32. Large slices are cut into overlapping square tiles; their outputs are blended with a weight that
falls off towards the tile border so seams do not show. Prediction and saliency both use this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

ENCODER_MULTIPLE = 32


def padded_size(n: int, multiple: int = ENCODER_MULTIPLE) -> int:
    """Smallest multiple of ``multiple`` that is at least ``n``."""
    return -(-n // multiple) * multiple


def pad_to_multiple(
    x: torch.Tensor, multiple: int = ENCODER_MULTIPLE
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the last two dimensions of ``x`` at the bottom and right up to a multiple of ``multiple``.

    Reflection padding keeps image statistics at the border (zeros would look like a dark membrane to an
    EM model); it falls back to replicate padding where the input is too small to reflect.

    Returns
    -------
    padded, (height, width)
        The padded tensor and the original size, for :func:`crop_to`.
    """
    h, w = x.shape[-2:]
    ph, pw = padded_size(h, multiple) - h, padded_size(w, multiple) - w
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if (ph < h and pw < w) else "replicate"
    squeeze = x.ndim == 3
    if squeeze:
        x = x.unsqueeze(0)
    x = F.pad(x, (0, pw, 0, ph), mode=mode)
    if squeeze:
        x = x.squeeze(0)
    return x, (h, w)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Undo :func:`pad_to_multiple` on the last two dimensions."""
    return x[..., : size[0], : size[1]]


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` with at least ``overlap`` overlap.

    The last tile is aligned with the end so no tile hangs over the border; a length shorter than a tile
    gives a single start at 0 (the caller pads that tile).
    """
    if tile <= 0:
        raise ValueError("tile must be positive")
    if not 0 <= overlap < tile:
        raise ValueError("overlap must be in [0, tile)")
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return sorted(set(starts))


@dataclass(frozen=True)
class Tile:
    """One tile of a slice: ``y0:y1, x0:x1``."""

    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)


def iter_tiles(height: int, width: int, tile: int, overlap: int) -> Iterator[Tile]:
    """All tiles of a ``height`` x ``width`` slice, row by row."""
    for y0 in tile_starts(height, tile, overlap):
        for x0 in tile_starts(width, tile, overlap):
            yield Tile(y0, min(y0 + tile, height), x0, min(x0 + tile, width))


def blend_weight(height: int, width: int, overlap: int) -> np.ndarray:
    """A float32 weight map that ramps linearly from the border over ``overlap`` pixels.

    The ramp never reaches zero (its minimum is 1 / (overlap + 1)), so pixels at the slice border,
    covered by one tile only, still get a finite normalised value.
    """
    def ramp(n: int) -> np.ndarray:
        if overlap <= 0:
            return np.ones(n, np.float32)
        i = np.arange(n, dtype=np.float32)
        edge = np.minimum(i + 1, n - i)
        return np.minimum(edge / (overlap + 1), 1.0).astype(np.float32)

    return np.outer(ramp(height), ramp(width)).astype(np.float32)
