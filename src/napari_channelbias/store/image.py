"""One image of a results store: its multiscale arrays, its OME metadata and its per-slice done mask.

A slice is written whole at every level (each level's chunks along the slicing axis are one slice
thick, so the slice's data is a set of whole chunk objects and no other slice shares them), then its
entry in the done mask is set. zarr's local store writes each chunk object to a temporary file and
renames it over the target, so a killed process leaves every chunk either old or new, never torn; a
slice whose done mark is missing is simply computed again, and a slice marked done is never rewritten.
Different workers write different slices, hence different chunks: no locks are needed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
from ome_zarr.writer import add_metadata, write_label_metadata, write_multiscales_metadata

from ..errors import ChannelBiasError
from .layout import CHUNK_PLANE, LABEL_NAME
from .pyramid import downsample, level_factors, level_shape, level_transforms


@dataclass(frozen=True)
class ImageSpec:
    """What to create: full shape, dtype, NGFF axis names, which axis is the slicing axis.

    ``shape`` includes a leading channel axis when ``axes[0] == "c"``; ``slice_axis`` indexes
    ``shape``. ``channel_names`` label the channels (omero metadata); ``label`` makes an image-label.
    """

    shape: tuple[int, ...]
    dtype: str
    axes: tuple[str, ...]
    slice_axis: int
    channel_names: tuple[str, ...] | None = None
    label: bool = False

    @property
    def spatial(self) -> tuple[int, ...]:
        """Indices of the three spatial axes in ``shape``."""
        return tuple(a for a, name in enumerate(self.axes) if name != "c")

    @property
    def in_plane(self) -> tuple[int, ...]:
        return tuple(a for a in self.spatial if a != self.slice_axis)

    @property
    def n_slices(self) -> int:
        return self.shape[self.slice_axis]


def _chunks(spec: ImageSpec, shape: Sequence[int]) -> tuple[int, ...]:
    return tuple(
        1 if a == spec.slice_axis else (s if a not in spec.in_plane else min(s, CHUNK_PLANE))
        for a, s in enumerate(shape)
    )


def create_image(
    parent: Any, name: str, spec: ImageSpec, *, scale: Sequence[float], translation: Sequence[float],
    fmt: Any, attrs: dict[str, Any],
) -> Any:
    """Create the group ``parent/name`` with its levels and NGFF metadata (through ome-zarr-py)."""

    group = parent.create_group(name)
    zarr_v3 = fmt.zarr_format == 3
    datasets = []
    # NGFF scale/translation have one entry per axis; the channel axis gets 1 and 0.
    full_scale, full_translation = [1.0] * len(spec.shape), [0.0] * len(spec.shape)
    for a, s, t in zip(spec.spatial, scale, translation, strict=True):
        full_scale[a], full_translation[a] = float(s), float(t)
    plane = [spec.shape[a] for a in spec.in_plane]
    for level, factor in enumerate(level_factors(plane)):
        shape = level_shape(spec.shape, spec.in_plane, factor)
        extra = {"dimension_names": list(spec.axes)} if zarr_v3 else {}
        group.create_array(str(level), shape=shape, chunks=_chunks(spec, shape), dtype=spec.dtype,
                           fill_value=0, **extra)
        datasets.append({"path": str(level), "coordinateTransformations":
                         level_transforms(full_scale, full_translation, spec.in_plane, factor)})
    metadata: dict[str, Any] = {}
    if spec.channel_names is not None:
        metadata["omero"] = {"channels": [
            {"label": c, "color": "FFFFFF", "active": True,
             "window": {"min": 0.0, "max": 1.0, "start": 0.0, "end": 1.0}} for c in spec.channel_names]}
    write_multiscales_metadata(group, datasets, fmt=fmt, axes=list(spec.axes), name=name,
                               **({"metadata": metadata} if metadata else {}))
    group.attrs["channelbias"] = {"spec": _spec_dict(spec), **attrs}
    if spec.label:  # after our own attributes: ome-zarr-py writes through a fresh handle of the group
        write_label_metadata(parent, name, fmt=fmt)  # no colours: readers pick their own
        if zarr_v3:  # NGFF 0.5 wants the version on the labels group too; ome-zarr-py leaves it out
            add_metadata(parent, {"version": fmt.version}, fmt=fmt)
    return parent[name]


def _spec_dict(spec: ImageSpec) -> dict[str, Any]:
    return {"shape": list(spec.shape), "dtype": spec.dtype, "axes": list(spec.axes),
            "slice_axis": spec.slice_axis, "channel_names": list(spec.channel_names or []) or None,
            "label": spec.label}


def spec_from_attrs(attrs: dict[str, Any]) -> ImageSpec:
    d = attrs["spec"]
    names = d.get("channel_names")
    return ImageSpec(tuple(d["shape"]), d["dtype"], tuple(d["axes"]), int(d["slice_axis"]),
                     tuple(names) if names else None, bool(d.get("label")))


class StoredImage:
    """A results image opened for reading and slice-wise writing.

    Parameters
    ----------
    group
        The image's zarr group (holding levels ``0``, ``1``, ...).
    done
        Its done mask, a uint8 zarr array of one element per slice, one chunk per element.
    key
        The image's path in the store (for messages).
    """

    def __init__(self, group: Any, done: Any, key: str) -> None:
        self.group, self.done, self.key = group, done, key
        info = dict(group.attrs["channelbias"])
        self.spec = spec_from_attrs(info)
        self.settings: dict[str, Any] = info.get("settings", {})
        n_levels = len(level_factors([self.spec.shape[a] for a in self.spec.in_plane]))
        self.levels = [group[str(level)] for level in range(n_levels)]
        self.factors = level_factors([self.spec.shape[a] for a in self.spec.in_plane])

    @property
    def shape(self) -> tuple[int, ...]:
        return self.spec.shape

    @property
    def label(self) -> bool:
        return self.spec.label or self.key.endswith(f"/labels/{LABEL_NAME}")

    def done_mask(self) -> np.ndarray:
        """Boolean mask over slices: True where the slice is complete at every level."""
        return np.asarray(self.done[:]).astype(bool)

    def missing(self, slices: Iterable[int]) -> list[int]:
        """The slices of ``slices`` (in their order) not yet done."""
        mask = self.done_mask()
        return [int(z) for z in slices if not mask[int(z)]]

    def _index(self, z: int) -> tuple[Any, ...]:
        idx: list[Any] = [slice(None)] * len(self.spec.shape)
        idx[self.spec.slice_axis] = int(z)
        return tuple(idx)

    def write_slice(self, z: int, plane: np.ndarray) -> None:
        """Write slice ``z`` (the array without the slicing axis) at every level, then mark it done."""
        expected = tuple(s for a, s in enumerate(self.spec.shape) if a != self.spec.slice_axis)
        plane = np.asarray(plane)
        if plane.shape != expected:
            raise ChannelBiasError(f"{self.key}: slice {z} has shape {plane.shape}, the store expects {expected}")
        plane = plane.astype(self.spec.dtype, copy=False)
        for level, factor in zip(self.levels, self.factors, strict=True):
            level[self._index(z)] = downsample(plane, factor)
        self.done[int(z)] = 1  # only after every level's chunks are in place

    def read_slice(self, z: int, level: int = 0) -> np.ndarray:
        return np.asarray(self.levels[level][self._index(z)])

    def lazy_levels(self) -> list[Any]:
        """Dask arrays of every level (for a napari multiscale layer); nothing is read until drawn."""

        return [da.from_zarr(level) for level in self.levels]
