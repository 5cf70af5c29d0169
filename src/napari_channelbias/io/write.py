"""Write image volumes to TIFF or zarr slice by slice, atomically.

Writes never leave a half-written file under the target name: data goes to ``<name>.tmp-<pid>``
beside the target and is moved into place (``os.replace``) only once complete, so a cancelled job keeps
the previous output. Import these from :mod:`napari_channelbias.volume_io`, the public entry point for
volume I/O.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from ..errors import VolumeError
from . import formats


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(formats.TIFF_SUFFIXES):
        return "tiff"
    if name.endswith(".zarr"):
        return "zarr"
    raise VolumeError(f"cannot write {path}: use a .tif/.tiff file or a .zarr folder")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


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
        self.tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        self._closed = False
        _remove(self.tmp)  # a stale temporary of this very process id
        self.path.parent.mkdir(parents=True, exist_ok=True)
        nbytes = int(np.prod(self.shape)) * self.dtype.itemsize
        if self.kind == "tiff":
            import tifffile

            self._array: Any = tifffile.memmap(
                self.tmp, shape=self.shape, dtype=self.dtype, bigtiff=nbytes > formats.BIGTIFF_THRESHOLD,
                photometric="minisblack",
            )
        else:
            import zarr

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
            del self._array  # the memmap must be closed before the rename (Windows)
            os.replace(self.tmp, self.path)
        else:
            del self._array
            if self.path.exists() or self.path.is_symlink():
                # A directory cannot be replaced atomically: move the old one aside first, so at every
                # moment either the old or the new store sits under the target name (or, briefly, beside).
                old = self.path.with_name(f"{self.path.name}.old-{os.getpid()}")
                _remove(old)
                os.replace(self.path, old)
                os.replace(self.tmp, self.path)
                _remove(old)
            else:
                os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Discard everything written; an existing target stays as it was."""
        if self._closed:
            return
        self._closed = True
        self.__dict__.pop("_array", None)
        _remove(self.tmp)

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
