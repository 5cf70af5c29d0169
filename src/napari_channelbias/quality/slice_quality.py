"""Label-free slice quality (the mean SA score mu), per-layer SA scores and input separableness.

For every slice the model runs once (:class:`~.collect.FeatureCollector`, tiled like
``channelbias predict``); from that pass come the mask ``B`` and the hooked feature maps, and then:

- ``mu``: the mean over the units of the last two feature maps before the head of Dice(unit SAM, B)
  (the paper's eq. 12, all units of both layers pooled). Label-free: it compares the features with the
  model's own output. Missing with a reason where ``B`` is empty or full.
- per-layer SA scores of the chosen layers: whole layer and per unit, against ``B`` and, when labels
  are given, against the ground truth (the paper's SA score).
- input separableness: ProtoSeg on the normalised input intensities, per input channel (z-1, z, z+1
  for K = 3) and jointly, against ``B`` and the ground truth.
- the output's own Dice against the ground truth, for the correlation and coverage analyses.

:func:`quality_events` streams a volume: a generator yielding one :class:`SliceDone` per slice whose
``result`` is that slice's :class:`SliceQuality` (small: scores only, plus the SAMs asked for).
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..events import SliceDone, run_to_end
from ..io.checks import select_slices
from ..models.checkpoints import ModelCard
from ..models.inputs import InputSettings
from ..segmentation.labels import binary_target, card_foreground, check_labels, output_labels
from ..windowing import iter_windows, n_slices_along, slice_along
from .collect import FeatureCollector
from .layers import LayerCatalog, LayerSpec, layer_catalog
from .protoseg import dice, layer_scores, mask_problem, sam

INPUT_LAYER = "input"


@dataclass
class SliceQuality:
    """Scores of one slice. ``None`` values are missing; ``reason`` says why mu is."""

    z: int
    mu: float | None
    reason: str | None
    units: int
    foreground: float  # fraction of the slice in B
    dice: float | None = None  # Dice(output, ground truth) when labels are given
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)  # layer -> target -> LayerScore dict
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # "c0".."joint" -> target -> score dict
    sams: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # layer -> SAM (H, W) uint8

    def to_dict(self) -> dict[str, Any]:
        return {"z": self.z, "mu": self.mu, "reason": self.reason, "units": self.units,
                "foreground": self.foreground, "dice": self.dice, "layers": self.layers, "inputs": self.inputs}


@dataclass
class QualityResult:
    """What :func:`quality_events` returns: one :class:`SliceQuality` per slice, in slice order."""

    slices: list[SliceQuality]
    layers: list[str]
    last_two: tuple[str, str]
    seconds: float = 0.0

    def mu(self) -> dict[int, float | None]:
        return {s.z: s.mu for s in self.slices}

    def dice(self) -> dict[int, float | None]:
        return {s.z: s.dice for s in self.slices}

    def to_dict(self) -> dict[str, Any]:
        return {"layers": self.layers, "last_two": list(self.last_two), "seconds": self.seconds,
                "slices": [s.to_dict() for s in self.slices]}


def analyse_slice(
    z: int, window: np.ndarray, probs: np.ndarray, features: dict[str, np.ndarray], catalog: LayerCatalog,
    *, truth: np.ndarray | None = None, layers: Sequence[str] = (), per_unit: bool = True,
    inputs: bool = True, sam_layers: Sequence[str] = (), device: str | torch.device = "cpu",
) -> SliceQuality:
    """All scores of one slice from its window, the model's probabilities and the hooked features.

    ``truth`` is the ground truth label image at slice size (binary models: 0/1), or None.
    """
    classes = 2 if probs.shape[0] == 1 else probs.shape[0]
    b_np = output_labels(probs)
    mask = torch.from_numpy(b_np).to(device)
    target = None if truth is None else torch.from_numpy(np.asarray(truth, np.int64)).to(device)
    problem = mask_problem(mask, classes)
    targets = {"output": mask, "truth": target}
    out = SliceQuality(z, None, problem, 0, float((b_np > 0).mean()))
    if target is not None:
        out.dice = dice(mask, target, classes)

    def feat(name: str) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(features[name])).to(device)

    pooled = []
    for name in catalog.last_two:
        scores = layer_scores(feat(name), mask, {"output": mask}, classes, per_unit=True)["output"]
        if scores.units is not None:
            pooled.append(scores.units)
        out.units += int(features[name].shape[0])
        if name in layers:
            out.layers[name] = {}
    if problem is None and pooled:
        values = np.concatenate(pooled)
        out.mu = float(np.nanmean(values)) if np.isfinite(values).any() else None
        if out.mu is None:
            out.reason = "no unit of the last two layers has a defined Dice"
    for name in layers:
        scores = layer_scores(feat(name), mask, targets, classes, per_unit=per_unit)
        out.layers[name] = {k: v.to_dict() for k, v in scores.items()}
    if inputs:
        x = torch.from_numpy(np.ascontiguousarray(window, np.float32)).to(device)
        for c in range(x.shape[0]):
            scores = layer_scores(x[c:c + 1], mask, targets, classes, per_unit=False)
            out.inputs[f"c{c}"] = {k: v.to_dict() for k, v in scores.items()}
        out.inputs["joint"] = {k: v.to_dict() for k, v in layer_scores(x, mask, targets, classes, False).items()}
    for name in sam_layers:
        if problem is not None:
            continue
        source = torch.from_numpy(np.ascontiguousarray(window, np.float32)).to(device) if name == INPUT_LAYER \
            else feat(name)
        out.sams[name] = sam(source, mask, classes).to(torch.uint8).cpu().numpy()
    return out


def _specs_for(catalog: LayerCatalog, layers: Sequence[str], sam_layers: Sequence[str]) -> list[LayerSpec]:
    wanted = set(catalog.last_two) | set(layers) | {n for n in sam_layers if n != INPUT_LAYER}
    return [s for s in catalog.layers if s.name in wanted]


def quality_events(
    model: torch.nn.Module,
    card_or_settings: ModelCard | dict[str, Any] | InputSettings,
    volume: Any,
    labels: Any = None,
    *,
    slices: str | Iterable[int] | None = None,
    layers: str | Sequence[str] | None = (),
    per_unit: bool = True,
    inputs: bool = True,
    sam_layers: Sequence[str] = (),
    catalog: LayerCatalog | None = None,
    foreground: int | str | None = None,
    tile: int = 512,
    overlap: int = 64,
    batch_size: int | None = None,
    device: str | torch.device = "auto",
    amp: bool = False,
) -> Generator[SliceDone, None, QualityResult]:
    """Score the chosen slices of a volume; yield a :class:`SliceDone` (``task="quality"``) per slice.

    Parameters
    ----------
    model, card_or_settings, volume
        As for :func:`~napari_channelbias.segmentation.prediction.predict_events`.
    labels
        Ground truth of the volume's shape, or None (label-free: mu only). Binary models compare
        :func:`~napari_channelbias.segmentation.labels.binary_target` under ``foreground`` (default:
        the card's training setting, :func:`~napari_channelbias.segmentation.labels.card_foreground`),
        checked as training and evaluation check it.
    layers
        Layers to score per layer: ``()`` none, ``"all"``, ``"last2"``, names (see :mod:`.layers`).
    per_unit, inputs
        Also per-unit scores of ``layers``; also the input separableness.
    sam_layers
        Layers (or ``"input"``) whose SAM each slice's result carries.
    tile, overlap, batch_size, device, amp
        The prediction engine's settings; ``amp`` is off by default so features stay float32.

    Returns
    -------
    QualityResult
    """
    settings = InputSettings.from_any(card_or_settings)
    foreground = card_foreground(card_or_settings, foreground)
    catalog = catalog or layer_catalog(model)
    chosen_layers = [s.name for s in catalog.select(layers)] if layers not in ((), []) else []
    for name in sam_layers:
        if name != INPUT_LAYER:
            catalog.get(name)
    axis = settings.axis
    chosen = select_slices(slices, n_slices_along(volume, axis), axis)
    collector = FeatureCollector(model, _specs_for(catalog, chosen_layers, sam_layers), tile=tile,
                                 overlap=overlap, batch_size=batch_size, device=device, amp=amp)
    n_out = collector.output_channels(settings.window)
    binary = n_out == 1
    if labels is not None:
        check_labels(labels, volume.shape, n_out, foreground)
    start = time.perf_counter()
    results: list[SliceQuality] = []

    def finish(z: int, window: np.ndarray, probs: np.ndarray, feats: dict[str, np.ndarray]) -> SliceDone:
        truth = None
        if labels is not None:
            truth = np.asarray(slice_along(labels, z, axis))
            truth = binary_target(truth, foreground).astype(np.int64) if binary else truth.astype(np.int64)
        q = analyse_slice(z, window, probs, feats, catalog, truth=truth, layers=chosen_layers,
                          per_unit=per_unit, inputs=inputs, sam_layers=sam_layers, device=collector.device)
        results.append(q)
        return SliceDone("quality", z, len(results), len(chosen), result=q)

    windows: dict[int, np.ndarray] = {}
    with collector:
        for z, window in iter_windows(volume, chosen, settings.window, settings.padding, axis,
                                      settings.normalizer):
            windows[z] = window
            for key, probs, feats in collector.push(z, window):
                yield finish(key, windows.pop(key), probs, feats)
        for key, probs, feats in collector.flush():
            yield finish(key, windows.pop(key), probs, feats)
    return QualityResult(results, chosen_layers, catalog.last_two, time.perf_counter() - start)


def models_events(
    runs: Sequence[tuple[str, Generator[SliceDone, None, QualityResult]]],
) -> Generator[SliceDone, None, dict[str, QualityResult]]:
    """Run several models' :func:`quality_events` one after the other (two models side by side).

    Each yielded :class:`SliceDone` counts over all runs (``done`` of the summed ``total``) and carries
    ``(name, SliceQuality)`` as its result; closing this generator closes the run in progress.
    """
    results: dict[str, QualityResult] = {}
    done, totals = 0, [0] * len(runs)
    for i, (name, gen) in enumerate(runs):
        try:
            while True:
                try:
                    event = next(gen)
                except StopIteration as stop:
                    results[name] = stop.value
                    break
                done += 1
                totals[i] = event.total
                total = sum(totals) + sum(totals[i] for _ in runs[i + 1:])  # later runs: assume the same size
                yield SliceDone(f"quality ({name})", event.z, done, total, result=(name, event.result))
        finally:
            gen.close()
    return results


def slice_quality(*args: Any, on_event: Any = None, **kwargs: Any) -> QualityResult:
    """:func:`quality_events` run to the end (same arguments)."""
    return run_to_end(quality_events(*args, **kwargs), on_event)
