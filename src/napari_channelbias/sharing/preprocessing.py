"""Our normalisation and output activation as bioimage.io processing steps, and back.

:class:`~napari_channelbias.windowing.Normalizer` maps raw intensities ``x`` to
``clip((x - lo) / (hi - lo), 0, 1)`` with the volume's fitted ``lo`` / ``hi`` (percentile or min/max),
identically for every channel. A consumer must reproduce that from the package alone, so the steps carry
*fixed* values (never statistics recomputed on the consumer's image, which would differ per tile):

1. ``scale_linear`` with ``gain = 1 / (hi - lo)`` and ``offset = -lo / (hi - lo)``;
2. ``clip`` to ``[0, 1]``;
3. ``imagenet`` mode only: ``scale_linear`` along the channel axis with ``1 / std_c`` and
   ``-mean_c / std_c`` (RGB cycled for K != 3), the opt-in per-channel step.

``none`` exports no step; a constant volume (``hi == lo``) maps to zeros, exported as ``gain = 0``. The
inverse, :func:`normalizer_from_steps`, reads such steps (ours or a foreign package's) back into a
Normalizer, and says why when a step has no Normalizer equivalent.

Binary models end in ``sigmoid``, multi-class models in ``softmax`` over the channel axis.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import ChannelBiasError
from ..windowing import IMAGENET_MEAN, IMAGENET_STD, Normalizer
from ._deps import require

# Two floats describe the same affine map when they agree to this relative precision (float32 rounding
# of the values written to YAML is far below it, a different normalisation far above it).
_REL_TOL = 1e-6


def _spec() -> Any:
    return require("bioimageio.spec.model.v0_5")


def normalizer_steps(normalizer: Normalizer, window: int) -> list[Any]:
    """The preprocessing steps (bioimageio.spec v0_5 descriptions) that reproduce ``normalizer``."""
    m = _spec()
    if normalizer.mode == "none":
        return []
    span = float(normalizer.hi) - float(normalizer.lo)
    gain, offset = (1.0 / span, -float(normalizer.lo) / span) if span > 0 else (0.0, 0.0)
    steps: list[Any] = []
    if (gain, offset) != (1.0, 0.0):  # the spec refuses a redundant scaling
        steps.append(m.ScaleLinearDescr(kwargs=m.ScaleLinearKwargs(gain=gain, offset=offset)))
    steps.append(m.ClipDescr(kwargs=m.ClipKwargs(min=0.0, max=1.0)))
    stats = normalizer.channel_stats(window)
    if stats is not None:
        mean, std = (np.asarray(v, dtype=np.float64) for v in stats)
        steps.append(m.ScaleLinearDescr(kwargs=m.ScaleLinearAlongAxisKwargs(
            axis=m.AxisId("channel"), gain=[float(v) for v in 1.0 / std], offset=[float(v) for v in -mean / std],
        )))
    return steps


def postprocessing_steps(classes: int) -> list[Any]:
    """``sigmoid`` for a binary model, ``softmax`` over the channel axis otherwise."""
    m = _spec()
    if classes == 1:
        return [m.SigmoidDescr()]
    return [m.SoftmaxDescr(kwargs=m.SoftmaxKwargs(axis=m.AxisId("channel")))]


def activation_of(steps: Any, classes: int) -> str:
    """``"sigmoid"`` or ``"softmax"`` from a package's postprocessing; ChannelBiasError otherwise."""
    ids = [str(step.id) for step in steps or () if str(step.id) != "ensure_dtype"]
    expected = "sigmoid" if classes == 1 else "softmax"
    if ids == [expected]:
        return expected
    raise ChannelBiasError(
        f"the package's postprocessing is {ids or 'empty'}; napari-channelbias applies {expected} to the "
        f"model's raw output ({classes} class{'es' if classes > 1 else ''}), so the weights must produce "
        "logits followed by exactly that step"
    )


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=_REL_TOL, abs_tol=1e-12)


def _scalar_linear(step: Any) -> tuple[float, float]:
    kwargs = step.kwargs
    if hasattr(kwargs, "axis") and kwargs.axis is not None:
        raise ChannelBiasError("a per-channel scale_linear before clipping has no napari-channelbias equivalent")
    return float(kwargs.gain), float(kwargs.offset)


def _imagenet_matches(step: Any, window: int) -> bool:
    kwargs = step.kwargs
    if getattr(kwargs, "axis", None) is None or str(kwargs.axis) != "channel":
        return False
    gains, offsets = list(np.atleast_1d(kwargs.gain)), list(np.atleast_1d(kwargs.offset))
    if len(gains) != window or len(offsets) != window:
        return False
    return all(
        _close(float(g), 1.0 / IMAGENET_STD[c % 3]) and _close(float(o), -IMAGENET_MEAN[c % 3] / IMAGENET_STD[c % 3])
        for c, (g, o) in enumerate(zip(gains, offsets, strict=True))
    )


def normalizer_from_steps(steps: Any, window: int) -> Normalizer:
    """The Normalizer a package's preprocessing describes (the inverse of :func:`normalizer_steps`).

    Accepted: no step (``none``), or an optional scalar ``scale_linear`` then ``clip`` to ``[0, 1]``
    (``percentile``), then optionally the ImageNet per-channel ``scale_linear`` (``imagenet``);
    ``ensure_dtype`` float32 steps are ignored.

    Raises
    ------
    ChannelBiasError
        Naming the step that has no equivalent (e.g. statistics computed per image at run time).
    """
    ids = [str(s.id) for s in steps or ()]
    rest = [s for s in steps or () if not (str(s.id) == "ensure_dtype" and str(s.kwargs.dtype) == "float32")]
    if not rest:
        return Normalizer(mode="none")
    gain, offset = 1.0, 0.0
    if str(rest[0].id) == "scale_linear":
        gain, offset = _scalar_linear(rest[0])
        rest = rest[1:]
    if not rest or str(rest[0].id) != "clip":
        raise ChannelBiasError(
            f"the package's preprocessing {ids} does not end its intensity scaling with clip to [0, 1]; "
            "napari-channelbias reproduces only fixed scale_linear + clip (its own export) exactly"
        )
    clip = rest[0].kwargs
    if clip.min_percentile is not None or clip.max_percentile is not None:
        raise ChannelBiasError(
            "the package clips at percentiles computed on each input at run time; napari-channelbias needs the "
            "fixed volume statistics its model was trained with (a clip with fixed min and max)"
        )
    if clip.min is None or clip.max is None or not (_close(clip.min, 0.0) and _close(clip.max, 1.0)):
        raise ChannelBiasError(f"the package clips to [{clip.min}, {clip.max}]; napari-channelbias needs [0, 1]")
    rest = rest[1:]
    mode = "percentile"
    if rest and str(rest[0].id) == "scale_linear" and _imagenet_matches(rest[0], window):
        mode, rest = "imagenet", rest[1:]
    if rest:
        raise ChannelBiasError(
            f"the package's preprocessing step {str(rest[0].id)!r} (after clip) has no napari-channelbias "
            "equivalent; only the ImageNet per-channel statistics are supported there"
        )
    if gain == 0.0:  # a constant training volume: every input maps to zeros
        return Normalizer(mode=mode, lo=0.0, hi=0.0)
    lo = -offset / gain
    return Normalizer(mode=mode, lo=lo, hi=lo + 1.0 / gain)
