"""The study: one model per first-layer init, same data, seed and steps; segmentation quality on held-out
slices; per-channel saliency asymmetry; a report with the paper's two kinds of table.

The study is a generator like every long job of the core: it yields the training, evaluation and
saliency events of its parts (wrapped in :class:`~napari_channelbias.events.Progress` events that say
which arm is running) and returns the path of ``report.md``. Checkpoints are kept in ``DIR/checkpoints``
so the napari plugin can load them; a study run again with the same settings reuses a checkpoint whose
model card matches instead of training again (cancel and resume cost nothing).

Data split. Test slices are a contiguous block (default: the last quarter of the volume). Training and
validation use only the slices before the test block minus a gap of r = K // 2 slices, so no training or
validation window reads a test slice; the training volume is that sub-stack, whose ends are padded as
any volume's ends are. Validation (for picking the best checkpoint) is the trainer's default block at the
end of that sub-stack unless given.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..asymmetry.volume import VolumeAsymmetry
from ..devices import resolve_device
from ..errors import ConfigError
from ..events import Progress
from ..io.checks import parse_slices, validate_image
from ..io.read import open_volume
from ..models.checkpoints import read_checkpoint
from ..models.factory import load_checkpoint
from ..models.presets import merge_preset
from ..models.spec import ModelSpec
from ..quality.ablation import ablation_events
from ..saliency.registry import check_methods
from ..saliency.volume import saliency_events
from ..segmentation.evaluation import evaluate_events
from ..segmentation.labels import check_labels, parse_foreground
from ..segmentation.training import TrainConfig, train_events
from .report import write_report

DEFAULT_PRESET = "unet-lite0-imagenet"


@dataclass
class StudyConfig:
    """Everything a study needs; :meth:`from_cli` fills it from command-line style options."""

    image: str
    labels: str
    out_dir: str
    spec: dict[str, Any]
    inits: list[str] = field(default_factory=lambda: ["imagenet", "uniform-green"])
    methods: list[str] = field(default_factory=lambda: ["full-output", "foreground"])
    seeds: list[int] = field(default_factory=lambda: [0])
    training: dict[str, Any] = field(default_factory=dict)
    normalization: dict[str, Any] = field(default_factory=dict)
    test_slices: str | None = None
    val_slices: str | None = None
    points: int = 100
    device: str = "auto"
    rank_inits: bool = False
    """Score each init's robustness before training (:mod:`..transfer`); a column beside Dice."""
    foreground: int | str | None = None
    """Binary models: what the labels' foreground is (:mod:`..segmentation.labels`); None: 0/1 labels."""
    ablation: bool = True
    """Also ablate each input channel on the test slices (:mod:`..quality.ablation`), beside the shares."""

    @classmethod
    def from_cli(
        cls, *, image: str, labels: str, out_dir: str, preset: str | None = None, arch: str | None = None,
        encoder: str | None = None, window: int | None = None, weights_path: str | None = None,
        inits: list[str] | None = None, methods: list[str] | None = None, steps: int | None = None,
        batch_size: int | None = None, patch_size: int | None = None, lr: float | None = None,
        seeds: list[int] | None = None, test_slices: str | None = None, val_slices: str | None = None,
        points: int = 100, device: str = "auto", foreground: int | str | None = None,
    ) -> StudyConfig:
        """Merge a preset (default ``unet-lite0-imagenet`` unless an architecture is given) with options.

        The merge is :func:`~napari_channelbias.models.presets.merge_preset`, as for ``channelbias train``.
        """
        merged = merge_preset(
            preset if preset or arch or encoder else DEFAULT_PRESET,
            model={"arch": arch, "encoder": encoder, "window": window, "weights_path": weights_path},
            training={"steps": steps, "batch_size": batch_size, "patch_size": patch_size, "lr": lr},
        )
        training = dict(merged.training)
        normalization = training.pop("normalization", {})
        if not inits:
            raise ConfigError("--inits is empty; give at least one init strategy, e.g. imagenet,uniform-green")
        if not methods:
            raise ConfigError("--methods is empty; give at least one saliency method, e.g. full-output")
        check_methods(methods)
        return cls(image=image, labels=labels, out_dir=out_dir, spec=merged.spec.to_dict(), inits=list(inits),
                   methods=list(methods), seeds=list(seeds or [0]), training=training,
                   normalization=normalization, test_slices=test_slices, val_slices=val_slices,
                   points=points, device=device, foreground=parse_foreground(foreground))


@dataclass
class ArmResult:
    """One trained model of the study: its init, seed, checkpoint and measured figures."""

    init: str
    seed: int
    checkpoint: str
    segmentation: dict[str, Any]
    asymmetry: dict[str, Any]  # method -> VolumeAsymmetryResult.to_dict()
    ablation: dict[str, Any] | None = None  # quality.ablation.AblationResult.to_dict(), or None if off


def split_slices(n: int, window: int, test_text: str | None) -> tuple[range, range]:
    """Return (training-and-validation block, test block); see the module docstring."""
    test = parse_slices(test_text, n) if test_text else range(n - max(1, n // 4), n)
    if test.step != 1 or len(test) == 0:
        raise ConfigError(f"test slices must be a non-empty contiguous range, got {test_text!r}")
    r = window // 2
    train_end = test.start - r
    if train_end < window + 2:
        raise ConfigError(
            f"the test block {test.start}:{test.stop} leaves only {max(train_end, 0)} slices before it for "
            f"training and validation; put the test block at the end of the volume or make it smaller"
        )
    return range(0, train_end), test


def study_events(config: StudyConfig) -> Generator[Any, None, Path]:
    """Run the whole study; yields progress events, returns the path of ``report.md``."""
    out_dir = Path(config.out_dir)
    (out_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    image = open_volume(config.image)
    labels = open_volume(config.labels)
    window = int(config.spec.get("window", 3))
    classes = int(config.spec.get("classes", 1))
    validate_image(image, window=window, name="--image")
    check_labels(labels, image.shape, classes, config.foreground)
    train_block, test = split_slices(image.shape[0], window, config.test_slices)
    device = resolve_device(config.device)
    ranking = None
    if config.rank_inits:  # label-free, on the training slices, before any arm is trained (issue 9)
        # only with --rank-inits (transfer imports torch and builds encoders)
        from ..transfer.ranking import rank_spec_inits_events

        ranking = yield from rank_spec_inits_events(image, config.spec, config.inits, config.seeds[0],
                                                    f"{train_block.start}:{train_block.stop}", config.device)

    arms: list[ArmResult] = []
    cdfs: dict[str, dict[str, Any]] = {}  # init -> method -> accumulator, for the first seed's CDF figure
    total = len(config.seeds) * len(config.inits)
    done = 0
    for seed in config.seeds:
        for init in config.inits:
            yield Progress("study", done, total, f"{init}, seed {seed}: training")
            spec = ModelSpec.from_dict({**config.spec, "init": init})
            settings = {**config.training, "seed": seed, "device": config.device, "foreground": config.foreground}
            if config.val_slices:
                settings["val_slices"] = config.val_slices
            if config.normalization:
                settings["normalization"] = config.normalization
            train_cfg = TrainConfig.from_dict(settings)
            ckpt = out_dir / "checkpoints" / f"{spec.arch}-{spec.encoder}-{_safe(init)}-seed{seed}.pt"
            if not _reusable(ckpt, spec, train_cfg):
                result = yield from train_events(
                    image[train_block.start:train_block.stop], labels[train_block.start:train_block.stop],
                    spec, train_cfg, ckpt,
                )
                del result
                gc.collect()
            model, card = load_checkpoint(ckpt, device=device)

            yield Progress("study", done, total, f"{init}, seed {seed}: evaluating")
            seg = yield from evaluate_events(model, card, image, labels, slices=test, device=device)

            asym: dict[str, Any] = {}
            for method in config.methods:
                yield Progress("study", done, total, f"{init}, seed {seed}: saliency {method}")
                acc = VolumeAsymmetry(window=window)
                gen = saliency_events(model, card, image, method, slices=test, device=device, collect=False,
                                      points=config.points, seed=seed)
                for event in _forward(gen):
                    if getattr(event, "task", None) == "saliency" and event.result is not None:
                        acc.add(event.z, np.asarray(event.result, dtype=np.float32))
                        event = dataclasses.replace(event, result=None)  # do not hold maps downstream
                    yield event
                asym[method] = acc.result().to_dict()
                if seed == config.seeds[0]:
                    cdfs.setdefault(init, {})[method] = acc
            ablation = None
            if config.ablation:
                yield Progress("study", done, total, f"{init}, seed {seed}: channel ablation")
                ablation = (yield from ablation_events(model, card, image, labels, slices=test, device=device,
                                                       foreground=config.foreground)).to_dict()
            arms.append(ArmResult(init, seed, str(ckpt), seg, asym, ablation))
            del model
            gc.collect()
            done += 1
    yield Progress("study", done, total, "writing the report")
    return write_report(out_dir, config, arms, cdfs, test, ranking=ranking)


def _forward(gen: Generator[Any, None, Any]) -> Generator[Any, None, None]:
    try:
        yield from gen
    finally:
        gen.close()


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


def _reusable(ckpt: Path, spec: ModelSpec, train_cfg: TrainConfig) -> bool:
    """True if ``ckpt`` exists and was trained with this spec and these settings (resume a study)."""
    if not ckpt.exists():
        return False
    try:
        card, _ = read_checkpoint(ckpt)
    except Exception:  # a corrupt leftover is retrained, not trusted
        return False
    same_model = {k: card.get("model", {}).get(k) for k in ("arch", "encoder", "init", "window", "classes")} == {
        k: getattr(spec, k) for k in ("arch", "encoder", "init", "window", "classes")
    }
    trained = card.get("training", {})
    same_training = all(trained.get(k) == getattr(train_cfg, k) for k in ("steps", "seed", "batch_size",
                                                                          "patch_size", "lr", "foreground"))
    # A cancelled run leaves a best checkpoint marked incomplete: train that arm again.
    return same_model and same_training and trained.get("complete") is True
