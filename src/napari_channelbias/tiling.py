"""Tiles, padding and blending for slices larger than one network input.

Encoders downsample by 32, so every network input must have a height and width that are multiples of
32. Large slices are cut into overlapping square tiles; their outputs are blended with a weight that
falls off towards the tile border so seams do not show. Prediction and saliency both use this module
and its one tile type, :class:`Tile`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ConfigError

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
    """One tile of a slice: the input region it reads and the output region it accounts for.

    ``y0:y1, x0:x1`` is the region (global coordinates). ``own_*`` is the part of it whose output pixels
    the tile *owns*: the owned regions of a slice's tiles partition it, so a sum over output pixels can be
    split over tiles exactly (saliency), while blending (prediction) uses the whole region.
    """

    y0: int
    y1: int
    x0: int
    x1: int
    own_y0: int
    own_y1: int
    own_x0: int
    own_x1: int

    @property
    def region(self) -> tuple[slice, slice]:
        """Rows and columns of the slice this tile reads."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def owned(self) -> tuple[slice, slice]:
        """Rows and columns (global) whose output pixels this tile accounts for."""
        return slice(self.own_y0, self.own_y1), slice(self.own_x0, self.own_x1)

    @property
    def owned_local(self) -> tuple[slice, slice]:
        """:attr:`owned` in the tile's own coordinates."""
        return (slice(self.own_y0 - self.y0, self.own_y1 - self.y0),
                slice(self.own_x0 - self.x0, self.own_x1 - self.x0))


def _axis_plan(length: int, tile: int | None, overlap: int) -> list[tuple[int, int, int, int]]:
    """(start, stop, own_start, own_stop) per tile along one axis; ownership splits overlaps in half."""
    if tile is None or tile >= length:
        return [(0, length, 0, length)]
    starts = tile_starts(length, tile, overlap)
    stops = [min(s + tile, length) for s in starts]
    # The boundary between neighbours sits in the middle of their overlap, as far as possible from
    # both tiles' borders, so an owned pixel has the most context its tile can give it.
    bounds = [0] + [(starts[i + 1] + stops[i]) // 2 for i in range(len(starts) - 1)] + [length]
    return [(starts[i], stops[i], bounds[i], bounds[i + 1]) for i in range(len(starts))]


def plan_tiles(height: int, width: int, tile: int | None = None, overlap: int = 64) -> list[Tile]:
    """Tiles covering a ``height`` x ``width`` slice row by row, whose owned regions partition it.

    ``tile=None`` (or a tile at least as large as the slice) gives one tile owning everything; tiles
    along each axis start at :func:`tile_starts`. Tiles of a multiple of 32 avoid padding inside each.
    """
    if tile is not None:
        if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or tile < 1:
            raise ConfigError(f"tile must be a positive number of pixels (e.g. 512) or None, got {tile!r}")
        if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)) or not 0 <= overlap < tile:
            raise ConfigError(f"overlap must be in [0, tile) = [0, {tile}), got {overlap!r}")
    rows, cols = _axis_plan(height, tile, overlap), _axis_plan(width, tile, overlap)
    return [Tile(y0, y1, x0, x1, oy0, oy1, ox0, ox1)
            for (y0, y1, oy0, oy1) in rows for (x0, x1, ox0, ox1) in cols]


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
