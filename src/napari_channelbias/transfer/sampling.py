"""A bounded, seeded sample of 2D+ windows from a (possibly lazy, possibly huge) volume.

The robustness score needs a few dozen target windows, not the volume. Each plane (slice along
``axis``) is cut into a grid of non-overlapping ``P x P`` cells; ``n`` distinct cells are drawn without
replacement over the chosen slices (seeded), and only those crops are read: for each window the ``K``
slice crops ``volume[i, y:y+P, x:x+P]`` of its 2D+ neighbourhood (:func:`~napari_channelbias.windowing.window_indices`
decides which slices and the end padding). Reads are therefore at most ``n * K`` crops of ``P x P``
pixels, whatever the volume's size -- a 100 GB zarr is read as ``n * K`` small chunks.

Two windows never overlap in the same plane, so the "different input" of a negative pair is always
another piece of tissue (or another slice).

Intensities: one :class:`~napari_channelbias.windowing.Normalizer` for all channels, fitted on the
sampled crops themselves (percentiles of their pooled pixels) so that fitting does not read whole
slices either; on a volume the crops cover well this matches the volume's percentiles closely.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..windowing import Normalizer, check_padding, n_slices_along, slice_along, window_indices

_NORMALIZATION_MODES = ("percentile", "minmax", "none")


@dataclass(frozen=True)
class WindowPosition:
    """Where one sampled window lies: centre slice ``z`` along the axis and the crop's top-left corner."""

    z: int
    y: int
    x: int


@dataclass
class WindowSample:
    """The sampled windows (normalised to [0, 1], shape ``(n, K, P, P)``), where they lie, the normaliser."""

    windows: np.ndarray
    positions: list[WindowPosition]
    normalizer: Normalizer
    crops_read: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": len(self.positions), "window": int(self.windows.shape[1]), "patch_size": int(self.windows.shape[-1]),
            "positions": [[p.z, p.y, p.x] for p in self.positions], "normalizer": self.normalizer.to_dict(),
            "crops_read": self.crops_read,
        }


def fit_patch_size(shape: tuple[int, ...], axis: int = 0, preferred: int = 128) -> int:
    """``preferred``, or the largest multiple of 32 that fits the planes when they are smaller.

    Raises
    ------
    ConfigError
        If the planes are smaller than 32 pixels (the encoders' coarsest stride).
    """
    plane = [s for a, s in enumerate(shape) if a != axis]
    patch = min(int(preferred), min(plane) // 32 * 32)
    if patch < 32:
        raise ConfigError(f"the image planes ({plane[0]} x {plane[1]}) are smaller than 32 px; the encoders "
                          "need windows of at least 32 x 32")
    return patch


def plan_windows(
    shape: tuple[int, ...], n: int, patch_size: int, slices: range, axis: int = 0, seed: int = 0,
) -> list[WindowPosition]:
    """Draw ``n`` distinct grid cells (seeded) over ``slices``; fewer if fewer cells exist.

    Raises
    ------
    ConfigError
        If fewer than two windows fit (a negative needs another window) or the patch exceeds the plane.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ConfigError(f"the score needs at least 2 windows (a negative is another window), got {n!r}")
    plane = [s for a, s in enumerate(shape) if a != axis]
    if patch_size > min(plane):
        raise ConfigError(
            f"patch size {patch_size} exceeds the {plane[0]} x {plane[1]} plane; choose a patch size <= "
            f"{min(plane) // 32 * 32 or 32} (a multiple of 32)"
        )
    ny, nx = plane[0] // patch_size, plane[1] // patch_size
    cells_per_slice = ny * nx
    total = len(slices) * cells_per_slice
    if total < 2:
        raise ConfigError(f"only {total} window(s) of {patch_size} px fit in the chosen slices; use more slices")
    rng = np.random.default_rng(seed)
    # Without replacement; numpy draws a small sample of a huge population without enumerating it.
    picks = rng.choice(total, size=min(int(n), total), replace=False)
    positions = []
    for cell in picks.tolist():
        s, rest = divmod(int(cell), cells_per_slice)
        cy, cx = divmod(rest, nx)
        positions.append(WindowPosition(z=slices[s], y=cy * patch_size, x=cx * patch_size))
    return positions


def _crop(volume: Any, i: int, pos: WindowPosition, patch: int, axis: int) -> np.ndarray:
    """Read one ``P x P`` crop of slice ``i`` along ``axis``: only that region is indexed."""
    region = (slice(pos.y, pos.y + patch), slice(pos.x, pos.x + patch))
    return slice_along(volume, int(i), axis, region).astype(np.float32, copy=False)


def _fit(crops: list[np.ndarray], normalization: dict[str, Any]) -> Normalizer:
    mode = normalization.get("mode", "percentile")
    if mode not in _NORMALIZATION_MODES:
        raise ConfigError(
            f"normalisation mode {mode!r} is not available for the robustness score; valid: "
            f"{', '.join(_NORMALIZATION_MODES)} (per-RGB 'imagenet' statistics would themselves make the "
            "channels unequal)"
        )
    norm = Normalizer(mode=mode, low=float(normalization.get("low", 0.5)), high=float(normalization.get("high", 99.5)))
    if mode == "none" or not crops:
        return norm
    pooled = np.concatenate([c.ravel() for c in crops])
    if mode == "minmax":
        norm.lo, norm.hi = float(pooled.min()), float(pooled.max())
    else:
        norm.lo, norm.hi = (float(v) for v in np.percentile(pooled, [norm.low, norm.high]))
    return norm


def sample_windows(
    volume: Any, n: int = 64, patch_size: int = 128, window: int = 3, padding: str = "mirror",
    axis: int = 0, slices: range | None = None, seed: int = 0,
    normalization: dict[str, Any] | None = None,
) -> WindowSample:
    """Draw and read ``n`` normalised 2D+ windows of ``patch_size`` pixels.

    Parameters
    ----------
    volume
        A 3-D array-like; only the sampled crops are indexed.
    n, patch_size
        Number of windows and their side (a multiple of 32, for the encoders' strides).
    window, padding, axis
        The 2D+ window K, the padding at the volume ends, the slicing axis (as for training).
    slices
        Centre slices to sample from (default: all).
    seed
        Drives the choice of cells; the same seed gives the same windows.
    normalization
        ``{"mode": "percentile" | "minmax" | "none", "low": 0.5, "high": 99.5}``, fitted on the crops.
    """
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 32 or patch_size % 32:
        raise ConfigError(f"patch size must be a multiple of 32 (>= 32), got {patch_size!r}")
    check_padding(padding)
    n_slices = n_slices_along(volume, axis)
    slices = range(n_slices) if slices is None else slices
    if len(slices) == 0 or slices[0] < 0 or slices[-1] >= n_slices:
        raise ConfigError(f"slices {slices} are outside the volume's {n_slices} slices")
    positions = plan_windows(tuple(volume.shape), n, patch_size, slices, axis, seed)
    distinct: list[np.ndarray] = []  # every crop read once: the normaliser's sample
    raw_windows = np.zeros((len(positions), window, patch_size, patch_size), dtype=np.float32)
    plans: list[list[int | None]] = []
    for w, pos in enumerate(positions):
        indices = window_indices(pos.z, n_slices, window, padding)
        plans.append(indices)
        crops: dict[int, np.ndarray] = {}
        for c, i in enumerate(indices):
            if i is None:
                continue
            if i not in crops:
                crops[i] = _crop(volume, i, pos, patch_size, axis)
                distinct.append(crops[i])
            raw_windows[w, c] = crops[i]
    normalizer = _fit(distinct, normalization or {"mode": "percentile"})
    windows = normalizer.scale(raw_windows, out=raw_windows)
    for w, indices in zip(windows, plans, strict=True):
        for c, i in enumerate(indices):
            if i is None:  # zero padding: zeros in the model input, after scaling
                w[c] = 0.0
    return WindowSample(windows=windows, positions=positions, normalizer=normalizer, crops_read=len(distinct))
