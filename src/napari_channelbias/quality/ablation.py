"""Channel ablation: is the attribution faithful? Remove one input channel and see what the model loses.

Saliency says how much each input channel (slice z - r + c of the window) matters. Ablation measures
it directly: replace channel ``c`` of the normalised window by

- ``mean``: its own mean over the slice (the information of that neighbour is gone, the intensity
  level is kept), or
- ``centre``: a copy of the centre channel (the neighbour is replaced by the slice itself; for the
  centre channel this changes nothing and is reported missing),

predict again with the ordinary tiled engine, and record per slice and channel

- ``dice_drop``: Dice(clean output, truth) - Dice(ablated output, truth), when labels are given;
- ``prob_drop``: the relative drop of the summed foreground probability,
  (sum p_clean - sum p_ablated) / sum p_clean;
- ``change``: 1 - Dice(ablated mask, clean mask), label-free.

If the asymmetry that saliency shows is real, an ImageNet-initialised model loses more when the channel
it attends to is removed; a Uniform-Green model's losses are equal for mirror channels.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..events import SliceDone, run_to_end
from ..io.checks import select_slices
from ..models.checkpoints import ModelCard
from ..models.inputs import InputSettings
from ..segmentation.labels import binary_target, card_foreground, check_labels, foreground_probability, output_labels
from ..segmentation.prediction import TiledPredictor
from ..windowing import iter_windows, n_slices_along, slice_along
from .protoseg import dice

MODES = ("mean", "centre")
MEASURES = ("dice_drop", "prob_drop", "change")


def ablate(window: np.ndarray, channel: int, mode: str) -> np.ndarray:
    """A copy of ``window`` ``(K, H, W)`` with ``channel`` replaced as ``mode`` says."""
    if mode not in MODES:
        raise ConfigError(f"unknown ablation mode {mode!r}; valid: {', '.join(MODES)}")
    out = np.array(window, dtype=np.float32, copy=True)
    if mode == "mean":
        out[channel] = out[channel].mean(dtype=np.float64)
    else:
        out[channel] = window[window.shape[0] // 2]
    return out


@dataclass
class AblationResult:
    """Per-slice rows and per-(mode, channel) means and standard errors of each measure."""

    window: int
    rows: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, dict[int, dict[str, dict[str, float]]]]:
        """``{mode: {channel: {measure: {"mean", "se", "n"}}}}``, NaN where a measure never applied."""
        out: dict[str, dict[int, dict[str, dict[str, float]]]] = {}
        for mode in MODES:
            out[mode] = {}
            for c in range(self.window):
                out[mode][c] = {}
                for measure in MEASURES:
                    vals = np.array([r[measure] for r in self.rows if r["mode"] == mode and r["channel"] == c
                                     and r[measure] is not None and math.isfinite(r[measure])], np.float64)
                    se = float(vals.std(ddof=1) / math.sqrt(vals.size)) if vals.size > 1 else float("nan")
                    mean = float(vals.mean()) if vals.size else float("nan")
                    out[mode][c][measure] = {"mean": mean, "se": se, "n": int(vals.size)}
        return out

    def shares(self, mode: str = "mean", measure: str = "prob_drop") -> list[float] | None:
        """Each channel's share of the summed mean drop (comparable with saliency channel shares).

        Negative drops (the output gained) count as 0; ``None`` when no channel lost anything.
        """
        summary = self.summary()[mode]
        drops = [max(0.0, summary[c][measure]["mean"]) if math.isfinite(summary[c][measure]["mean"]) else 0.0
                 for c in range(self.window)]
        total = sum(drops)
        return [d / total for d in drops] if total > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {"window": self.window, "summary": self.summary(), "shares_mean_prob_drop": self.shares(),
                "shares_mean_dice_drop": self.shares(measure="dice_drop"), "rows": self.rows}


def ablation_events(
    model: torch.nn.Module,
    card_or_settings: ModelCard | dict[str, Any] | InputSettings,
    volume: Any,
    labels: Any = None,
    *,
    slices: str | Iterable[int] | None = None,
    modes: Iterable[str] = MODES,
    foreground: int | str | None = None,
    tile: int = 512,
    overlap: int = 64,
    batch_size: int | None = None,
    device: str | torch.device = "auto",
) -> Generator[SliceDone, None, AblationResult]:
    """Ablate each input channel of each chosen slice; yield :class:`SliceDone` (``task="ablation"``).

    Each slice's event carries that slice's rows (``SliceDone.result``), so a caller can show or keep
    every finished slice at once; the returned :class:`AblationResult` holds all of them.

    Each slice costs ``1 + K * len(modes)`` predictions (less the centre copy of the centre channel),
    run through one :class:`TiledPredictor` in shared batches.
    """
    modes = tuple(modes)
    for mode in modes:
        if mode not in MODES:
            raise ConfigError(f"unknown ablation mode {mode!r}; valid: {', '.join(MODES)}")
    settings = InputSettings.from_any(card_or_settings)
    foreground = card_foreground(card_or_settings, foreground)
    chosen = select_slices(slices, n_slices_along(volume, settings.axis), settings.axis)
    predictor = TiledPredictor(model, tile=tile, overlap=overlap, batch_size=batch_size, device=device, amp=False)
    classes = predictor.output_channels(settings.window)
    if labels is not None:
        check_labels(labels, volume.shape, classes, foreground)
    k, r = settings.window, settings.window // 2
    result = AblationResult(k)
    variants = [(m, c) for m in modes for c in range(k) if not (m == "centre" and c == r)]
    pending: dict[int, dict[Any, np.ndarray]] = {}

    def slice_rows(z: int, outputs: dict[Any, np.ndarray]) -> list[dict[str, Any]]:
        truth = None
        if labels is not None:
            t = np.asarray(slice_along(labels, z, settings.axis))
            truth = binary_target(t, foreground).astype(np.int64) if classes == 1 else t.astype(np.int64)
        n_cls = 2 if classes == 1 else classes
        clean, clean_sum = output_labels(outputs["clean"]), foreground_probability(outputs["clean"])
        clean_dice = None if truth is None else dice(torch.from_numpy(clean), torch.from_numpy(truth), n_cls)
        rows = []
        for mode in modes:
            for c in range(k):
                row: dict[str, Any] = {"z": z, "mode": mode, "channel": c, "offset": c - r}
                if (mode, c) not in outputs:
                    row.update(dice_drop=None, prob_drop=None, change=None,
                               reason="the centre channel replaced by itself is unchanged")
                    rows.append(row)
                    continue
                labels_c, sum_c = output_labels(outputs[(mode, c)]), foreground_probability(outputs[(mode, c)])
                agree = dice(torch.from_numpy(labels_c), torch.from_numpy(clean), n_cls)
                ablated_dice = None if truth is None else dice(torch.from_numpy(labels_c), torch.from_numpy(truth),
                                                               n_cls)
                row["dice_drop"] = None if clean_dice is None or ablated_dice is None else clean_dice - ablated_dice
                row["prob_drop"] = (clean_sum - sum_c) / clean_sum if clean_sum > 0 else None
                row["change"] = None if agree is None else 1.0 - agree
                rows.append(row)
        return rows

    def receive(done: list[tuple[Any, np.ndarray]]) -> list[SliceDone]:
        events = []
        for (z, variant), probs in done:
            pending[z][variant] = probs
            if len(pending[z]) == len(variants) + 1:
                rows = slice_rows(z, pending.pop(z))
                result.rows.extend(rows)
                events.append(SliceDone("ablation", z, len({row["z"] for row in result.rows}), len(chosen),
                                        result=rows))
        return events

    for z, window in iter_windows(volume, chosen, k, settings.padding, settings.axis, settings.normalizer):
        pending[z] = {}
        yield from receive(predictor.push((z, "clean"), window))
        for mode, c in variants:
            yield from receive(predictor.push((z, (mode, c)), ablate(window, c, mode)))
    yield from receive(predictor.flush())
    return result


def channel_ablation(*args: Any, on_event: Any = None, **kwargs: Any) -> AblationResult:
    """:func:`ablation_events` run to the end (same arguments)."""
    return run_to_end(ablation_events(*args, **kwargs), on_event)
