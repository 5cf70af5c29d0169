"""Open, check and write image volumes lazily and atomically.

Every reader returns an array-like ``(Z, Y, X)`` that reads only what is indexed: a numpy memmap for
uncompressed TIFF, a zarr array for compressed TIFF / zarr / OME-Zarr, an h5py dataset for HDF5 and a
small lazy reader for folders of 2-D slices. A 20 GB stack therefore opens instantly and is read slice
by slice by the windowing, prediction and saliency code.

Writes never leave a half-written file under the target name: data goes to ``<name>.tmp-<pid>``
beside the target and is moved into place (``os.replace``) only once complete, so a cancelled job keeps
the previous output.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from .errors import ChannelBiasError, ConfigError, VolumeError

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")
SLICE_SUFFIXES = (".tif", ".tiff", ".png")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
SUPPORTED_FORMS = (
    "a multi-page TIFF / OME-TIFF / BigTIFF (.tif, .tiff), a folder of 2-D .tif/.png slices, "
    "a zarr v2/v3 array or OME-Zarr group (.zarr folder), an HDF5 dataset (file.h5:/dataset) "
    "or a .npy array"
)
# Classic TIFF addresses at most 4 GiB; switch to BigTIFF with room to spare for tags and offsets.
BIGTIFF_THRESHOLD = 3_900_000_000


# --------------------------------------------------------------------------------------------- reading
def _natural_key(name: str) -> list[Any]:
    """Sort key that orders embedded numbers numerically: img2 before img10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _read_2d(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".png":
        from PIL import Image

        with Image.open(path) as im:
            return np.asarray(im)
    import tifffile

    return tifffile.imread(path)


def _is_slice_file(path: Path) -> bool:
    # Hidden files are skipped: macOS writes "._img1.tif" resource forks beside copied slices.
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in SLICE_SUFFIXES


class SliceFolder:
    """A folder of 2-D images seen as a lazy ``(Z, Y, X)`` volume; indexing reads only needed files.

    Files are ordered naturally (``img2`` before ``img10``); the first file fixes shape and dtype and
    every other file is checked against it when read.
    """

    def __init__(self, folder: str | Path, files: Sequence[Path] | None = None) -> None:
        self.folder = Path(folder)
        if files is None:
            files = [p for p in self.folder.iterdir() if _is_slice_file(p)]
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
    import tifffile

    try:
        # Uncompressed, contiguous data: a memmap costs nothing to open and reads at disk speed.
        return tifffile.memmap(path, mode="r")
    except (ValueError, OSError):
        pass
    except tifffile.TiffFileError as exc:
        raise VolumeError(f"{path} is not a readable TIFF file ({exc})") from exc
    import zarr

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
    import zarr

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


def _split_hdf5(text: str) -> tuple[Path, str | None] | None:
    """``file.h5:/dataset`` -> (file, dataset); ``file.h5`` -> (file, None); anything else -> None."""
    match = re.match(r"^(.*?\.(?:h5|hdf5|hdf))(?::(.*))?$", text, flags=re.IGNORECASE)
    if match is None:
        return None
    return Path(match.group(1)), (match.group(2) or None)


def _open_hdf5(path: Path, dataset: str | None) -> Any:
    try:
        import h5py
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


def _is_zarr_dir(path: Path) -> bool:
    return path.suffix.lower() == ".zarr" or any(
        (path / marker).exists() for marker in (".zarray", ".zgroup", "zarr.json")
    )


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
    hdf5 = _split_hdf5(text)
    if hdf5 is not None:
        return _drop_singleton_leading(_open_hdf5(*hdf5))
    p = Path(text)
    if not p.exists():
        raise VolumeError(f"no file or folder at {p}; expected {SUPPORTED_FORMS}")
    if p.is_dir():
        if _is_zarr_dir(p):
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
        if p.is_dir() and _is_zarr_dir(p):
            import zarr

            node = zarr.open(str(p), mode="r")
            multiscales = None if hasattr(node, "shape") else _ome_multiscales(node.attrs)
            scale = _scale_from_ngff(multiscales[0]) if multiscales else None
            return tuple(scale[-3:]) if scale and len(scale) >= 3 else None  # type: ignore[return-value]
        if p.is_file() and p.name.lower().endswith(TIFF_SUFFIXES):
            import xml.etree.ElementTree as ET

            import tifffile

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


# ------------------------------------------------------------------------------------------ validation
def validate_image(
    vol: Any, window: int = 3, name: str = "image", check_values: bool = True, axis: int = 0
) -> None:
    """Raise :class:`VolumeError` if ``vol`` cannot feed a 2D+ model with ``window`` slices.

    Checks, in order: the number of axes (2-D image, colour image, 4-D+ stack), empty axes, the number
    of slices along ``axis``, the dtype, and (float data, if ``check_values``) NaN / Inf values, scanned
    slice by slice so memory stays bounded on huge volumes.
    """
    shape = tuple(int(s) for s in vol.shape)
    need = f"a 2D+ model with window {window} needs a stack of at least {window} slices (Z, Y, X)"
    if len(shape) < 2:
        raise VolumeError(f"{name} has shape {shape}, which is not an image; {need}")
    if len(shape) == 2:
        raise VolumeError(f"{name} is 2-D (Y, X) with shape {shape}; {need}; open a 3-D stack")
    if len(shape) == 3 and shape[-1] in (3, 4) and min(shape[:2]) > 4:
        raise VolumeError(
            f"{name} with shape {shape} looks like a colour (RGB{'A' if shape[-1] == 4 else ''}) image "
            f"(Y, X, {shape[-1]}), not a stack; convert it to grayscale or pick one channel; {need}"
        )
    if len(shape) >= 4:
        colour = " of colour images" if shape[-1] in (3, 4) else ""
        raise VolumeError(
            f"{name} is {len(shape)}-D{colour} with shape {shape}; pick one channel / time point "
            f"to get a 3-D stack (Z, Y, X)"
        )
    if 0 in shape:
        raise VolumeError(f"{name} has an empty axis: shape {shape}; every axis needs at least one voxel")
    n = shape[axis]
    if n < window:
        where = "" if axis == 0 else f" along axis {axis}"
        raise VolumeError(f"{name} has {n} slice(s){where} (shape {shape}) but {need}")
    dtype = np.dtype(vol.dtype)
    if dtype.kind not in "biuf":
        raise VolumeError(f"{name} has data type {dtype}; expected integer or floating-point intensities")
    if check_values and dtype.kind == "f":
        for z in range(shape[0]):
            s = np.asarray(vol[z])
            finite = np.isfinite(s)
            if not finite.all():
                n_nan = int(np.isnan(s).sum())
                n_inf = int((~finite).sum()) - n_nan
                raise VolumeError(
                    f"{name} contains non-finite values: slice {z} has {n_nan} NaN and {n_inf} Inf "
                    "voxels; replace them (e.g. numpy.nan_to_num) before using it"
                )


def _label_values(labels: Any, limit: int = 1024) -> tuple[np.ndarray, bool]:
    """Distinct values of ``labels`` (slice by slice); stops collecting after ``limit`` values."""
    found: set[Any] = set()
    for z in range(labels.shape[0]):
        found.update(np.unique(np.asarray(labels[z])).tolist())
        if len(found) > limit:
            return np.array(sorted(found)), True
    return np.array(sorted(found)), False


def validate_labels(labels: Any, image_shape: Sequence[int], n_classes: int) -> None:
    """Raise :class:`VolumeError` unless ``labels`` match the image and hold valid class indices.

    ``n_classes == 1`` is a binary model: values must be 0 or 1. ``n_classes >= 2``: values in
    ``0 .. n_classes - 1``. Values are collected slice by slice (bounded memory).
    """
    if n_classes < 1:
        raise ConfigError(f"n_classes must be >= 1 (1 = binary), got {n_classes}")
    shape, image_shape = tuple(int(s) for s in labels.shape), tuple(int(s) for s in image_shape)
    if shape != image_shape:
        raise VolumeError(
            f"labels have shape {shape} but the image has shape {image_shape}; they must match voxel for "
            "voxel (same slices, same height and width)"
        )
    dtype = np.dtype(labels.dtype)
    if dtype.kind not in "biuf":
        raise VolumeError(f"labels have data type {dtype}; expected integer class indices")
    values, truncated = _label_values(labels)
    allowed_max = 1 if n_classes == 1 else n_classes - 1
    what = "binary model: 0 = background, 1 = foreground" if n_classes == 1 else f"{n_classes} classes"
    if dtype.kind == "f":
        bad_float = values[~np.isfinite(values) | (values != np.round(values))]
        if bad_float.size:
            raise VolumeError(
                f"labels contain non-integer values ({_few(bad_float)}); labels must be class indices "
                f"0..{allowed_max} ({what})"
            )
    bad = values[(values < 0) | (values > allowed_max)]
    if bad.size == 0:
        return
    found = _few(values) + (" ..." if truncated else "")
    fix = (
        f"relabel them to consecutive integers 0..{allowed_max}, or train with more classes"
        if n_classes > 1 else "for a mask stored as 0/255 divide by 255 or use labels > 0"
    )
    if n_classes > 1 and set(values.tolist()) <= {0, 255}:
        fix = "this looks like a 0/255 mask: divide by 255 or use labels > 0 and train a binary model"
    raise VolumeError(
        f"labels hold values outside 0..{allowed_max} ({what}): found {found}, out of range "
        f"{_few(bad, 4)}; {fix}"
    )


def _few(values: np.ndarray, n: int = 8) -> str:
    shown = [int(v) if float(v).is_integer() else float(v) for v in values[:n].tolist()]
    return ", ".join(str(v) for v in shown) + (f" (+{len(values) - n} more)" if len(values) > n else "")


def parse_slices(text: str | None, n: int) -> range:
    """Parse a ``--slices`` value: ``"5:10"``, ``"5:"``, ``":10"``, ``"7"`` or ``"0:10:2"``.

    Python semantics (end exclusive, negative indices count from the end); ``None`` or ``""`` selects
    all ``n`` slices. Out-of-range or empty selections raise :class:`ConfigError` naming ``0..n-1``.
    """
    if text is None or not text.strip():
        return range(n)
    valid = f"the volume has {n} slices, valid indices 0..{n - 1}"
    parts = text.strip().split(":")
    try:
        values = [int(p) if p.strip() else None for p in parts]
    except ValueError:
        raise ConfigError(
            f"cannot read slices {text!r}; use A:B, A:, :B or a single index; {valid}"
        ) from None
    if len(values) == 1:
        z = values[0]
        if z is None or not -n <= z < n:
            raise ConfigError(f"slice {text.strip()} is out of range; {valid}")
        return range(z % n, z % n + 1)
    if len(values) > 3 or values[-1] == 0 and len(values) == 3:
        raise ConfigError(f"cannot read slices {text!r}; use A:B, A:, :B or A:B:step; {valid}")
    for v in values[:2]:
        if v is not None and not -n <= v <= n:
            raise ConfigError(f"slice bound {v} in {text!r} is out of range; {valid}")
    selected = range(*slice(*values).indices(n))
    if len(selected) == 0:
        raise ConfigError(f"slices {text!r} select nothing; {valid}")
    return selected


# --------------------------------------------------------------------------------------------- writing
def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(TIFF_SUFFIXES):
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
                self.tmp, shape=self.shape, dtype=self.dtype, bigtiff=nbytes > BIGTIFF_THRESHOLD,
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
