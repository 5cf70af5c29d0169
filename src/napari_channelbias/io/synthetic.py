"""A lazy volume of any size, computed from coordinates, that records what is read.

For benchmarks and tests of bounded reads: a ``CountingVolume((1600, 8192, 8192))`` behaves like a
107 GB uint8 stack (shape, dtype, numpy-style slicing of one slice index at a time, as every reader of
the package does) but stores nothing, and its ``reads`` show exactly which regions a job read.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class CountingVolume:
    """A lazy ``(Z, Y, X)`` volume computed from coordinates; records every region read.

    Nothing is stored, so its shape can be that of a 100 GB stack. ``values`` maps the coordinate grid
    ``(z, y, x)`` to voxel values (default: a ``uint8`` ramp); ``reads`` holds ``(slice, pixels)`` for
    each read. Only one slice index per read is allowed, as the package's readers do.
    """

    def __init__(self, shape: tuple[int, int, int], dtype: Any = np.uint8, values: Any = None) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.ndim = 3
        self.dtype = np.dtype(dtype)
        self.values = values or (lambda z, y, x: (z * 37 + y * 3 + x * 5) % 251)
        self.reads: list[tuple[int, int]] = []

    @property
    def nbytes(self) -> int:
        """The size the volume would have on disk, uncompressed."""
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def __getitem__(self, index: tuple[Any, ...]) -> np.ndarray:
        z, ys, xs = index
        if not isinstance(z, (int, np.integer)):  # the package's readers take one slice at a time
            raise TypeError(f"CountingVolume reads one slice index at a time, got {z!r}")
        y = np.arange(*ys.indices(self.shape[1]))
        x = np.arange(*xs.indices(self.shape[2]))
        self.reads.append((int(z), len(y) * len(x)))
        return np.asarray(self.values(int(z), y[:, None], x[None, :])).astype(self.dtype)

    @property
    def voxels_read(self) -> int:
        """Voxels returned by all reads so far."""
        return sum(pixels for _, pixels in self.reads)
