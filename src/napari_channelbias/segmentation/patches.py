"""Training patches: random augmented 2D+ windows and their centre-slice labels, read lazily.

Only the windows a training step samples are read, so a volume larger than memory trains as well as a
small one; a small volume is read once into memory because a lazy reader would decode a whole slice for
every patch. A volume read patch by patch was checked up front on a bounded sample only
(:mod:`napari_channelbias.io.checks`), so each patch it reads is checked as it arrives: labels against the
same value rule, float intensities for NaN and Inf.

Augmentations: in-plane flips and 90-degree rotations, and an optional z-flip (channel reversal), which
a 2D+ model should not care about.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import VolumeError
from ..io.checks import check_finite, check_label_values
from ..windowing import Normalizer, n_slices_along, slice_along, window_indices

# Training slices (raw dtype) up to this size are read into memory once; larger volumes are read patch
# by patch from the (lazy) source.
PRELOAD_BYTES = 1 << 30


class PatchSampler:
    """Random augmented training patches ``(B, K, P, P)`` and centre-slice labels ``(B, P, P)``."""

    def __init__(
        self, image: Any, labels: Any, centres: list[int], window: int, padding: str, axis: int,
        normalizer: Normalizer, patch_size: int, z_flip: bool, rng: np.random.Generator,
        classes: int = 1, foreground: int | str | None = None,
    ) -> None:
        self.image, self.labels, self.centres = image, labels, centres
        self.classes, self.foreground = classes, foreground  # the label rule each lazily read patch obeys
        self.axis, self.normalizer, self.z_flip, self.rng = axis, normalizer, z_flip, rng
        n = n_slices_along(image, axis)
        self.indices = {z: window_indices(z, n, window, padding) for z in centres}
        plane = [s for a, s in enumerate(image.shape) if a != axis]
        self.plane = (int(plane[0]), int(plane[1]))
        self.patch = (min(patch_size, self.plane[0]), min(patch_size, self.plane[1]))
        needed = sorted({i for idx in self.indices.values() for i in idx if i is not None})
        nbytes = len(needed) * self.plane[0] * self.plane[1] * np.dtype(image.dtype).itemsize
        nbytes += len(centres) * self.plane[0] * self.plane[1] * np.dtype(labels.dtype).itemsize
        # Small volumes: read each needed slice once (a lazy reader would decode a whole slice per patch).
        self.cache: dict[str, dict[int, np.ndarray]] | None = None
        if nbytes <= PRELOAD_BYTES:
            self.cache = {"image": {i: slice_along(image, i, axis) for i in needed},
                          "labels": {z: slice_along(labels, z, axis) for z in centres}}

    def _region(self, which: str, i: int, ys: slice, xs: slice) -> np.ndarray:
        if self.cache is not None:
            return self.cache[which][i][ys, xs]
        volume = self.image if which == "image" else self.labels
        region = slice_along(volume, i, self.axis, (ys, xs))
        where = f"slice {i}, rows {ys.start}:{ys.stop}, columns {xs.start}:{xs.stop}"
        if which == "labels":
            try:
                check_label_values(np.unique(region), self.classes, self.foreground, complete=False)
            except VolumeError as exc:  # say where; the value rule says what and the fix
                raise type(exc)(f"{exc} (in the labels at {where})") from None
        elif region.dtype.kind == "f":
            check_finite(region, f"the image at {where}")
        return region

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """One augmented window ``(K, P, P)`` float32 and its label ``(P, P)``."""
        rng = self.rng
        z = self.centres[int(rng.integers(len(self.centres)))]
        y0 = int(rng.integers(self.plane[0] - self.patch[0] + 1))
        x0 = int(rng.integers(self.plane[1] - self.patch[1] + 1))
        ys, xs = slice(y0, y0 + self.patch[0]), slice(x0, x0 + self.patch[1])
        indices = self.indices[z]
        win = np.zeros((len(indices), *self.patch), np.float32)
        for c, i in enumerate(indices):
            if i is not None:
                win[c] = self.normalizer.scale(self._region("image", i, ys, xs))
        self.normalizer.finish_window(win)
        for c, i in enumerate(indices):
            if i is None:  # zero padding is zero in the model input, after any per-channel step
                win[c] = 0.0
        label = self._region("labels", z, ys, xs)
        if self.z_flip and rng.random() < 0.5:
            win = win[::-1]
        k = int(rng.integers(4)) if self.patch[0] == self.patch[1] else 2 * int(rng.integers(2))
        if k:
            win, label = np.rot90(win, k, axes=(1, 2)), np.rot90(label, k)
        if rng.random() < 0.5:
            win, label = win[:, :, ::-1], label[:, ::-1]
        return np.ascontiguousarray(win), np.ascontiguousarray(label)

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        pairs = [self.sample() for _ in range(size)]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
