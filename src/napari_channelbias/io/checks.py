"""Check that volumes can feed a model, and parse slice selections.

The checks read slice by slice, so memory stays bounded on volumes larger than memory, and every
failure raises :class:`~napari_channelbias.errors.VolumeError` (or ``ConfigError`` for settings) with a
message that names what was found and how to fix it. Import these from
:mod:`napari_channelbias.volume_io`, the public entry point for volume I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, VolumeError
from ..windowing import sample_planes, slice_along

# Volumes up to this many voxels are checked whole. Larger ones (a 100 GB stack) are checked on a bounded
# sample (windowing.sample_planes: up to CHECK_SLICES slices, CHECK_SAMPLE voxels read in all), because a
# full scan would read the whole stack before any work starts; the places a job then reads are checked
# again as it reads them (training checks every patch, see segmentation.patches).
CHECK_MAX_VOXELS = 1 << 30
CHECK_SLICES = 64
CHECK_SAMPLE = 1 << 26


def _scan(vol: Any, max_voxels: int | None = None) -> tuple[Iterable[tuple[int, np.ndarray]], bool]:
    """``(z, values)`` of every slice of ``vol``, or of a bounded sample when it is larger than
    ``max_voxels`` (default :data:`CHECK_MAX_VOXELS`); the flag says whether it is a sample."""
    size = int(np.prod(vol.shape, dtype=np.int64))
    if size <= (CHECK_MAX_VOXELS if max_voxels is None else max_voxels):
        return ((z, slice_along(vol, z)) for z in range(vol.shape[0])), False
    return sample_planes(vol, 0, CHECK_SLICES, CHECK_SAMPLE), True


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
        planes, sampled = _scan(vol)
        for z, s in planes:
            check_finite(s, f"{name}: slice {z}" + (" (a sampled region)" if sampled else ""))


def check_finite(values: np.ndarray, where: str) -> None:
    """Raise :class:`VolumeError` naming ``where`` and the counts if ``values`` hold NaN or Inf."""
    finite = np.isfinite(values)
    if not finite.all():
        n_nan = int(np.isnan(values).sum())
        n_inf = int((~finite).sum()) - n_nan
        raise VolumeError(
            f"non-finite intensities: {where} has {n_nan} NaN and {n_inf} Inf voxels; replace them "
            "(e.g. numpy.nan_to_num) before using the image"
        )


def _label_values(labels: Any, limit: int = 1024, max_voxels: int | None = None) -> tuple[np.ndarray, bool, bool]:
    """Distinct values of ``labels`` (slice by slice, or a bounded sample of a huge volume, see
    :func:`_scan`); stops collecting after ``limit`` values. Returns ``(values, truncated, sampled)``."""
    found: set[Any] = set()
    planes, sampled = _scan(labels, max_voxels)
    for _, plane in planes:
        found.update(np.unique(plane).tolist())
        if len(found) > limit:
            return np.array(sorted(found)), True, sampled
    return np.array(sorted(found)), False, sampled


# A label volume with more distinct values than this is read as instance labels (one value per object),
# not as classes: it suggests a binary model, whose foreground the user then chooses.
MAX_SUGGESTED_CLASSES = 16
# Larger label volumes are not scanned for a suggestion (the GUI asks on every change of layer).
SUGGEST_MAX_VOXELS = 2**28


def suggest_classes(labels: Any, max_classes: int = MAX_SUGGESTED_CLASSES,
                    max_voxels: int = SUGGEST_MAX_VOXELS) -> int | None:
    """The number of model outputs a label volume suggests (1 = binary), or None if it was not scanned.

    * values within 0/1 (a mask): 1;
    * non-negative integers up to ``max_classes - 1`` (semantic classes ``0..N-1``, gaps allowed): the
      largest value + 1;
    * anything else -- more than ``max_classes`` distinct values (instance labels ``0..N``), values
      beyond ``max_classes - 1`` (a 0/255 mask), negative or fractional values: 1, a binary model whose
      foreground must then be chosen (``foreground="any"`` or a value; training refuses until it is).

    Volumes of more than ``max_voxels`` voxels are not read (None): a suggestion is not worth a scan.
    """
    size = int(np.prod(getattr(labels, "shape", ()), dtype=np.int64))
    if size == 0 or size > max_voxels:
        return None
    values, truncated, _ = _label_values(labels, limit=max_classes, max_voxels=max_voxels)
    if truncated or values.size == 0 or values.min() < 0 or not np.all(values == np.round(values)):
        return 1
    top = int(values.max())
    return 1 if top <= 1 or top >= max_classes else top + 1


def validate_labels(
    labels: Any, image_shape: Sequence[int], n_classes: int, foreground: int | str | None = None
) -> None:
    """Raise :class:`VolumeError` unless ``labels`` match the image and hold valid class indices.

    ``n_classes == 1`` is a binary model. Without ``foreground`` its values must be 0 or 1; any other
    value (instance labels 0..N, a 0/255 mask, several classes) is refused with a message naming the
    choices, never read silently as background. With ``foreground`` a value, the binary target is
    ``labels == foreground``, so a multi-class label volume can train a binary model of one of its
    classes (the sample's membranes, say): the values must be non-negative integers and ``foreground``
    must occur. ``foreground="any"``: the target is ``labels > 0`` and some label must be > 0.
    ``n_classes >= 2``: values in ``0 .. n_classes - 1``. Values are collected slice by slice (bounded
    memory). :mod:`napari_channelbias.segmentation.labels` explains the choices.
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
    values, truncated, sampled = _label_values(labels)
    check_label_values(values, n_classes, foreground, truncated=truncated, complete=not sampled)


def check_label_values(
    values: np.ndarray, n_classes: int, foreground: int | str | None = None, *, truncated: bool = False,
    complete: bool = True,
) -> None:
    """The value rule of :func:`validate_labels` on the sorted distinct ``values`` of some labels.

    ``complete=False``: the values are those of a part (a sample of a huge volume, one training patch),
    so only values that may not occur are refused; a foreground value missing from the part is fine.
    """
    allowed_max = 1 if n_classes == 1 else n_classes - 1
    what = "binary model: 0 = background, 1 = foreground" if n_classes == 1 else f"{n_classes} classes"
    if values.dtype.kind == "f":
        bad_float = values[~np.isfinite(values) | (values != np.round(values))]
        if bad_float.size:
            raise VolumeError(
                f"labels contain non-integer values ({_few(bad_float)}); labels must be class indices "
                f"0..{allowed_max} ({what})"
            )
    if n_classes == 1 and foreground is not None:
        _check_foreground(values, truncated, foreground, complete)
        return
    bad = values[(values < 0) | (values > allowed_max)]
    if bad.size == 0:
        return
    found = _few(values) + (" ..." if truncated else "")
    fix = (
        f"relabel them to consecutive integers 0..{allowed_max}, or train with more classes"
        if n_classes > 1 else
        _binary_fix(values)
    )
    if n_classes > 1 and set(values.tolist()) <= {0, 255}:
        fix = "this looks like a 0/255 mask: divide by 255 or use labels > 0 and train a binary model"
    raise VolumeError(
        f"labels hold values outside 0..{allowed_max} ({what}): found {found}, out of range "
        f"{_few(bad, 4)}; {fix}"
    )


def _binary_fix(values: np.ndarray) -> str:
    """How to train a binary model on labels that are not 0/1: the three choices, with this volume's values."""
    positive = values[values > 0]
    one = int(positive[-1]) if positive.size else 1
    consecutive = values.size > 2 and values.tolist() == list(range(int(values.max()) + 1))
    multi = f"--classes {int(values.max()) + 1}" if consecutive else "relabel to 0..N-1 and use --classes N"
    return ("choose what is foreground: every label > 0 (--foreground any: instance labels 0..N, a 0/255 "
            f"mask), one value (--foreground {one}), or a multi-class model ({multi})")


def _check_foreground(values: np.ndarray, truncated: bool, foreground: int | str, complete: bool = True) -> None:
    """Binary target ``labels == foreground`` (or ``> 0`` for "any"): it must occur (when ``values`` are
    complete), no label may be < 0."""
    found = _few(values) + (" ..." if truncated else "")
    if (values < 0).any():
        raise VolumeError(f"labels hold negative values ({_few(values[values < 0], 4)}); labels must be class "
                          "indices >= 0")
    if not complete:
        return
    if foreground == "any":
        if not (values > 0).any():
            raise VolumeError(f"no voxel of the labels is > 0 (found {found}); the labels are all background: "
                              "draw or load labels with foreground first")
        return
    if foreground not in values.tolist():
        hint = values[values > 0]
        fix = f"choose the foreground value with --foreground (e.g. {int(hint[0])})" if hint.size else (
            "the labels are all background: draw or load labels with foreground first")
        raise VolumeError(f"no voxel of the labels has the foreground value {foreground} (found {found}); {fix}")


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



def select_slices(slices: str | Iterable[int] | None, n: int, axis: int = 0) -> tuple[int, ...]:
    """The slice indices a job runs on: ``None`` (all), a ``--slices`` text (:func:`parse_slices`) or indices.

    Indices keep the order given (any subset, e.g. ``[5, 0]``); each may appear once. Out-of-range,
    repeated or no indices raise :class:`ConfigError` naming the ``n`` slices along ``axis``.
    """
    if slices is None or isinstance(slices, str):
        return tuple(parse_slices(slices, n))
    chosen = tuple(int(z) for z in slices)
    where = f"the volume has {n} slices along axis {axis}"
    if not chosen:
        raise ConfigError(f"no slices selected; {where} (0..{n - 1})")
    bad = [z for z in chosen if not 0 <= z < n]
    if bad:
        raise ConfigError(f"slice(s) {bad[:5]} out of range; {where}, valid indices 0..{n - 1}")
    if len(set(chosen)) != len(chosen):
        raise ConfigError("each slice may be selected only once")
    return chosen
