"""The Train section: training settings, Start / Stop, a napari progress bar and a live plot.

The section only collects settings: it builds the core's ``TrainConfig`` and ``ModelSpec`` and hands
``training.train_events`` to the bridge, which runs it in a worker thread. Each ``TrainStep`` and
``Validation`` event adds a point to the plot; ``CheckpointSaved`` records where the best model is.
Stop closes the generator at its next step: the core keeps the best checkpoint on disk, and the section
loads it into the workspace exactly as after a complete run. When training ends, in any way, memory is
released (``gc`` and the CUDA cache) and torch's thread count restored.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from napari.utils.notifications import show_info, show_warning
from napari.viewer import Viewer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..devices import available_devices, describe_device, gui_friendly_threads, resolve_device, usable_cores
from ..errors import ChannelBiasError, ConfigError
from ..events import CheckpointSaved, TrainStep, Validation
from ..io.checks import SUGGEST_MAX_VOXELS, parse_slices
from ..llvm_guard import avoid_triton_llvm_clash
from ..models.factory import load_checkpoint
from ..models.presets import merge_preset
from ..segmentation.labels import FOREGROUND_ANY, Foreground, check_labels, parse_foreground
from ..segmentation.run_outputs import checkpoint_of_run
from ..segmentation.training import TrainConfig, train_events
from ..workspace import Workspace, suggest_model_name
from . import bridge
from .compact import compact_combo
from .data_section import DataSection, DataSelection
from .model_section import ModelSection
from .train_plot import TrainPlot

DEFAULT_RUNS = Path.home() / "channelbias-runs"
THREADS_AUTO = "auto (all cores)"
FOREGROUND_UNSET = "0/1 labels"
FOREGROUND_ANY_TEXT = "any (every label > 0)"


def _spin(low: int, high: int, value: int, step: int = 1, tip: str = "") -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setSingleStep(step)
    spin.setValue(value)
    spin.setToolTip(tip)
    return spin


def _double(low: float, high: float, value: float, decimals: int, tip: str = "") -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setDecimals(decimals)
    spin.setRange(low, high)
    spin.setValue(value)
    spin.setSingleStep(10 ** -decimals * 10)
    spin.setToolTip(tip)
    return spin


def release_memory() -> None:
    """Give freed tensors back: Python's garbage, then the CUDA caching allocator (if any)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class TrainSection(QWidget):
    """Training settings, Start / Stop, progress and the live loss / Dice plot."""

    def __init__(
        self, viewer: Viewer, workspace: Workspace, data: DataSection, model: ModelSection,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.viewer, self.workspace, self.data, self.model_section = viewer, workspace, data, model
        self.job: bridge.Job | None = None
        self.best_checkpoint: Path | None = None
        self.best_step: int | None = None
        self.last_step = 0
        self.trained_name: str | None = None
        self.output: Path | None = None
        self._started = 0.0

        self.steps_spin = _spin(1, 1_000_000, 500, 50, "optimiser steps")
        self.batch_spin = _spin(1, 256, 8, 1, "patches per step")
        self.patch_spin = _spin(32, 4096, 256, 32, "patch size in pixels (a multiple of 32)")
        self.lr_spin = _double(1e-6, 1.0, 1e-3, 6, "learning rate (AdamW)")
        self.wd_spin = _double(0.0, 1.0, 1e-4, 6, "weight decay (AdamW)")
        self.val_edit = QLineEdit()
        self.val_edit.setPlaceholderText("A:B (default: the last slices)")
        self.val_edit.setToolTip("held-out validation slices, e.g. 25:30 (end exclusive)")
        self.val_every_spin = _spin(1, 100_000, 50, 10, "validate every N steps")
        self.seed_spin = _spin(0, 2**31 - 1, 0, 1, "seed of patch sampling, augmentation and init")
        self.zflip_check = QCheckBox("z-flip augmentation")  # short: the dock must work ~360 px wide
        self.zflip_check.setToolTip("Reverse the window's slice order in half of the patches (the volume "
                                    "seen upside down along z)")
        self.zflip_check.setChecked(True)
        # What a binary model learns from labels that are not a 0/1 mask (the core's `foreground`):
        # unset, "any" (every label > 0) or a label value typed in.
        self.foreground_combo = QComboBox()
        self.foreground_combo.setEditable(True)
        self.foreground_combo.addItems([FOREGROUND_UNSET, FOREGROUND_ANY_TEXT])
        self.foreground_combo.setToolTip(
            "Binary models: which labels are foreground. '0/1 labels' needs a 0/1 mask; 'any' takes every "
            "label > 0 (instance labels 0..N, a 0/255 mask); type a value (e.g. 2) for one class"
        )
        compact_combo(self.foreground_combo)
        self.compile_check = QCheckBox("compile (torch.compile)")
        self.compile_check.setToolTip("Train through torch.compile: faster steps after a slow first step "
                                      "(about a minute; cached across runs)")
        self.device_combo = QComboBox()
        self.device_combo.addItems(["auto", *available_devices()])
        self.device_label = QLabel()
        self.threads_combo = QComboBox()
        self.threads_combo.addItems([THREADS_AUTO, *(str(n) for n in range(1, usable_cores() + 1))])
        self.threads_combo.setToolTip(
            "torch CPU threads while training; auto uses every core: leaving one to napari measured no "
            "smoother a viewer, at up to half the steps per second (docs/performance.md)"
        )
        compact_combo(self.threads_combo)  # long entries are elided in a narrow dock
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText(f"{DEFAULT_RUNS}/<model name>-<time>.pt")
        self.out_edit.setToolTip("where the best checkpoint is written")
        self.start_button = QPushButton("Start training")
        self.stop_button = QPushButton("Stop (keep best)")
        self.stop_button.setEnabled(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.plot = TrainPlot()

        form = QFormLayout()
        form.addRow("steps", self.steps_spin)
        form.addRow("batch size", self.batch_spin)
        form.addRow("patch size", self.patch_spin)
        form.addRow("learning rate", self.lr_spin)
        form.addRow("weight decay", self.wd_spin)
        form.addRow("validation slices", self.val_edit)
        form.addRow("validate every", self.val_every_spin)
        form.addRow("seed", self.seed_spin)
        form.addRow("foreground", self.foreground_combo)
        form.addRow(self.zflip_check)
        form.addRow(self.compile_check)
        form.addRow("device", self.device_combo)
        form.addRow("", self.device_label)
        form.addRow("CPU threads", self.threads_combo)
        out_row = QHBoxLayout()
        out_row.addWidget(self.out_edit)
        browse = QPushButton("…")
        browse.setMaximumWidth(30)
        browse.clicked.connect(bridge.guarded(self._browse_out, "Choose output"))
        out_row.addWidget(browse)
        form.addRow("checkpoint", out_row)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        column = QVBoxLayout(self)
        column.addLayout(form)
        column.addLayout(buttons)
        column.addWidget(self.status)
        column.addWidget(self.plot)

        self.device_combo.currentTextChanged.connect(self._show_device)
        self.start_button.clicked.connect(bridge.guarded(self.start, "Training"))
        self.stop_button.clicked.connect(bridge.guarded(self.stop, "Training"))
        model.preset_chosen.connect(bridge.guarded(lambda: self.apply_settings(model.preset.training), "Preset"))
        self._labels_note = ""
        for signal in (data.labels_changed, model.classes_changed, self.foreground_combo.currentTextChanged):
            signal.connect(bridge.guarded(self.check_labels_now, "Training labels"))
        self._show_device()

    # -- settings ----------------------------------------------------------------------------------
    def _show_device(self, *_: Any) -> None:
        try:
            self.device_label.setText(describe_device(resolve_device(self.device_combo.currentText())))
        except ChannelBiasError as exc:
            self.device_label.setText(str(exc))

    def _browse_out(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Best checkpoint", str(DEFAULT_RUNS), "Checkpoints (*.pt)")
        if path:
            self.out_edit.setText(path)

    def apply_settings(self, settings: Any) -> None:
        """Fill the widgets from a preset's training settings (a dict or dataclass); unknown keys ignored."""
        if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
            settings = dataclasses.asdict(settings)
        widgets = {"steps": self.steps_spin, "batch_size": self.batch_spin, "patch_size": self.patch_spin,
                   "lr": self.lr_spin, "weight_decay": self.wd_spin, "val_every": self.val_every_spin,
                   "seed": self.seed_spin}
        for key, value in dict(settings or {}).items():
            if key in widgets and value is not None:
                widgets[key].setValue(value)
            elif key == "z_flip":
                self.zflip_check.setChecked(bool(value))
            elif key == "val_slices" and value is not None:
                self.val_edit.setText(str(value))

    def settings(self, selection: DataSelection) -> dict[str, Any]:
        """The training settings as a dict of TrainConfig fields, validated where the GUI can."""
        val = self.val_edit.text().strip() or None
        if val is not None:
            parse_slices(val, selection.n_slices)  # fail now with the valid range, not in the worker
        device = self.device_combo.currentText()
        resolve_device(device)
        # The preset's settings under the widgets' (those without a widget, e.g. val_fraction, still
        # apply): the core's one merge rule, as on the command line.
        return merge_preset(getattr(self.model_section, "preset", None), training={
            "steps": self.steps_spin.value(), "batch_size": self.batch_spin.value(),
            "patch_size": self.patch_spin.value(), "lr": self.lr_spin.value(),
            "weight_decay": self.wd_spin.value(), "val_slices": val, "val_every": self.val_every_spin.value(),
            "device": device, "seed": self.seed_spin.value(), "z_flip": self.zflip_check.isChecked(),
            "compile": self.compile_check.isChecked(), "foreground": self.foreground(),
            "padding": selection.padding, "axis": selection.axis, "num_threads": self.torch_threads(),
        }).training

    def foreground(self) -> Foreground:
        """The foreground setting of a binary model: None (0/1 labels), ``"any"`` or a label value."""
        text = self.foreground_combo.currentText().strip()
        if text == FOREGROUND_UNSET:
            return None
        if text == FOREGROUND_ANY_TEXT:
            return FOREGROUND_ANY
        return parse_foreground(text)  # a typed value; anything else: ConfigError naming the choices

    def check_labels_now(self) -> str:
        """Warn now, not at Start, when the chosen labels cannot train the binary model as set.

        Instance labels 0..N (what users often have) under "0/1 labels" would otherwise be refused only
        when training starts. The core decides (segmentation.labels.check_labels); the notification
        names the dock's controls for its fixes. Returns the note shown ("" when the labels fit).
        """
        labels = self.data.labels_layer()
        note = ""
        if labels is not None and self.model_section.classes() == 1 \
                and np.prod(labels.data.shape, dtype=np.int64) <= SUGGEST_MAX_VOXELS:
            try:
                check_labels(labels.data, labels.data.shape, 1, self.foreground())
            except ChannelBiasError as exc:
                note = (f"labels {labels.name!r} cannot train this binary model yet: {exc} -- here: Train > "
                        "foreground ('any' or a value) for --foreground, Model > classes for --classes")
        if note and note != self._labels_note:
            show_warning(note)
        self._labels_note = note
        if note:
            self.status.setText(note)
        elif self.status.text().startswith("labels "):
            self.status.setText("")
        return note

    def torch_threads(self) -> int:
        """The torch CPU thread count for training (auto: every usable core).

        Measured with benchmarks/bench_gui_latency.py (docs/performance.md): the viewer's p95 lateness
        with every core training stayed at its idle-with-a-progress-bar level, while leaving a core
        free cost up to half the throughput on a 2-core machine.
        """
        choice = self.threads_combo.currentText()
        return gui_friendly_threads(reserve=0).threads if choice == THREADS_AUTO else int(choice)

    def output_path(self, name: str) -> Path:
        text = self.out_edit.text().strip()
        if text:
            path = Path(text).expanduser()
            return path if path.suffix else path.with_suffix(".pt")
        return DEFAULT_RUNS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.pt"

    # -- run ---------------------------------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        return self.job is not None and self.job.is_running

    def start(self) -> bridge.Job:
        """Validate the inputs, then train in a worker; returns the job."""
        if self.is_running:
            raise ConfigError("training is already running; stop it first")
        spec = self.model_section.spec()
        selection = self.data.selection(require_labels=True, n_classes=spec.classes, foreground=self.foreground())
        spec = dataclasses.replace(spec, window=selection.window)
        settings = self.settings(selection)
        config = TrainConfig.from_dict(settings)
        name = self.model_section.model_name() or suggest_model_name(spec.to_dict())
        out = self.output_path(name)
        out.parent.mkdir(parents=True, exist_ok=True)

        self.best_checkpoint, self.best_step, self.last_step = None, None, 0
        self.output = out
        self.trained_name = name
        self.plot.clear()
        self.status.setText(f"training {name} on {self.device_label.text()} -> {out}")
        self._started = time.time()
        gen = train_events(selection.image.data, selection.labels.data, spec, config, out)
        self.job = bridge.start_job(
            self, gen, f"Training {name}", total=config.steps,
            on_event=self._event, on_done=self._done, on_finished=self._finished,
        )
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        return self.job

    def stop(self) -> None:
        """Stop at the next step; the best checkpoint so far is kept and loaded."""
        if self.job is not None:
            self.status.setText("stopping after the current step…")
            self.job.cancel()

    def _event(self, event: Any) -> None:
        if isinstance(event, TrainStep):
            self.last_step = event.step
            self.plot.add_loss(event.step, event.loss)
        elif isinstance(event, Validation):
            dice = event.metrics.get("dice", event.metrics.get("Dice"))
            if dice is not None:
                self.plot.add_validation(event.step, float(dice), event.is_best)
            if event.is_best:
                self.best_step = event.step
        elif isinstance(event, CheckpointSaved) and event.kind == "best":
            self.best_checkpoint = Path(event.path)
            self.best_step = event.step

    def _done(self, result: Any) -> None:
        path = getattr(result, "best_path", None) or getattr(result, "checkpoint", None)
        if path is not None:
            self.best_checkpoint = Path(path)

    def _finished(self, job: bridge.Job) -> None:
        self.start_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self.plot.redraw()
        try:
            if job.failed is not None:
                self.status.setText(f"training failed: {bridge.error_message(job.failed)}")
            elif (kept := self._kept_checkpoint()) is not None and kept[1] == "best":
                self._adopt(kept[0], f"the best checkpoint (step {self.best_step})", job.cancelled)
            elif kept is not None:
                self._adopt(kept[0], f"no validation had run yet: the last state (step {self.last_step})",
                            job.cancelled, suffix="-last")
            else:
                self.status.setText(
                    f"training stopped at step {self.last_step} before any checkpoint was saved; nothing "
                    "was kept (let it run past the first validation, or validate more often)"
                )
                show_warning(self.status.text())
        finally:
            self.job = None
            release_memory()

    def _kept_checkpoint(self) -> tuple[Path, str] | None:
        """The run's best checkpoint, else its own last state (the core decides; see checkpoint_of_run)."""
        if self.output is None:
            return None
        return checkpoint_of_run(self.output, self._started, self.best_checkpoint)

    def _adopt(self, path: Path, what: str, cancelled: bool, suffix: str = "") -> None:
        avoid_triton_llvm_clash()  # loading builds the model on this (GUI) thread
        model, card = load_checkpoint(path, device="cpu")
        name = self.workspace.add_model(f"{self.trained_name}{suffix}", model, card, path=path)
        how = f"stopped at step {self.last_step}" if cancelled else "finished"
        self.status.setText(f"training {how}; {what} is loaded as {name!r}: {path}")
        show_info(self.status.text())
