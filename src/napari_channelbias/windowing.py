"""2D+ input windows: which slices feed which channel, padding at the ends, normalisation.

A 2D+ model sees slice ``z`` together with its neighbours as the ``K`` input channels of a 2-D network.
The channel order is normative (DESIGN section 2): for an odd window ``K = 2r + 1``, channel ``c`` holds
slice ``z - r + c``, so channel 0 is the lowest z. Slices outside the volume are mirrored by default
(``z = -1`` reads slice 1, ``z = n`` reads slice ``n - 2``: a reflection that does not repeat the edge),
clamped ("replicate") or left as zeros ("zero").

Intensities go through *one* transform shared by all channels (:class:`Normalizer`), because any
per-channel statistic would itself make the channels unequal -- the very asymmetry this package
measures. ImageNet's per-RGB mean/std is available only as an explicit opt-in for that reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ConfigError

PADDINGS = ("mirror", "replicate", "zero")
NORMALIZATION_MODES = ("percentile", "minmax", "none", "imagenet")

# ImageNet statistics of RGB images scaled to [0, 1] (torchvision's values).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# At most this many intensity values are pooled when fitting percentiles (64 MB of float32); larger
# volumes are subsampled pixel-wise (seeded), smaller ones are used whole so the fit is exact.
_MAX_FIT_SAMPLES = 1 << 24


def check_window(window: int) -> int:
    """Return ``window`` as an int if it is a valid odd window size >= 1, else raise ConfigError."""
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1 or window % 2 == 0:
        raise ConfigError(
            f"window must be an odd number of slices >= 1 (1, 3, 5, 7, ...), got {window!r}; "
            "the centre slice needs the same number of neighbours on each side"
        )
    return int(window)


def check_padding(padding: str) -> str:
    """Return ``padding`` if it is one of :data:`PADDINGS`, else raise ConfigError listing them."""
    if not isinstance(padding, str) or padding not in PADDINGS:
        raise ConfigError(f"unknown padding {padding!r}; valid options: {', '.join(PADDINGS)}")
    return padding


def check_axis(axis: int) -> int:
    """Return ``axis`` as an int if it is a slicing axis of a ``(Z, Y, X)`` volume (0, 1 or 2), else ConfigError.

    One rule for every setting that names an axis (training, model cards, windows); negative axes are
    refused rather than wrapped, so a card never records ``-3`` for what reads as ``0``.
    """
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not 0 <= axis <= 2:
        raise ConfigError(f"axis must be 0, 1 or 2 (the slicing axis of a Z, Y, X volume), got {axis!r}")
    return int(axis)


def _reflect(i: int, n: int) -> int:
    """Reflect index ``i`` into ``[0, n)`` without repeating the edge (numpy's 'reflect' mode).

    Periodic with period ``2 (n - 1)`` so windows wider than the volume still land inside it.
    """
    if n == 1:
        return 0
    period = 2 * (n - 1)
    i %= period
    return i if i < n else period - i


def window_indices(z: int, n_slices: int, window: int = 3, padding: str = "mirror") -> list[int | None]:
    """Slice index feeding each channel of the window centred on slice ``z``.

    Parameters
    ----------
    z
        Centre slice, ``0 <= z < n_slices``.
    n_slices
        Number of slices along the window axis.
    window
        Odd window size ``K``; channel ``c`` holds slice ``z - K // 2 + c``.
    padding
        ``"mirror"`` (reflect without repeating the edge: -1 -> 1, n -> n - 2), ``"replicate"``
        (clamp to the nearest end slice) or ``"zero"`` (``None``: a slice of zeros).

    Returns
    -------
    list of int or None, length ``K``, lowest z first.
    """
    window = check_window(window)
    check_padding(padding)
    if n_slices < 1:
        raise ValueError(f"n_slices must be >= 1, got {n_slices}")
    if not 0 <= z < n_slices:
        raise IndexError(f"slice {z} is outside the volume's {n_slices} slices (valid: 0..{n_slices - 1})")
    r = window // 2
    out: list[int | None] = []
    for i in range(z - r, z + r + 1):
        if 0 <= i < n_slices:
            out.append(i)
        elif padding == "mirror":
            out.append(_reflect(i, n_slices))
        elif padding == "replicate":
            out.append(min(max(i, 0), n_slices - 1))
        else:
            out.append(None)
    return out


def _check_axis(volume: Any, axis: int) -> int:
    if volume.ndim != 3:
        raise ValueError(f"expected a 3-D volume (Z, Y, X), got shape {tuple(volume.shape)}")
    # Array helpers index like numpy (-1 is the last axis); settings go through check_axis as given.
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool) and -3 <= axis < 0:
        axis += 3
    return check_axis(axis)


def n_slices_along(volume: Any, axis: int = 0) -> int:
    """Number of slices of a 3-D volume along ``axis``."""
    return int(volume.shape[_check_axis(volume, axis)])


def plane_index(axis: int, z: int, lead: int = 0, region: tuple[slice, slice] | None = None) -> tuple[Any, ...]:
    """The numpy index of slice ``z`` along ``axis`` of a 3-D volume, after ``lead`` leading (class) axes.

    ``region`` (rows, columns of the slice) restricts it to part of the slice. The one way the package
    turns "slice z along axis" into an index, for reading (:func:`slice_along`) and for writing outputs
    stacked along the same axis.
    """
    plane: list[Any] = list(region) if region is not None else [slice(None), slice(None)]
    plane.insert(axis, z)
    return (*([slice(None)] * lead), *plane)


def slice_along(volume: Any, z: int, axis: int = 0, region: tuple[slice, slice] | None = None) -> np.ndarray:
    """Read one 2-D slice (or the ``region`` of it: rows, columns) of a 3-D, possibly lazy, volume along ``axis``.

    Only that slice is read: lazy volumes (memmaps, zarr arrays, our slice readers) are indexed, never
    loaded whole. For ``axis=1`` the result is ``(Z, X)``; for ``axis=2`` it is ``(Z, Y)``.
    """
    axis = _check_axis(volume, axis)
    n = volume.shape[axis]
    if not -n <= z < n:
        raise IndexError(f"slice {z} is outside the {n} slices along axis {axis} (valid: 0..{n - 1})")
    return np.asarray(volume[plane_index(axis, int(z) % n, region=region)])


# Side of the square crops a bounded fit reads from a large slice: big enough that a zarr chunk read is
# mostly used, small enough that a 16 M-value budget spreads over many places of each slice.
_FIT_CROP = 256


def sample_planes(
    volume: Any, axis: int, max_slices: int, budget: int, seed: int = 0
) -> Iterator[tuple[int, np.ndarray]]:
    """A bounded sample of a (possibly lazy, possibly huge) volume: ``(z, values)`` per picked slice.

    The one rule for "look at a volume without reading it all" (normaliser fits, value checks): at most
    ``max_slices`` evenly spaced slices along ``axis`` (ends included), one at a time; each whole
    (``values`` is the raveled slice) while their pixels fit ``budget``, else seeded random square crops of
    about ``budget / max_slices`` values (:func:`_crops_of`). Both the memory and the bytes read are
    bounded by ``budget`` values; a volume within both limits is seen whole.
    """
    if max_slices < 1:
        raise ConfigError(f"max_slices must be >= 1, got {max_slices}")
    axis = _check_axis(volume, axis)
    picks = _evenly_spaced(volume.shape[axis], max_slices)
    per_slice = int(np.prod(plane_shape(volume, axis), dtype=np.int64))
    per_pick = max(1, budget // max(1, len(picks)))
    rng = np.random.default_rng(seed)
    for z in picks:
        if per_slice > per_pick:
            yield int(z), _crops_of(volume, int(z), axis, per_pick, rng)
        else:
            yield int(z), slice_along(volume, int(z), axis).ravel()


def _crops_of(volume: Any, z: int, axis: int, budget: int, rng: np.random.Generator) -> np.ndarray:
    """About ``budget`` values of slice ``z``: seeded random square crops, read region by region.

    Only the crops are read (a lazy volume decodes the chunks under them), so a fit on a huge slice costs
    ``budget`` voxels of I/O, not the slice.
    """
    plane = plane_shape(volume, axis)
    side = (min(_FIT_CROP, plane[0]), min(_FIT_CROP, plane[1]))
    per_crop = side[0] * side[1]
    if per_crop > budget:  # a budget smaller than one crop: a narrower strip of full crop height
        side = (side[0], max(1, budget // side[0]))
        per_crop = side[0] * side[1]
    n_crops = max(1, budget // per_crop)
    parts = []
    for _ in range(n_crops):
        y = int(rng.integers(plane[0] - side[0] + 1))
        x = int(rng.integers(plane[1] - side[1] + 1))
        parts.append(slice_along(volume, z, axis, (slice(y, y + side[0]), slice(x, x + side[1]))).ravel())
    return np.concatenate(parts)


def _evenly_spaced(n: int, m: int) -> np.ndarray:
    """At most ``m`` distinct indices spread evenly over ``range(n)``, ends included."""
    if n <= m:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, m).round().astype(int))


@dataclass
class Normalizer:
    """One intensity transform applied identically to every channel of a window.

    Modes
    -----
    ``"percentile"`` (default)
        Clip to the ``low`` / ``high`` percentiles of the volume (``lo`` / ``hi``) and scale to [0, 1].
    ``"minmax"``
        The same with the volume's minimum and maximum.
    ``"none"``
        Cast to float32 only.
    ``"imagenet"``
        Percentile scaling to [0, 1], then per-channel ImageNet mean/std, RGB cycled for ``K != 3``
        (channel c uses RGB channel ``c % 3``). This *injects a channel asymmetry* (green and blue are
        shifted differently from red), so it exists only as an explicit opt-in for comparisons with
        pipelines that use it.

    ``lo`` and ``hi`` are fitted intensities (see :meth:`fit`). A constant volume (``hi == lo``) maps to
    zeros instead of dividing by zero.
    """

    mode: str = "percentile"
    low: float = 0.5
    high: float = 99.5
    lo: float = 0.0
    hi: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in NORMALIZATION_MODES:
            raise ConfigError(
                f"unknown normalisation {self.mode!r}; valid options: {', '.join(NORMALIZATION_MODES)}"
            )
        if not 0.0 <= self.low < self.high <= 100.0:
            raise ConfigError(
                f"percentiles must satisfy 0 <= low < high <= 100, got low={self.low}, high={self.high}"
            )

    @classmethod
    def fit(
        cls,
        volume: Any,
        low: float = 0.5,
        high: float = 99.5,
        axis: int = 0,
        max_slices: int = 64,
        seed: int = 0,
        mode: str = "percentile",
    ) -> Normalizer:
        """Estimate ``lo`` / ``hi`` from a (possibly lazy, possibly huge) volume in bounded memory.

        At most ``max_slices`` evenly spaced slices along ``axis`` are read, one at a time. If their
        pixels exceed a fixed budget (16 M values), each picked slice contributes seeded random square
        crops of about ``budget / max_slices`` values instead of the whole slice (:func:`sample_planes`), so
        the bytes read are bounded too, not only the memory: on a 100 GB stack of 8k x 8k slices the
        fit reads 16 M voxels, not 64 whole slices (4 GB). On a volume within both limits the result
        equals ``np.percentile`` (or the min and max) of the whole volume; over the budget ``minmax``
        is the min and max of the sample.
        """
        norm = cls(mode=mode, low=float(low), high=float(high))
        if mode == "none":
            return norm
        lo, hi = np.inf, -np.inf
        samples: list[np.ndarray] = []
        for _, values in sample_planes(volume, axis, max_slices, _MAX_FIT_SAMPLES, seed):
            if mode == "minmax":
                if values.size:
                    lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
                continue
            samples.append(values.astype(np.float64, copy=False))
        if mode != "minmax":
            pooled = np.concatenate(samples) if samples else np.zeros(1)
            lo, hi = (float(v) for v in np.percentile(pooled, [norm.low, norm.high]))
        if not np.isfinite(lo) or not np.isfinite(hi):
            lo, hi = 0.0, 0.0
        norm.lo, norm.hi = lo, hi
        return norm

    def scale(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The channel-independent part: clip and scale to [0, 1] (float32); identical for every channel.

        ``x`` is never modified; with ``out`` (a float32 array of x's shape) the result is written there,
        which saves one full-slice temporary on large slices.
        """
        if out is None:
            out = np.array(x, dtype=np.float32)
        else:
            out[...] = x
        if self.mode == "none":
            return out
        span = self.hi - self.lo
        if span <= 0:  # constant volume: nothing to scale, avoid 0 / 0
            out.fill(0.0)
            return out
        out -= np.float32(self.lo)
        out /= np.float32(span)
        return np.clip(out, 0.0, 1.0, out=out)

    def channel_stats(self, window: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Per-channel (mean, std) applied after :meth:`scale`, or None when all channels are equal."""
        if self.mode != "imagenet":
            return None
        mean = np.array([IMAGENET_MEAN[c % 3] for c in range(window)], dtype=np.float32)
        std = np.array([IMAGENET_STD[c % 3] for c in range(window)], dtype=np.float32)
        return mean, std

    def finish_window(self, window: np.ndarray) -> np.ndarray:
        """Apply the per-channel step (``imagenet`` only) to a scaled ``(K, H, W)`` window, in place."""
        stats = self.channel_stats(window.shape[0])
        if stats is not None:
            mean, std = stats
            window -= mean[:, None, None]
            window /= std[:, None, None]
        return window

    def __call__(self, x: np.ndarray, channel: int | None = None) -> np.ndarray:
        """Normalise a window ``(K, H, W)`` or, with ``channel`` given, one 2-D slice destined for it.

        A 2-D slice without ``channel`` is accepted in every mode except ``imagenet``, where the result
        depends on the channel.
        """
        out = self.scale(x)
        if self.mode != "imagenet":
            return out
        if out.ndim == 3 and channel is None:
            return self.finish_window(out)
        if channel is None:
            raise ValueError("imagenet normalisation of a single slice needs the channel it will feed")
        c = channel % 3
        return (out - np.float32(IMAGENET_MEAN[c])) / np.float32(IMAGENET_STD[c])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types for the checkpoint's model card."""
        return {"mode": self.mode, "low": float(self.low), "high": float(self.high),
                "lo": float(self.lo), "hi": float(self.hi)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Normalizer:
        """Inverse of :meth:`to_dict`; unknown keys are an error (a card from a newer version)."""
        unknown = set(data) - {"mode", "low", "high", "lo", "hi"}
        if unknown:
            raise ConfigError(
                f"unknown normaliser fields {sorted(unknown)}; expected mode, low, high, lo, hi"
            )
        return cls(**{k: (v if k == "mode" else float(v)) for k, v in data.items()})


def _read_into(volume: Any, i: int, axis: int, normalizer: Normalizer | None, out: np.ndarray,
               region: tuple[slice, slice] | None = None) -> np.ndarray:
    """Read slice ``i`` (or its ``region``) into the float32 buffer ``out`` (scaled if a normaliser is given)."""
    s = slice_along(volume, i, axis, region)
    if normalizer is not None:
        return normalizer.scale(s, out=out)
    out[...] = s
    return out


def _finish(out: np.ndarray, indices: list[int | None], normalizer: Normalizer | None) -> np.ndarray:
    if normalizer is not None:
        normalizer.finish_window(out)
    # Zero padding means zeros in the model input, after any per-channel step.
    for c, i in enumerate(indices):
        if i is None:
            out[c] = 0.0
    return out


def plane_shape(volume: Any, axis: int = 0) -> tuple[int, int]:
    """The (height, width) of one slice of a 3-D volume along ``axis``."""
    return tuple(s for a, s in enumerate(volume.shape) if a != axis)  # type: ignore[return-value]


def extract_window(
    volume: Any, z: int, window: int = 3, padding: str = "mirror", axis: int = 0,
    normalizer: Normalizer | None = None, region: tuple[slice, slice] | None = None,
) -> np.ndarray:
    """The float32 ``(K, H, W)`` model input for slice ``z`` along ``axis`` (or its ``region``: rows, columns).

    Each distinct slice (region) is read once; without a normaliser the raw intensities are cast to
    float32. Zero-padded channels are zeros in the final input.
    """
    axis = _check_axis(volume, axis)
    indices = window_indices(z, volume.shape[axis], window, padding)
    plane = plane_shape(volume, axis)
    if region is not None:
        plane = tuple(len(range(*r.indices(n))) for r, n in zip(region, plane, strict=True))
    out = np.empty((len(indices), *plane), dtype=np.float32)
    first: dict[int, int] = {}  # slice index -> the channel that already holds it
    for c, i in enumerate(indices):
        if i is None:
            continue
        if i in first:
            out[c] = out[first[i]]
        else:
            first[i] = c
            _read_into(volume, i, axis, normalizer, out[c], region)
    return _finish(out, indices, normalizer)


def iter_windows(
    volume: Any, slices: Iterable[int], window: int = 3, padding: str = "mirror", axis: int = 0,
    normalizer: Normalizer | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(z, extract_window(volume, z, ...))`` for each ``z`` in ``slices``.

    A cache holds the scaled slices of the previous window, so a run over consecutive ``z`` (either
    direction) reads every slice once; memory stays at about ``2 K`` slices.
    """
    axis = _check_axis(volume, axis)
    n = volume.shape[axis]
    shape = plane_shape(volume, axis)
    cache: dict[int, np.ndarray] = {}
    for z in slices:
        indices = window_indices(int(z), n, window, padding)
        needed = {i for i in indices if i is not None}
        cache = {
            i: cache[i] if i in cache else _read_into(volume, i, axis, normalizer, np.empty(shape, np.float32))
            for i in needed
        }
        out = np.empty((len(indices), *shape), dtype=np.float32)
        for c, i in enumerate(indices):
            if i is not None:
                out[c] = cache[i]
        yield int(z), _finish(out, indices, normalizer)
