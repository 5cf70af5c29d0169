"""The augmentations of the robustness score: brightness and contrast jitter and in-plane flips.

Our reading of the thesis (ch. 4.2, its Algorithm 2.3 "ColorJitter"): the views ``q~``, ``k+`` and ``k-``
are made by jittering brightness, contrast, hue and saturation. For a 2D+ window only brightness and
contrast carry over, and each is applied *identically to all K channels*:

- brightness: ``x' = b * x`` with ``b ~ U[1 - BRIGHTNESS, 1 + BRIGHTNESS]``;
- contrast: ``x' = m + c * (x - m)`` with ``c ~ U[1 - CONTRAST, 1 + CONTRAST]`` and ``m`` the mean of
  the whole window (one scalar over all K channels, so no channel is treated differently);
- brightness first, then contrast, then clipping to [0, 1] (the windows are normalised to [0, 1]);
- in-plane flips: left-right and up-down, each with probability ``FLIP_P``, the same for every channel.

The jitter ranges (0.4) are torchvision's customary ``ColorJitter(brightness=0.4, contrast=0.4)``; the
text we have names the algorithm but not its numbers, so these are our choice.

Why not hue and saturation: a window's channels are neighbouring z-slices, not colours. Hue rotates a
pixel in RGB colour space and saturation blends each channel with a luminance ``0.299 R + 0.587 G +
0.114 B``; on a 2D+ window both would mix slices with unequal weights -- injecting exactly the channel
asymmetry this package measures -- and neither corresponds to anything the microscope varies.

Why no z-flip (reversing the channel order), although it is a true symmetry of the data: an untrained
model under a uniform, average or mirror init is *exactly* invariant to it, so it would reward those
inits by construction rather than measure how their features hold up on the user's images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: Half-width of the brightness factor's range: ``b ~ U[1 - 0.4, 1 + 0.4]``.
BRIGHTNESS = 0.4
#: Half-width of the contrast factor's range: ``c ~ U[1 - 0.4, 1 + 0.4]``.
CONTRAST = 0.4
#: Probability of each in-plane flip (left-right, up-down).
FLIP_P = 0.5


@dataclass(frozen=True)
class Jitter:
    """One drawn augmentation: the same factors and flips for every channel of a window."""

    brightness: float = 1.0
    contrast: float = 1.0
    flip_lr: bool = False
    flip_ud: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def augmentation_settings() -> dict[str, Any]:
    """The fixed parameters of the augmentation, for reports and model cards."""
    return {
        "brightness": [1 - BRIGHTNESS, 1 + BRIGHTNESS],
        "contrast": [1 - CONTRAST, 1 + CONTRAST],
        "contrast_mean": "one mean over all K channels of the window",
        "order": "brightness, contrast, clip to [0, 1]",
        "flip_lr_p": FLIP_P,
        "flip_ud_p": FLIP_P,
        "hue_saturation": "not applied (channels are z-slices, not colours)",
        "z_flip": "not applied (uniform/average/mirror inits are exactly invariant to it)",
    }


def draw_jitter(rng: np.random.Generator) -> Jitter:
    """Draw one augmentation; four draws from ``rng`` in a fixed order (deterministic per seed)."""
    b = float(rng.uniform(1 - BRIGHTNESS, 1 + BRIGHTNESS))
    c = float(rng.uniform(1 - CONTRAST, 1 + CONTRAST))
    lr, ud = (bool(v < FLIP_P) for v in rng.random(2))
    return Jitter(brightness=b, contrast=c, flip_lr=lr, flip_ud=ud)


def apply_jitter(window: np.ndarray, jitter: Jitter) -> np.ndarray:
    """Augment a normalised ``(K, H, W)`` window; returns a new float32 array, the input is kept.

    Every operation is the same for all channels, so permuting the channels of the input permutes those
    of the output identically, and a window whose channels are equal stays so (tests check both exactly).
    """
    if window.ndim != 3:
        raise ValueError(f"expected a (K, H, W) window, got shape {window.shape}")
    out = np.asarray(window, dtype=np.float32) * np.float32(jitter.brightness)
    # The window mean from per-channel means summed in sorted order: the same bits whatever the channel
    # order, so channel permutation commutes with the augmentation exactly, not just up to rounding.
    channel_means = np.sort(out.mean(axis=(1, 2), dtype=np.float64))
    mean = np.float32(channel_means.sum() / len(channel_means))
    out = mean + np.float32(jitter.contrast) * (out - mean)
    np.clip(out, 0.0, 1.0, out=out)
    if jitter.flip_lr:
        out = out[:, :, ::-1]
    if jitter.flip_ud:
        out = out[:, ::-1, :]
    return np.ascontiguousarray(out, dtype=np.float32)
