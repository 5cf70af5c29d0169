"""ProtoSeg: parameter-free prototype segmentation of a feature map (our reading of the paper, sec. 3).

For a feature map ``f`` of shape ``(C, h, w)`` and the model's own mask ``B`` (``p_t > 0.5``, or the
argmax of a multi-class model) at slice size ``(H, W)``:

1. ``B`` is brought to ``(h, w)`` as soft class weights by area averaging (the paper's ``b`` in
   [0, 1]): a feature pixel covering 3 of 4 foreground pixels weighs 0.75 in the foreground mean.
2. One prototype per class is the weighted mean of ``f``: ``c_t = sum f b / sum b`` and
   ``c_b = sum f (1 - b) / sum (1 - b)`` (several classes: one prototype each).
3. Each position goes to the nearer prototype (Euclidean); the probability map is the softmax over
   classes of the negative squared distances (Algorithm 1 of the paper).
4. The segmentation-ability map (SAM) is that probability map brought back to ``(H, W)`` (bilinear)
   and its argmax (binary: ``p_t > 0.5``; a tie goes to the background).
5. SA score = Dice(SAM, target): the ground truth for the paper's SA score, ``B`` itself for the
   label-free mean SA score mu.

*Per unit*, each channel of ``f`` is a 1-D feature map of its own with its own prototypes.

Undefined cases are *missing with a reason*, never a number: ``B`` empty or full (a single class), so
that one prototype does not exist; and a Dice whose prediction and target are both empty. Everything
is written in torch so the same functions are differentiable (the online ProtoSeg training loss).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# Per-unit SAMs are built at slice size in chunks of units; this bounds one chunk to 2**24 values
# (64 MB of float32) whatever the layer's width or the slice's size.
_CHUNK_VALUES = 1 << 24


def mask_problem(mask: torch.Tensor | np.ndarray, classes: int = 2) -> str | None:
    """Why ProtoSeg is undefined for ``mask`` (``None`` when it is defined).

    A binary mask (``classes == 2``) must hold both foreground and background; a multi-class label
    image at least two classes.
    """
    m = torch.as_tensor(np.asarray(mask) if isinstance(mask, np.ndarray) else mask)
    if m.numel() == 0:
        return "the slice is empty"
    if classes == 2:
        fg = int((m > 0).sum())
        if fg == 0:
            return "B is empty: the model predicts no foreground on this slice"
        if fg == m.numel():
            return "B is full: the model predicts foreground everywhere on this slice"
        return None
    present = torch.unique(m)
    if present.numel() < 2:
        return f"B holds one class only ({int(present[0])}): no second prototype"
    return None


def class_weights(mask: torch.Tensor, classes: int, size: tuple[int, int]) -> torch.Tensor:
    """Soft one-hot weights ``(K, h, w)`` of a label image ``(H, W)`` brought to ``size`` by area averaging.

    Binary masks (``classes == 2``) count every value > 0 as foreground.
    """
    m = mask.long()
    if classes == 2:
        m = (m > 0).long()
    onehot = F.one_hot(m, classes).permute(2, 0, 1).float()[None]
    if tuple(onehot.shape[-2:]) == tuple(size):
        return onehot[0]
    return F.adaptive_avg_pool2d(onehot, size)[0]


def prototypes(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted class means ``(K, C)`` of ``features`` ``(C, h, w)`` under ``weights`` ``(K, h, w)``.

    A class with zero total weight gets a NaN prototype (the caller reports it missing).
    """
    total = weights.sum(dim=(1, 2))
    sums = torch.einsum("khw,chw->kc", weights, features)
    return sums / total[:, None]


def probability_map(features: torch.Tensor, protos: torch.Tensor) -> torch.Tensor:
    """Softmax over classes of the negative squared Euclidean distances ``(K, h, w)`` (whole layer)."""
    d2 = ((features[None] - protos[:, :, None, None]) ** 2).sum(dim=1)
    return torch.softmax(-d2, dim=0)


def unit_probability_maps(features: torch.Tensor, protos: torch.Tensor) -> torch.Tensor:
    """Per-unit probability maps ``(K, C, h, w)``: each channel is a 1-D feature with its own prototypes."""
    d2 = (features[None] - protos[:, :, None, None]) ** 2
    return torch.softmax(-d2, dim=0)


def to_slice(probs: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Probability maps ``(K, ..., h, w)`` brought to slice size ``(H, W)`` (bilinear; identity if equal)."""
    if tuple(probs.shape[-2:]) == tuple(size):
        return probs
    lead = probs.shape[:-2]
    flat = probs.reshape(1, -1, *probs.shape[-2:])
    up = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
    return up.reshape(*lead, *size)


def labels_at(probs: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Class indices at slice size from probability maps ``(K, ..., h, w)``.

    Binary maps use ``p_t > 0.5`` on the foreground map alone (a tie goes to the background, as the
    argmax would), which halves the upsampling and avoids a slow reduction over a 2-long axis.
    """
    if probs.shape[0] == 2:
        return (to_slice(probs[1], size) > 0.5).long()
    return to_slice(probs, size).argmax(dim=0)


def sam(features: torch.Tensor, mask: torch.Tensor, classes: int = 2) -> torch.Tensor:
    """The whole-layer SAM ``(H, W)`` (class indices) of ``features`` ``(C, h, w)`` under ``mask`` ``(H, W)``.

    Raises
    ------
    ValueError
        When ProtoSeg is undefined for ``mask`` (see :func:`mask_problem`).
    """
    problem = mask_problem(mask, classes)
    if problem is not None:
        raise ValueError(problem)
    return labels_at(feature_probabilities(features, mask, classes), tuple(mask.shape[-2:]))


def slice_probabilities(features: torch.Tensor, mask: torch.Tensor, classes: int = 2) -> torch.Tensor:
    """Whole-layer probability maps ``(K, H, W)`` at slice size (classes absent from ``mask`` get 0)."""
    return to_slice(feature_probabilities(features, mask, classes), tuple(mask.shape[-2:]))


def feature_probabilities(features: torch.Tensor, mask: torch.Tensor, classes: int = 2) -> torch.Tensor:
    """Whole-layer probability maps ``(K, h, w)`` at the feature map's resolution."""
    weights = class_weights(mask, classes, tuple(features.shape[-2:]))
    protos = prototypes(features.float(), weights)
    present = torch.isfinite(protos).all(dim=1)
    probs = torch.zeros((classes, *features.shape[-2:]), dtype=features.dtype, device=features.device)
    probs[present] = probability_map(features.float(), protos[present])
    return probs


def dice(pred: torch.Tensor, target: torch.Tensor, classes: int = 2) -> float | None:
    """Dice of two label images; ``None`` where undefined (no foreground in either).

    Several classes: the mean over the foreground classes present in either image, as
    :mod:`napari_channelbias.segmentation.metrics` averages.
    """
    values = []
    for k in range(1, classes):
        p, t = pred == k, target == k
        den = int(p.sum()) + int(t.sum())
        if den:
            values.append(2.0 * int((p & t).sum()) / den)
    return float(np.mean(values)) if values else None


def unit_dice(features: torch.Tensor, mask: torch.Tensor, targets: list[torch.Tensor],
              classes: int = 2) -> list[np.ndarray]:
    """Per-unit SA scores ``(C,)`` against each target: Dice(unit SAM, target), NaN where undefined.

    The units' SAMs are built in chunks so memory stays bounded for wide layers on large slices.
    """
    size = tuple(mask.shape[-2:])
    c, h, w = features.shape
    weights = class_weights(mask, classes, (h, w))
    f = features.float()
    protos = (torch.einsum("khw,chw->kc", weights, f) / weights.sum(dim=(1, 2))[:, None])
    present = torch.isfinite(protos).all(dim=1)
    idx = torch.nonzero(present).flatten()
    out = [np.full(c, np.nan) for _ in targets]
    chunk = max(1, _CHUNK_VALUES // (classes * size[0] * size[1]))
    for start in range(0, c, chunk):
        stop = min(c, start + chunk)
        probs = unit_probability_maps(f[start:stop], protos[idx][:, start:stop])
        labels = idx[labels_at(probs, size)]  # (units, H, W) class indices
        for j, target in enumerate(targets):
            out[j][start:stop] = _batched_dice(labels, target, classes)
    return out


def _batched_dice(labels: torch.Tensor, target: torch.Tensor, classes: int) -> np.ndarray:
    """Dice of each of ``labels`` ``(U, H, W)`` against ``target`` ``(H, W)``; NaN where undefined."""
    sums = torch.zeros(labels.shape[0], dtype=torch.float64)
    counts = torch.zeros(labels.shape[0], dtype=torch.float64)
    for k in range(1, classes):
        p, t = labels == k, (target == k)[None]
        den = p.sum(dim=(1, 2)).double() + t.sum().double()
        num = 2.0 * (p & t).sum(dim=(1, 2)).double()
        ok = den > 0
        sums += torch.where(ok, num / den.clamp(min=1), torch.zeros_like(den))
        counts += ok.double()
    values = torch.where(counts > 0, sums / counts.clamp(min=1), torch.full_like(sums, float("nan")))
    return values.numpy()


@dataclass
class LayerScore:
    """SA scores of one layer against one target.

    ``whole`` is Dice(whole-layer SAM, target), ``units`` the per-unit Dice ``(C,)`` (NaN where a unit's
    Dice is undefined); ``reason`` says why a value is missing (``whole is None``).
    """

    whole: float | None
    units: np.ndarray | None = None
    reason: str | None = None

    @property
    def unit_mean(self) -> float | None:
        if self.units is None or not np.isfinite(self.units).any():
            return None
        return float(np.nanmean(self.units))

    def to_dict(self) -> dict[str, object]:
        return {"whole": self.whole, "unit_mean": self.unit_mean,
                "unit_max": None if self.unit_mean is None else float(np.nanmax(self.units)),
                "units": None if self.units is None else len(self.units), "reason": self.reason}


def layer_scores(features: torch.Tensor, mask: torch.Tensor, targets: dict[str, torch.Tensor | None],
                 classes: int = 2, per_unit: bool = True) -> dict[str, LayerScore]:
    """SA scores of one feature map ``(C, h, w)`` under ``mask`` against each named target ``(H, W)``.

    A target given as ``None`` (no labels) is skipped. When ProtoSeg is undefined for ``mask`` every
    score is missing with that reason.
    """
    named = {k: v for k, v in targets.items() if v is not None}
    problem = mask_problem(mask, classes)
    if problem is not None:
        return {k: LayerScore(None, None, problem) for k in named}
    labels = labels_at(feature_probabilities(features, mask, classes), tuple(mask.shape[-2:]))
    units = unit_dice(features, mask, list(named.values()), classes) if per_unit else [None] * len(named)
    out = {}
    for (name, target), u in zip(named.items(), units, strict=True):
        value = dice(labels, target, classes)
        reason = None if value is not None else "the SAM and the target are both empty"
        out[name] = LayerScore(value, u, reason)
    return out
