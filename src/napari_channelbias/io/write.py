"""Write image volumes to TIFF or zarr slice by slice, atomically.

Writes never leave a half-written file under the target name: data goes to the temporary path of
:mod:`.atomic` beside the target and is committed into place only once complete, so a cancelled job
keeps the previous output.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import tifffile

from ..errors import VolumeError
from . import formats
from .atomic import commit, discard, temporary_path


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(formats.TIFF_SUFFIXES):
        return "tiff"
    if name.endswith(".zarr"):
        return "zarr"
    raise VolumeError(f"cannot write {path}: use a .tif/.tiff file or a .zarr folder")


class VolumeWriter:
    """Stream a volume to ``.tif`` or ``.zarr`` slice by slice, committed atomically.

    Use as a context manager: ``writer[z] = slice2d`` or ``writer[z0:z1] = block`` inside the ``with``
    block. On a clean exit the temporary ``<name>.tmp-<pid>`` replaces the target; on an exception, or
    after :meth:`abort`, it is deleted and any existing target is left untouched. Memory stays bounded:
    TIFF data goes through a memmap of the temporary file (BigTIFF above ~3.9 GB), zarr data through
    chunks of one slice, tiled in-plane.
    """

    def __init__(
        self, path: str | Path, shape: Sequence[int], dtype: Any, chunks: Sequence[int] | None = None,
        zarr_format: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(np.uint8 if np.dtype(dtype) == np.bool_ else dtype)
        self.kind = _kind(self.path)
        self.tmp = temporary_path(self.path)
        self._closed = False
        nbytes = int(np.prod(self.shape)) * self.dtype.itemsize
        if self.kind == "tiff":
            self._array: Any = tifffile.memmap(
                self.tmp, shape=self.shape, dtype=self.dtype, bigtiff=nbytes > formats.BIGTIFF_THRESHOLD,
                photometric="minisblack",
            )
        else:
            import zarr  # 0.3 s at import: loaded when a zarr store is used, not for --help

            if chunks is None:  # one slice (or one leading index) per chunk, tiled in-plane
                chunks = (*(1 for _ in self.shape[:-2]), *(min(s, 1024) for s in self.shape[-2:]))
            kwargs = {} if zarr_format is None else {"zarr_format": zarr_format}
            self._array = zarr.open_array(
                str(self.tmp), mode="w", shape=self.shape, dtype=self.dtype,
                chunks=tuple(chunks), **kwargs,
            )

    def __setitem__(self, key: Any, value: Any) -> None:
        if self._closed:
            raise RuntimeError(f"writer for {self.path} is already closed")
        self._array[key] = np.asarray(value).astype(self.dtype, copy=False)

    def commit(self) -> Path:
        """Flush the data and move it into place; returns the target path."""
        if self._closed:
            raise RuntimeError(f"writer for {self.path} is already closed")
        self._closed = True
        if self.kind == "tiff":
            self._array.flush()
        del self._array  # a memmap must be closed before the rename (Windows)
        return commit(self.tmp, self.path)

    def abort(self) -> None:
        """Discard everything written; an existing target stays as it was."""
        if self._closed:
            return
        self._closed = True
        self.__dict__.pop("_array", None)
        discard(self.tmp)

    def __enter__(self) -> VolumeWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None and not self._closed:
            self.commit()
        else:
            self.abort()


def write_volume(
    path: str | Path, array: Any, *, chunks: Sequence[int] | None = None, zarr_format: int | None = None
) -> Path:
    """Write a 2-D or 3-D (possibly lazy) array to ``.tif/.tiff`` or ``.zarr`` atomically.

    The array is copied slice by slice through :class:`VolumeWriter`, so lazy inputs larger than memory
    are fine. Returns the target path.
    """
    shape = tuple(int(s) for s in array.shape)
    if len(shape) not in (2, 3):
        raise VolumeError(f"can only write 2-D or 3-D arrays, got shape {shape}")
    with VolumeWriter(path, shape, array.dtype, chunks=chunks, zarr_format=zarr_format) as writer:
        if len(shape) == 2:
            writer[...] = np.asarray(array)
        else:
            for z in range(shape[0]):
                writer[z] = np.asarray(array[z])
    return Path(path)
