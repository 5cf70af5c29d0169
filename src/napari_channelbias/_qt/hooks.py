"""npe2 hooks: a reader for what napari does not open itself, writers, and the sample data.

* Reader: folders of 2-D slices, ``.zarr`` arrays and OME-Zarr groups (level 0, voxel size from the
  metadata) and ``.h5`` / ``.hdf5`` files (with the ``hdf5`` extra), all opened lazily through
  :func:`napari_channelbias.volume_io.open_volume`, so a volume larger than memory opens at once and
  napari reads only the slices it shows. TIFF stays with napari's own reader.
* Writers: labels and image volumes (masks, probabilities, saliency maps) to ``.tif`` / ``.zarr``,
  atomically, through the core's :func:`~napari_channelbias.volume_io.write_volume`.
* Sample data: the procedural EM-like volume with its labels.

The functions here never import Qt: napari can call the reader and writers headless.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import VolumeError
from ..io.formats import is_slice_file, is_zarr_store, split_hdf5
from ..io.read import open_volume, volume_scale
from ..io.write import VolumeWriter, write_volume
from .store_layers import is_results_store, read_store

LayerData = tuple[Any, dict[str, Any], str]
PathOrPaths = str | Sequence[str]

# Integer volumes whose name says so open as a Labels layer; everything else as an Image layer.
_LABEL_WORDS = ("label", "mask", "seg", "groundtruth", "ground_truth", "ground-truth")


def _single_path(path: PathOrPaths) -> str | None:
    if isinstance(path, (list, tuple)):
        return os.fspath(path[0]) if len(path) == 1 else None
    return os.fspath(path)


def _is_slice_folder(path: Path) -> bool:
    if not path.is_dir():
        return False
    return sum(1 for p in path.iterdir() if is_slice_file(p)) >= 2  # one file is an image, not a stack


def _claims(path: str) -> bool:
    """Whether this plugin, rather than napari's own reader, should open ``path``."""
    hdf5 = split_hdf5(path)
    if hdf5 is not None:
        return hdf5[0].is_file()
    p = Path(path)
    return is_zarr_store(p) or _is_slice_folder(p)


def _display_name(path: str) -> str:
    """``em.zarr`` -> ``em``; ``stack.h5:/raw`` -> ``stack raw``; a folder keeps its name."""
    hdf5 = split_hdf5(path)
    if hdf5 is not None:
        dataset = (hdf5[1] or "").strip("/")
        return f"{hdf5[0].stem} {dataset}".strip()
    return Path(path.rstrip("/\\")).stem or path


def get_reader(path: PathOrPaths) -> Callable[[PathOrPaths], list[LayerData]] | None:
    """npe2 reader hook: a reader for slice folders, zarr / OME-Zarr and HDF5, else None."""
    single = _single_path(path)
    if single is not None and is_results_store(single):  # an analysed image's results: lazy layers
        return read_store
    if single is None or not _claims(single):
        return None
    return read_volume


def layer_type_for(name: str, dtype: Any) -> str:
    """``"labels"`` for an integer volume whose name contains label / mask / seg, else ``"image"``."""
    lowered = name.lower()
    integer = np.dtype(dtype).kind in "iub"
    return "labels" if integer and any(word in lowered for word in _LABEL_WORDS) else "image"


def layer_data_for(path: str | os.PathLike[str], name: str | None = None) -> LayerData:
    """Open ``path`` lazily as napari layer data ``(array, metadata, layer_type)``.

    Also used by :func:`napari_channelbias._qt.launch.launch`, which opens any supported volume
    (TIFF included) the same way.
    """
    text = os.fspath(path)
    data = open_volume(text)
    layer_name = name or _display_name(text)
    meta: dict[str, Any] = {"name": layer_name, "metadata": {"source_path": text}}
    scale = volume_scale(text)
    if scale is not None and len(getattr(data, "shape", ())) == 3:
        meta["scale"] = tuple(float(s) for s in scale)
    return data, meta, layer_type_for(layer_name, data.dtype)


def read_volume(path: PathOrPaths) -> list[LayerData]:
    """npe2 reader: one lazily read layer per path."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    return [layer_data_for(p) for p in paths]


# --------------------------------------------------------------------------------------------- writers
_WRITABLE = (".tif", ".tiff", ".zarr")


def _target(path: str) -> Path:
    target = Path(path)
    if not target.name.lower().endswith(_WRITABLE):
        raise VolumeError(f"cannot write {target.name}: choose a name ending in {', '.join(_WRITABLE)}")
    return target


def _write_any(path: str, data: Any, dtype: Any | None = None) -> list[str]:
    target = _target(path)
    array = data if dtype is None else np.asarray(data).astype(dtype, copy=False)
    if getattr(array, "ndim", 0) <= 3:
        write_volume(target, array)
    else:  # a stack of saliency volumes (channel, Z, Y, X): one leading index at a time
        with VolumeWriter(target, array.shape, array.dtype) as writer:
            for i in range(array.shape[0]):
                writer[i] = np.asarray(array[i])
    return [str(target)]


def write_labels(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """npe2 writer for a Labels layer (a mask volume) to ``.tif`` / ``.zarr``; integer type kept."""
    dtype = np.dtype(getattr(data, "dtype", np.uint8))
    if dtype.kind not in "iub":
        raise VolumeError(f"labels {attributes.get('name', '')!r} have non-integer type {dtype}")
    return _write_any(path, data)


def write_image(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """npe2 writer for an Image layer (probabilities, saliency maps) to ``.tif`` / ``.zarr``.

    Values are written as they are (float32 stays float32), so saliency magnitudes survive a round
    trip; multiscale layers write their full-resolution level.
    """
    if attributes.get("multiscale") and isinstance(data, (list, tuple)):
        data = data[0]
    if attributes.get("rgb"):
        raise VolumeError(
            f"layer {attributes.get('name', '')!r} is an RGB image (the 2D+ input preview); save the "
            "grayscale volume instead, or use napari's own PNG/TIFF writer for a picture"
        )
    return _write_any(path, data)


# ------------------------------------------------------------------------------------------ sample data
def sample_em() -> list[LayerData]:
    """npe2 sample: the procedural serial-section-EM-like volume (32 x 256 x 256) and its labels."""
    # Imported on use: napari loads this module for every file its reader or writers see; the sample's
    # generator (and scipy with it) is needed only when the sample is asked for.
    from ..sample_data import CLASS_NAMES, make_sample, sample_scale

    image, labels = make_sample()
    scale = sample_scale()
    classes = ", ".join(f"{i} = {name}" for i, name in enumerate(CLASS_NAMES))
    return [
        (image, {"name": "sample EM", "scale": scale, "metadata": {"source_path": "sample"}}, "image"),
        (labels, {"name": "sample labels", "scale": scale, "metadata": {"classes": classes}}, "labels"),
    ]
