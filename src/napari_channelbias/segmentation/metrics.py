"""Segmentation metrics per slice, and their mean and standard error over slices.

Binary masks (prediction and ground truth, boolean or 0/1 labels): from the confusion counts TP, FP, FN,
TN of the foreground,

- Dice = 2TP / (2TP + FP + FN), IoU = TP / (TP + FP + FN),
- precision = TP / (TP + FP), recall = TP / (TP + FN), accuracy = (TP + TN) / N.

Empty cases: a ratio whose denominator is 0 is 1 when both masks are empty (nothing to find and
nothing predicted: a perfect slice) and 0 otherwise (e.g. precision when nothing was predicted but the
truth has foreground; recall when the truth is empty but something was predicted). Accuracy is always
defined.

Multi-class label images (class 0 = background): Dice, IoU, precision and recall are computed per
foreground class, one class against the rest, and averaged over the foreground classes present in the
prediction or the truth of that slice (classes absent from both would only add the both-empty value 1).
A slice where no foreground class occurs at all gets 1 for all of them. Accuracy is the fraction of
pixels whose class is right.

Over slices, :func:`summarise` reports the mean and the standard error std / sqrt(n) (ddof = 1) of each
metric, as the paper's tables do; the standard error of a single slice is nan.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError, VolumeError

METRIC_NAMES = ("dice", "iou", "precision", "recall", "accuracy")


def _ratio(num: int, den: int, both_empty: bool) -> float:
    if den == 0:
        return 1.0 if both_empty else 0.0
    return num / den


def binary_metrics(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    """Dice, IoU, precision, recall and accuracy from the foreground confusion counts."""
    both_empty = tp + fp + fn == 0
    total = tp + fp + fn + tn
    return {
        "dice": _ratio(2 * tp, 2 * tp + fp + fn, both_empty),
        "iou": _ratio(tp, tp + fp + fn, both_empty),
        "precision": _ratio(tp, tp + fp, both_empty),
        "recall": _ratio(tp, tp + fn, both_empty),
        "accuracy": (tp + tn) / total if total else 1.0,
    }


def _as_labels(name: str, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype == bool:
        return x.astype(np.uint8)
    if not np.issubdtype(x.dtype, np.integer):
        raise VolumeError(
            f"{name} must be a boolean mask or an integer label image, got dtype {x.dtype}; "
            "threshold probabilities (e.g. p > 0.5) or take the argmax first"
        )
    if x.size and x.min() < 0:
        raise VolumeError(f"{name} holds negative labels (min {x.min()}); labels must be 0, 1, 2, ...")
    return x


def confusion_matrix(pred: np.ndarray, truth: np.ndarray, num_classes: int) -> np.ndarray:
    """``M[t, p]``: number of pixels of true class ``t`` predicted as class ``p`` (int64, C x C)."""
    p = _as_labels("prediction", pred).ravel().astype(np.int64)
    t = _as_labels("ground truth", truth).ravel().astype(np.int64)
    if p.size and max(int(p.max()), int(t.max())) >= num_classes:
        raise VolumeError(
            f"labels go up to {max(int(p.max()), int(t.max()))} but num_classes is {num_classes}; "
            "pass the model's number of classes"
        )
    return np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)


def slice_metrics(pred: np.ndarray, truth: np.ndarray, num_classes: int | None = None) -> dict[str, float]:
    """Dice, IoU, precision, recall and accuracy of one slice.

    Parameters
    ----------
    pred, truth
        Prediction and ground truth of the same shape, usually ``(H, W)``: boolean masks, or integer
        label images with 0 = background.
    num_classes
        Number of classes including background. ``None`` infers it: 2 (binary) for boolean inputs or
        labels up to 1, else the largest label + 1.
    """
    pred, truth = _as_labels("prediction", pred), _as_labels("ground truth", truth)
    if pred.shape != truth.shape:
        raise VolumeError(f"prediction shape {pred.shape} differs from ground-truth shape {truth.shape}")
    if pred.size == 0:
        raise VolumeError("prediction and ground truth are empty arrays")
    if num_classes is None:
        num_classes = max(2, int(pred.max()) + 1, int(truth.max()) + 1)
    elif num_classes < 2:
        raise ConfigError(f"num_classes must be at least 2 (background + one class), got {num_classes}")
    m = confusion_matrix(pred, truth, num_classes)
    total = int(m.sum())
    per_class = []
    for c in range(1, num_classes):
        tp = int(m[c, c])
        fp, fn = int(m[:, c].sum()) - tp, int(m[c, :].sum()) - tp
        if num_classes == 2 or tp + fp + fn > 0:
            per_class.append(binary_metrics(tp, fp, fn, total - tp - fp - fn))
    if not per_class:  # multi-class slice with no foreground in either image
        per_class.append(binary_metrics(0, 0, 0, total))
    out = {name: float(np.mean([row[name] for row in per_class])) for name in METRIC_NAMES}
    out["accuracy"] = float(np.trace(m)) / total
    return out


def summarise(per_slice: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean, standard error (std / sqrt(n), ddof = 1; nan for n = 1) and n of each metric over slices."""
    if not per_slice:
        raise ValueError("summarise needs at least one slice's metrics")
    names = list(per_slice[0])
    out = {}
    for name in names:
        try:
            values = np.array([row[name] for row in per_slice], dtype=np.float64)
        except KeyError:
            raise ValueError(f"metric {name!r} is missing from some slices") from None
        se = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else math.nan
        out[name] = {"mean": float(values.mean()), "se": se, "n": int(values.size)}
    return out


def format_table(summary: dict[str, dict[str, float]], digits: int = 4) -> str:
    """A plain-text table of :func:`summarise`'s output: metric, mean, standard error, n."""
    width = max([len("metric"), *(len(name) for name in summary)])
    lines = [f"{'metric':<{width}}  {'mean':>{digits + 4}}  {'se':>{digits + 4}}  {'n':>5}"]
    for name, s in summary.items():
        se = "n/a" if math.isnan(s["se"]) else f"{s['se']:.{digits}f}"
        mean = f"{s['mean']:.{digits}f}"
        lines.append(f"{name:<{width}}  {mean:>{digits + 4}}  {se:>{digits + 4}}  {s['n']:>5d}")
    return "\n".join(lines)
