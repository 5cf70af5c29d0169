"""Open image volumes lazily.

Every reader returns an array-like ``(Z, Y, X)`` that reads only what is indexed: a numpy memmap for
uncompressed TIFF, a zarr array for compressed TIFF / zarr / OME-Zarr, an h5py dataset for HDF5 and a
small lazy reader for folders of 2-D slices. A 20 GB stack therefore opens instantly and is read slice
by slice by the windowing, prediction and saliency code.

The checks live in :mod:`.checks`, the writers in :mod:`.write` and the format constants in
:mod:`.formats`.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image

from ..errors import ChannelBiasError, VolumeError
from .formats import SUPPORTED_FORMS, TIFF_SUFFIXES, is_slice_file, is_zarr_store, split_hdf5


# --------------------------------------------------------------------------------------------- reading
def _natural_key(name: str) -> list[Any]:
    """Sort key that orders embedded numbers numerically: img2 before img10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _read_2d(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".png":
        with Image.open(path) as im:
            return np.asarray(im)
    return tifffile.imread(path)


class SliceFolder:
    """A folder of 2-D images seen as a lazy ``(Z, Y, X)`` volume; indexing reads only needed files.

    Files are ordered naturally (``img2`` before ``img10``); the first file fixes shape and dtype and
    every other file is checked against it when read.
    """

    def __init__(self, folder: str | Path, files: Sequence[Path] | None = None) -> None:
        self.folder = Path(folder)
        if files is None:
            files = [p for p in self.folder.iterdir() if is_slice_file(p)]
        self.files = sorted(files, key=lambda p: _natural_key(p.name))
        if not self.files:
            raise VolumeError(f"folder {self.folder} holds no .tif/.tiff/.png slices; {SUPPORTED_FORMS}")
        first = _read_2d(self.files[0])
        self._slice_shape = first.shape
        self.dtype = first.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.files), *self._slice_shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return len(self.files)

    def _read(self, z: int) -> np.ndarray:
        data = _read_2d(self.files[z])
        if data.shape != self._slice_shape:
            raise VolumeError(
                f"slice file {self.files[z].name} has shape {data.shape} but {self.files[0].name} has "
                f"{self._slice_shape}; all slices in {self.folder} must have the same size"
            )
        return data.astype(self.dtype, copy=False)

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        first, rest = key[0], key[1:]
        if isinstance(first, (int, np.integer)):
            z = int(first)
            if not -len(self) <= z < len(self):
                raise IndexError(f"slice {z} out of range for {len(self)} slices")
            return self._read(z % len(self))[rest]
        zs = np.arange(len(self))[first]  # slices, lists, boolean masks: numpy's own semantics
        out = np.empty((len(zs), *self._slice_shape), dtype=self.dtype)
        for i, z in enumerate(zs):
            out[i] = self._read(int(z))
        return out[(slice(None), *rest)]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def __repr__(self) -> str:
        return f"SliceFolder({str(self.folder)!r}, shape={self.shape}, dtype={self.dtype})"


class _DropLeadingAxes:
    """A lazy view of ``array[0, 0, ..., :, :, :]``: OME-Zarr stores (t, c, z, y, x) with t = c = 1."""

    def __init__(self, array: Any, n: int) -> None:
        self.array, self._n = array, n
        self.dtype = array.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape[self._n :])

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        return np.asarray(self.array[(0,) * self._n + key])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[...]
        return out if dtype is None else out.astype(dtype)


def _drop_singleton_leading(array: Any) -> Any:
    n = 0
    while array.ndim - n > 3 and array.shape[n] == 1:
        n += 1
    return _DropLeadingAxes(array, n) if n else array


def _open_tiff(path: Path) -> Any:
    try:
        # Uncompressed, contiguous data: a memmap costs nothing to open and reads at disk speed.
        return tifffile.memmap(path, mode="r")
    except (ValueError, OSError):
        pass
    except tifffile.TiffFileError as exc:
        raise VolumeError(f"{path} is not a readable TIFF file ({exc})") from exc
    import zarr  # 0.3 s at import: loaded when a zarr store is used, not for --help

    try:
        # Compressed or tiled data: tifffile's zarr store decodes only the strips/tiles indexed.
        node = zarr.open(tifffile.imread(path, aszarr=True), mode="r")
    except tifffile.TiffFileError as exc:
        raise VolumeError(f"{path} is not a readable TIFF file ({exc})") from exc
    # A pyramidal (multi-resolution) OME-TIFF opens as a group of levels "0", "1", ...: take full size.
    return node if hasattr(node, "shape") else node["0"]


def _ome_multiscales(attrs: Any) -> list[dict[str, Any]] | None:
    """The OME-NGFF ``multiscales`` list: top-level in zarr v2 (NGFF <= 0.4), under ``ome`` in v3 (0.5)."""
    attrs = dict(attrs)
    if isinstance(attrs.get("ome"), dict) and "multiscales" in attrs["ome"]:
        return attrs["ome"]["multiscales"]
    return attrs.get("multiscales")


def _open_zarr(path: Path) -> Any:
    import zarr  # 0.3 s at import: loaded when a zarr store is used, not for --help

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # zarr raises several types for "not a zarr store"
        raise VolumeError(f"{path} is not a readable zarr array or group ({exc}); {SUPPORTED_FORMS}") from exc
    if hasattr(node, "shape"):
        return node
    multiscales = _ome_multiscales(node.attrs)
    if multiscales:
        try:
            level0 = multiscales[0]["datasets"][0]["path"]
            return node[level0]
        except (KeyError, IndexError, TypeError) as exc:
            raise VolumeError(
                f"OME-Zarr {path}: its multiscales metadata names no readable level 0 ({exc!r}); "
                "open the level-0 array inside it directly"
            ) from exc
    names = sorted(name for name, _ in node.arrays())
    if len(names) == 1:
        return node[names[0]]
    if not names:
        raise VolumeError(f"zarr group {path} holds no array; open the array inside it directly")
    raise VolumeError(
        f"zarr group {path} holds {len(names)} arrays ({', '.join(names[:8])}); "
        f"open one of them, e.g. {path / names[0]}"
    )


def _open_hdf5(path: Path, dataset: str | None) -> Any:
    try:
        import h5py  # the optional hdf5 extra: imported only when an HDF5 file is opened
    except ImportError as exc:
        raise ChannelBiasError(
            f"{path} is an HDF5 file, which needs h5py: pip install napari-channelbias[hdf5]"
        ) from exc
    if not path.is_file():
        raise VolumeError(f"no HDF5 file at {path}")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise VolumeError(f"{path} is not a readable HDF5 file ({exc})") from exc
    if dataset is None:
        found: list[str] = []
        handle.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None)
        if len(found) != 1:
            handle.close()
            listing = ", ".join("/" + n for n in found[:8]) or "none"
            raise VolumeError(
                f"{path} holds {len(found)} datasets ({listing}); name one as {path}:/<dataset>"
            )
        dataset = found[0]
    if dataset not in handle or not isinstance(handle[dataset], h5py.Dataset):
        handle.close()
        raise VolumeError(f"{path} has no dataset {dataset!r}; name an existing one as {path}:/<dataset>")
    return handle[dataset]  # the dataset keeps the file open; it is read lazily


def open_volume(path: str | Path) -> Any:
    """Open an image or label volume lazily.

    Parameters
    ----------
    path
        A TIFF / OME-TIFF / BigTIFF file, a folder of 2-D TIFF/PNG slices, a ``.zarr`` array or group
        (OME-Zarr: level 0), ``file.h5:/dataset`` or a ``.npy`` file.

    Returns
    -------
    An array-like with ``shape``, ``dtype``, ``ndim`` and numpy-style indexing that reads only what is
    indexed. Leading singleton axes of a >3-D array (OME-Zarr's t and c) are dropped.

    Raises
    ------
    VolumeError
        Missing path, unknown form or unreadable file; the message lists the supported forms.
    ChannelBiasError
        HDF5 asked for without h5py installed.
    """
    text = str(path)
    hdf5 = split_hdf5(text)
    if hdf5 is not None:
        return _drop_singleton_leading(_open_hdf5(*hdf5))
    p = Path(text)
    if not p.exists():
        raise VolumeError(f"no file or folder at {p}; expected {SUPPORTED_FORMS}")
    if p.is_dir():
        if is_zarr_store(p):
            return _drop_singleton_leading(_open_zarr(p))
        return SliceFolder(p)
    name = p.name.lower()
    if name.endswith(TIFF_SUFFIXES):
        return _drop_singleton_leading(_open_tiff(p))
    if name.endswith(".npy"):
        return np.load(p, mmap_mode="r")
    if name.endswith(".png"):
        return _read_2d(p)  # a single 2-D image; validate_image explains why that is not enough
    raise VolumeError(f"cannot open {p}: unknown file type {p.suffix!r}; expected {SUPPORTED_FORMS}")


def _scale_from_ngff(multiscale: dict[str, Any]) -> list[float] | None:
    scale: list[float] | None = None
    for transforms in (multiscale["datasets"][0].get("coordinateTransformations", []),
                       multiscale.get("coordinateTransformations", [])):
        for t in transforms:
            if t.get("type") == "scale":
                s = [float(v) for v in t["scale"]]
                scale = s if scale is None else [a * b for a, b in zip(scale, s, strict=True)]
    return scale


def volume_scale(path: str | Path) -> tuple[float, float, float] | None:
    """Voxel size ``(z, y, x)`` from OME-TIFF, ImageJ TIFF or OME-Zarr metadata; None if not recorded."""
    p = Path(str(path))
    try:
        if is_zarr_store(p):
            import zarr  # 0.3 s at import: loaded when a zarr store is used, not for --help

            node = zarr.open(str(p), mode="r")
            multiscales = None if hasattr(node, "shape") else _ome_multiscales(node.attrs)
            scale = _scale_from_ngff(multiscales[0]) if multiscales else None
            return tuple(scale[-3:]) if scale and len(scale) >= 3 else None  # type: ignore[return-value]
        if p.is_file() and p.name.lower().endswith(TIFF_SUFFIXES):
            with tifffile.TiffFile(p) as tif:
                if tif.is_ome and tif.ome_metadata:
                    for el in ET.fromstring(tif.ome_metadata).iter():
                        if el.tag.endswith("Pixels"):
                            sizes = [el.get(f"PhysicalSize{a}") for a in "ZYX"]
                            if all(s is not None for s in sizes):
                                return tuple(float(s) for s in sizes)  # type: ignore[return-value]
                            return None
                if tif.is_imagej and tif.imagej_metadata and "spacing" in tif.imagej_metadata:
                    tags = tif.pages[0].tags
                    yres, xres = tags.get("YResolution"), tags.get("XResolution")
                    if yres is not None and xres is not None:
                        ysize = yres.value[1] / yres.value[0]
                        xsize = xres.value[1] / xres.value[0]
                        return float(tif.imagej_metadata["spacing"]), float(ysize), float(xsize)
    except Exception:  # metadata is optional; a malformed block just means "unknown"
        return None
    return None

