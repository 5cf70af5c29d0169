"""The volume formats we read and write: suffixes, how a path is recognised, and format limits.

One place for these rules so that the reader, the writer and the napari hooks agree on what a path is
(an HDF5 ``file.h5:/dataset``, a zarr store, a folder of slices).
"""

from __future__ import annotations

import re
from pathlib import Path

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

ZARR_MARKERS = (".zarray", ".zgroup", "zarr.json")  # zarr v2 array, v2 group, v3 node
# ``file.h5`` or ``file.h5:/group/dataset``
_HDF5_PATH = re.compile(r"^(.*?\.(?:h5|hdf5|hdf))(?::(.*))?$", re.IGNORECASE)


def split_hdf5(text: str) -> tuple[Path, str | None] | None:
    """``file.h5:/dataset`` -> (file, dataset); ``file.h5`` -> (file, None); anything else -> None."""
    match = _HDF5_PATH.match(text)
    if match is None:
        return None
    return Path(match.group(1)), (match.group(2) or None)


def is_zarr_store(path: Path) -> bool:
    """A folder that is a zarr array or group: named ``*.zarr`` or holding a zarr metadata file."""
    return path.is_dir() and (
        path.suffix.lower() == ".zarr" or any((path / marker).exists() for marker in ZARR_MARKERS)
    )


def is_slice_file(path: Path) -> bool:
    """A 2-D slice file of a slice folder; hidden files (macOS ``._img1.tif`` resource forks) are not."""
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in SLICE_SUFFIXES
