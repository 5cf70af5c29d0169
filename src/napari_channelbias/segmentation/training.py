"""Fine-tuning a 2D+ model on a labelled volume, as a generator of progress events.

Training samples random square patches of 2D+ windows from the *training slices*, augments them, and
optimises BCE-with-logits (one output channel, target :func:`.labels.binary_target`) or cross-entropy
(several classes) with Adam. Every ``val_every`` steps and at the end, the validation slices are
predicted with the same tiled engine as :mod:`prediction` and scored (Dice, IoU, precision, recall,
accuracy; mean and standard error over slices): whole, unless the block exceeds a pixel budget (a huge
stack), when :mod:`.validation` picks evenly spaced slices and a centred region. The best model by
validation Dice is saved to ``out``, the final state to ``<out stem>.last.pt``, both atomically with a
full model card.

Validation without leakage
--------------------------
Validation slices are one contiguous block ``A:B`` (by default the last ``val_fraction`` of the
volume). A training window centred on ``z`` reads slices ``z - r .. z + r`` (``r = K // 2``; padding at
the volume ends only reflects or repeats slices inside that range), so training centres are restricted
to ``z < A - r`` or ``z >= B + r``: no training input ever contains a validation slice. For example with
K = 3 and validation ``25:30`` on 30 slices, training windows are centred on slices 0..23.

Augmentation: in-plane flips and 90-degree rotations (identical for every channel and the label) and,
with ``z_flip``, reversing the channel order (the window seen upside down along z), which is a genuine
symmetry of the data.

Reproducibility: one seed drives the model's random layers (``torch.manual_seed``) and the patch and
augmentation draws (a private NumPy generator); two CPU runs with the same seed and thread count give
identical losses. Mixed precision (bfloat16, or float16 with loss scaling) is used on CUDA only.

Cancelling with ``gen.close()`` keeps the best checkpoint already written and writes the last state
(only when the model is between two optimiser steps, never half-updated).
"""

from __future__ import annotations

import dataclasses
import gc
import math
import time
from collections.abc import Generator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..devices import ThreadBudget, resolve_device
from ..errors import ChannelBiasError, ConfigError
from ..events import CheckpointSaved, TrainStep, Validation, run_to_end
from ..io.checks import parse_slices, validate_image
from ..models.checkpoints import ModelCard, read_checkpoint, save_checkpoint
from ..models.factory import build_model
from ..models.spec import ModelSpec
from ..quality.online import OnlineProtoSeg
from ..tiling import ENCODER_MULTIPLE, crop_to, pad_to_multiple
from ..windowing import (
    NORMALIZATION_MODES,
    Normalizer,
    check_axis,
    check_padding,
    n_slices_along,
    plane_shape,
)
from .fast_path import autocast_dtype, check_amp, prepare_input, prepare_model
from .labels import Foreground, binary_target, check_labels, parse_foreground
from .patches import PatchSampler
from .run_outputs import last_path_for
from .validation import validate, validation_plan


def check_patch_size(patch_size: int) -> int:
    """Return ``patch_size`` if it is a positive multiple of 32 (``tiling.ENCODER_MULTIPLE``), else ConfigError.

    The one rule for the training patch side (the GUI's spin box, the CLI's ``--patch-size``, a preset):
    a patch padded up to the next multiple would spend the padding's compute on pixels with no labels.
    """
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < ENCODER_MULTIPLE \
            or patch_size % ENCODER_MULTIPLE:
        below = max(ENCODER_MULTIPLE, (patch_size // ENCODER_MULTIPLE) * ENCODER_MULTIPLE) \
            if isinstance(patch_size, int) else ENCODER_MULTIPLE
        raise ConfigError(
            f"patch_size must be a multiple of {ENCODER_MULTIPLE} pixels (>= {ENCODER_MULTIPLE}; the encoders "
            f"downsample {ENCODER_MULTIPLE}x), got {patch_size!r}; e.g. {below} or {below + ENCODER_MULTIPLE}"
        )
    return patch_size


@dataclass
class TrainConfig:
    """Training settings (all JSON-able; they go into the model card)."""

    steps: int = 500
    batch_size: int = 8
    patch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    val_slices: str | None = None
    """``"A:B"``; ``None`` or ``"auto"``: the last ``val_fraction`` of the slices; ``"none"``: no validation
    (the final model is then also the "best" one)."""
    val_fraction: float = 0.15
    val_every: int = 50
    device: str = "auto"
    seed: int = 0
    z_flip: bool = True
    amp: bool | str = True
    """Mixed precision where native (see :mod:`.fast_path`): CUDA autocast; float32 on the CPU unless
    ``"bf16"`` (refused on a CPU without native bfloat16)."""
    compile: bool = False
    """Train (and validate) through ``torch.compile``: a slow first step, cached across runs."""
    foreground: int | str | None = None
    """Binary models: ``None`` (labels must be 0/1), ``"any"`` (every label > 0) or one label value; see
    :mod:`.labels`. Multi-class models ignore it."""
    num_threads: int | None = None
    normalization: dict[str, Any] = field(
        default_factory=lambda: {"mode": "percentile", "low": 0.5, "high": 99.5}
    )
    padding: str = "mirror"
    axis: int = 0
    val_tile: int = 512
    protoseg_loss: float = 0.0
    """Weight lambda of the online ProtoSeg loss on ``protoseg_layers`` (0: off; see quality.online)."""
    protoseg_layers: str = "last2"

    def __post_init__(self) -> None:
        def positive_int(name: str, minimum: int = 1) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")

        for name in ("steps", "batch_size", "val_every"):
            positive_int(name)
        check_patch_size(self.patch_size)
        positive_int("val_tile", 32)
        self.foreground = parse_foreground(self.foreground)
        positive_int("seed", 0)
        if self.num_threads is not None:
            positive_int("num_threads")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ConfigError(f"lr must be a positive number, got {self.lr!r}")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be between 0 and 1, got {self.val_fraction!r}")
        check_padding(self.padding)
        if isinstance(self.protoseg_loss, bool) or not isinstance(self.protoseg_loss, (int, float)) \
                or not self.protoseg_loss >= 0:
            raise ConfigError(f"protoseg_loss must be a number >= 0 (0 = off), got {self.protoseg_loss!r}")
        check_amp(self.amp)
        if not isinstance(self.compile, bool):
            raise ConfigError(f"compile must be True or False, got {self.compile!r}")
        check_axis(self.axis)
        mode = self.normalization.get("mode", "percentile") if isinstance(self.normalization, dict) else None
        if mode not in NORMALIZATION_MODES:
            raise ConfigError(
                f"normalization must be a dict with mode one of {', '.join(NORMALIZATION_MODES)}, "
                f"got {self.normalization!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Settings from a dict (a preset merge, the CLI, a GUI form); unknown keys are an error listing the valid.

        Missing keys take the defaults. An unknown key is refused rather than dropped: a misspelt setting
        (``learning_rate`` for ``lr``) would otherwise train silently with the default.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown training setting(s) {unknown}; valid: {', '.join(sorted(names))}")
        return cls(**data)


@dataclass
class TrainResult:
    """What :func:`train_events` returns."""

    best_path: Path | None
    last_path: Path | None
    best_step: int | None
    best_metrics: dict[str, Any]
    losses: list[float]
    validations: list[dict[str, Any]]
    train_slices: list[int]
    val_slices: list[int]
    seconds: float
    steps_done: int

    def summary(self) -> dict[str, Any]:
        """A JSON-able summary (the CLI prints it)."""
        return {
            "best_path": str(self.best_path) if self.best_path else None,
            "last_path": str(self.last_path) if self.last_path else None,
            "best_step": self.best_step, "best_metrics": self.best_metrics, "steps_done": self.steps_done,
            "final_loss": self.losses[-1] if self.losses else None, "seconds": round(self.seconds, 2),
            "train_slices": _ranges(self.train_slices), "val_slices": _ranges(self.val_slices),
        }


def _ranges(values: list[int]) -> str:
    """``[0, 1, 2, 5, 6]`` -> ``"0:3, 5:7"`` (Python slice notation)."""
    parts, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            parts.append(f"{start}:{v + 1}")
            start = None
    return ", ".join(parts)


# ------------------------------------------------------------------------------------ slice split
def split_train_val(n: int, window: int, config: TrainConfig) -> tuple[list[int], list[int]]:
    """Training centres and validation slices, with a gap of ``K // 2`` slices (see module docstring)."""
    r = window // 2
    text = None if config.val_slices is None else str(config.val_slices).strip().lower()
    if text == "none":
        val: list[int] = []
    elif text in (None, "", "auto"):
        n_val = max(1, math.ceil(config.val_fraction * n - 1e-9))
        val = list(range(n - n_val, n))
    else:
        chosen = parse_slices(str(config.val_slices), n)
        if chosen.step != 1:
            raise ConfigError(f"val_slices must be one contiguous block A:B, got {config.val_slices!r}")
        val = list(chosen)
    if val:
        lo, hi = val[0] - r, val[-1] + 1 + r
        train = [z for z in range(n) if z < lo or z >= hi]
    else:
        train = list(range(n))
    if not train:
        raise ConfigError(
            f"no training slices left: the volume has {n} slices along the axis, validation takes "
            f"{_ranges(val)} and a gap of {r} slice(s) on each side keeps windows from reading it; "
            "use a smaller validation block (val_slices=A:B) or val_slices='none'"
        )
    return train, val


# ------------------------------------------------------------------------------------ the generator
def _loss(logits: torch.Tensor, labels: torch.Tensor, classes: int, foreground: Foreground) -> torch.Tensor:
    logits = logits.float()
    if classes == 1:
        return F.binary_cross_entropy_with_logits(logits[:, 0], binary_target(labels, foreground).float())
    return F.cross_entropy(logits, labels.long())


def _fit_normalizer(image: Any, config: TrainConfig) -> Normalizer:
    norm = dict(config.normalization)
    if "lo" in norm and "hi" in norm:  # fixed intensities given: nothing to fit
        return Normalizer.from_dict(norm)
    return Normalizer.fit(image, low=norm.get("low", 0.5), high=norm.get("high", 99.5), axis=config.axis,
                          mode=norm.get("mode", "percentile"))


def _check_inputs(image: Any, labels: Any, spec: ModelSpec, config: TrainConfig) -> None:
    validate_image(image, window=1, name="image")  # mirror/replicate padding need no minimum depth
    check_labels(labels, image.shape, spec.classes, config.foreground)


def train_events(
    image: Any, labels: Any, spec: ModelSpec, config: TrainConfig | None = None,
    out: str | Path = "model.pt",
) -> Generator[TrainStep | Validation | CheckpointSaved, None, TrainResult]:
    """Train a model; yield progress events; return a :class:`TrainResult`.

    Parameters
    ----------
    image, labels
        ``(Z, Y, X)`` volumes (possibly lazy) of the same shape; labels are class indices (0/1 for a
        binary model, or any integers with ``config.foreground`` choosing the foreground).
    spec
        The model to build (architecture, encoder, first-layer init, window, classes).
    config
        Training settings.
    out
        Path of the best checkpoint; the last state goes to :func:`last_path_for` ``(out)``.

    Yields
    ------
    TrainStep (every step), Validation (every ``val_every`` steps and at the end), CheckpointSaved.
    """
    config = config or TrainConfig()
    start = time.perf_counter()
    out = Path(out)
    last_out = last_path_for(out)
    _check_inputs(image, labels, spec, config)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model, provenance = build_model(spec)
    spec_dict = provenance["spec"]
    window, classes = int(spec_dict["window"]), int(spec_dict["classes"])
    n = n_slices_along(image, config.axis)
    train_z, val_block = split_train_val(n, window, config)
    plan = validation_plan(val_block, plane_shape(image, config.axis))  # bounded: a few slices of a huge block
    val_z = plan.slices
    normalizer = _fit_normalizer(image, config)
    rng = np.random.default_rng(config.seed)
    sampler = PatchSampler(image, labels, train_z, window, config.padding, config.axis, normalizer,
                           config.patch_size, config.z_flip, rng, classes=classes, foreground=config.foreground)

    # The device's fastest exact layout (channels_last on the CPU), maybe compiled; see fast_path.
    runner = prepare_model(model, device, compile=config.compile)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    amp_dtype = autocast_dtype(device, config.amp)  # None: float32
    use_amp = amp_dtype is not None
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and amp_dtype == torch.float16)
    threads = ThreadBudget(config.num_threads)
    threads.apply()
    online = OnlineProtoSeg(model, config.protoseg_layers).__enter__() if config.protoseg_loss > 0 else None

    training_info = {
        **config.to_dict(), "train_slices": _ranges(train_z), "val_slices_used": _ranges(val_z), **plan.describe(),
        "gap": window // 2, "complete": False, "steps_done": 0,
    }

    def card(step: int, metrics: dict[str, Any]) -> ModelCard:
        return ModelCard(
            model=spec_dict, normalization=normalizer.to_dict(), padding=config.padding, axis=config.axis,
            weights_source=str(provenance.get("weights_source", "unknown")),
            training={**training_info, "steps_done": step}, metrics=metrics, name=out.stem,
        )

    losses: list[float] = []
    validations: list[dict[str, Any]] = []
    best_dice, best_step, best_metrics = -math.inf, None, {}
    step = 0
    consistent = True  # False while an optimiser step is half done
    finished = False
    loop_start = time.perf_counter()  # the estimate of time left excludes the model build
    try:
        for step in range(1, config.steps + 1):
            x, y = sampler.batch(config.batch_size)
            xb = torch.from_numpy(x).to(device, non_blocking=True)
            yb = torch.from_numpy(y.astype(np.int64)).to(device, non_blocking=True)
            xb, size = pad_to_multiple(xb)
            consistent = False
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=amp_dtype) if use_amp else nullcontext():
                logits = crop_to(runner(prepare_input(xb)), size)
            loss = _loss(logits, yb, classes, config.foreground)
            if online is not None:  # foreground vs the rest; gradients flow through the hooked features
                truth = binary_target(yb, config.foreground) if classes == 1 else (yb > 0)
                loss = loss + config.protoseg_loss * online.loss(crop_to(truth, size).long())
            if not torch.isfinite(loss):
                raise ChannelBiasError(
                    f"training diverged: the loss is {loss.item()} at step {step}; lower the learning rate "
                    f"(lr={config.lr}) or check the labels"
                )
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            consistent = True
            losses.append(float(loss.detach()))
            elapsed = time.perf_counter() - loop_start
            yield TrainStep(step, config.steps, losses[-1], config.lr, elapsed / step * (config.steps - step))

            if val_z and (step % config.val_every == 0 or step == config.steps):
                summary = validate(model, image, labels, plan, config, window, normalizer, classes, device)
                means = {k: v["mean"] for k, v in summary.items()}
                means.update({f"{k}_se": v["se"] for k, v in summary.items()})
                dice = means["dice"]
                is_best = dice > best_dice
                validations.append({"step": step, **means})
                if is_best:
                    best_dice, best_step = dice, step
                    best_metrics = {"validation": summary, "step": step, "val_slices": _ranges(val_z)}
                    save_checkpoint(out, model, card(step, best_metrics))
                yield Validation(step, means, is_best)
                if is_best:
                    yield CheckpointSaved(str(out), "best", step)
        if not val_z:  # no validation: the final model is the result
            best_step, best_metrics = step, {"validation": None, "step": step}
            save_checkpoint(out, model, card(step, best_metrics))
            yield CheckpointSaved(str(out), "best", step)
        save_checkpoint(last_out, model, card(step, {"validation": None, "step": step}))
        finished = True
        if best_step is not None:  # mark the best checkpoint as coming from a run that finished
            best_card, state = read_checkpoint(out)
            best_card["training"]["complete"] = True
            model.load_state_dict(state)
            save_checkpoint(out, model, best_card)
        yield CheckpointSaved(str(last_out), "last", step)
    finally:
        if not finished and consistent and losses:
            # Cancelled (or failed) between two steps: keep the last state for inspection or resuming.
            save_checkpoint(last_out, model, card(len(losses), {"validation": None, "step": len(losses)}))
        threads.restore()
        if online is not None:
            online.__exit__(None, None, None)
        del optimizer, model
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()

    return TrainResult(
        best_path=out if best_step is not None else None, last_path=last_out, best_step=best_step,
        best_metrics=best_metrics, losses=losses, validations=validations, train_slices=train_z,
        val_slices=val_z, seconds=time.perf_counter() - start, steps_done=step,
    )


def train(
    image: Any, labels: Any, spec: ModelSpec, config: TrainConfig | None = None, out: str | Path = "model.pt",
    on_event: Any = None,
) -> TrainResult:
    """:func:`train_events` run to the end; ``on_event`` receives every event."""
    return run_to_end(train_events(image, labels, spec, config, out), on_event)

