"""The Model section: describe a new model, load and save checkpoints, list the loaded models.

Top half: the model a training run will build -- a preset, or architecture, encoder, first-layer init
strategy and weights source (auto = the offline cache or the ImageNet weights embedded for Lite0; file =
a torchvision/timm weights file). Bottom half: the models loaded in this viewer's workspace, each with
a readable name ("lite0-imagenet", "lite0-uniform-green"), its model card, and Load / Save / Remove.
Several models can be loaded at once: that is how the asymmetry panel compares an ImageNet-initialised
model with a mitigated one.

Loading and building run in a worker (through :mod:`.bridge`): reading a big checkpoint or resolving
ImageNet weights never freezes napari.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from napari.viewer import Viewer
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..errors import CheckpointError, ConfigError
from ..events import Progress
from ..io.checks import suggest_classes
from ..models.checkpoints import ModelCard, save_checkpoint
from ..models.factory import build_model, load_checkpoint
from ..models.init_strategies import INIT_STRATEGIES
from ..models.presets import Preset, list_presets, load_preset
from ..models.spec import CHECKPOINT_PREFIX, RANDOM_INIT, ModelSpec, list_architectures, list_encoders
from ..workspace import Workspace, suggest_model_name
from . import bridge
from .compact import compact_combo
from .data_section import DataSection
from .model_export import export_dialog
from .rank_inits import RankInitsPanel

CUSTOM = "(custom)"
WEIGHTS_AUTO = "auto (cache, else embedded Lite0)"
WEIGHTS_FILE = "file"
CHECKPOINT_FILTER = "Checkpoints (*.pt *.pth *.ckpt);;All files (*)"
LOAD_FILTER = "Checkpoints and bioimage.io packages (*.pt *.pth *.ckpt *.zip);;All files (*)"


def _as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return dict(value)


def format_card(card: ModelCard, path: Path | None = None) -> str:
    """A model card as short readable text for the dock."""
    data = card.to_dict()
    model = data.get("model", {})
    lines = [
        f"{model.get('arch')} / {model.get('encoder')}, init {model.get('init')}",
        f"window K = {model.get('window')}, classes = {model.get('classes')}"
        f"{' (binary)' if model.get('classes') == 1 else ''}, axis {data.get('axis')}, "
        f"padding {data.get('padding')}",
        f"weights: {data.get('weights_source')}",
        f"normalisation: {json.dumps(data.get('normalization'), sort_keys=True)}",
    ]
    training = data.get("training") or {}
    if training:
        keys = ("steps", "batch_size", "patch_size", "lr", "seed", "device", "best_step")
        lines.append("training: " + ", ".join(f"{k} {training[k]}" for k in keys if k in training))
    metrics = data.get("metrics") or {}
    for name, value in metrics.items():
        if isinstance(value, dict) and "mean" in value:
            se = f" ± {value['se']:.3f}" if isinstance(value.get("se"), (int, float)) else ""
            lines.append(f"{name}: {value['mean']:.3f}{se}")
        elif isinstance(value, (int, float)):
            lines.append(f"{name}: {value:.3f}")
    versions = data.get("versions") or {}
    lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    lines.append(f"created: {data.get('created')}")
    if path is not None:
        lines.append(f"file: {path}")
    return "\n".join(lines)


class ModelSection(QWidget):
    """Describe the model to train; load, save, list and inspect models in the workspace.

    Signals
    -------
    preset_chosen(object)
        The chosen preset (its ``training`` settings fill the Train section).
    classes_changed()
        The number of classes changed (by the user or from the chosen labels).
    """

    preset_chosen = Signal(object)
    classes_changed = Signal()

    def __init__(self, viewer: Viewer, workspace: Workspace, data: DataSection | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer, self.workspace, self.data = viewer, workspace, data
        self.preset: Preset | None = None
        self.job: bridge.Job | None = None

        self.preset_combo = QComboBox()
        self.preset_combo.addItems([CUSTOM, *list_presets()])
        self.arch_combo = QComboBox()
        self.arch_combo.addItems(list_architectures())
        self.encoder_combo = QComboBox()
        self.encoder_combo.addItems(list_encoders())
        self.encoder_combo.setToolTip("Only efficientnet-lite0 has ImageNet weights on every machine")
        defaults = ModelSpec()
        self.arch_combo.setCurrentText(defaults.arch)
        self.encoder_combo.setCurrentText(defaults.encoder)
        self.init_combo = QComboBox()
        self.init_combo.addItems([*INIT_STRATEGIES, RANDOM_INIT, "checkpoint"])
        self.init_combo.setToolTip(
            "First-layer initialisation: imagenet keeps RGB as is (asymmetric); uniform-green copies the "
            "green filter to every input slice (symmetric); checkpoint starts from a model trained here"
        )
        self.init_path = QLineEdit()
        self.init_path.setPlaceholderText("checkpoint to start from")
        self.classes_spin = QSpinBox()
        self.classes_spin.setRange(1, 255)
        self.classes_spin.setToolTip("1 = binary (sigmoid); 2 or more = classes 0..N-1 (softmax)")
        self.classes_spin.valueChanged.connect(lambda *_: self.classes_changed.emit())
        self.weights_combo = QComboBox()
        self.weights_combo.addItems([WEIGHTS_AUTO, WEIGHTS_FILE])
        self.weights_path = QLineEdit()
        self.weights_path.setPlaceholderText("torchvision / timm ImageNet state dict (.pth)")
        self.rescale_check = QCheckBox("rescale to the pretrained norm")
        self.rescale_check.setToolTip("Rescale the new first layer's weights to the norm of the pretrained one")
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("automatic, e.g. lite0-uniform-green")
        self.create_button = QPushButton("Create untrained")
        self.create_button.setToolTip("Add this model, untrained, to the workspace (e.g. to test symmetry)")

        for combo in (self.preset_combo, self.arch_combo, self.encoder_combo, self.init_combo,
                      self.weights_combo):
            compact_combo(combo, tooltip_shows_text=combo is self.preset_combo)

        form = QFormLayout()
        form.addRow("preset", self.preset_combo)
        form.addRow("architecture", self.arch_combo)
        form.addRow("encoder", self.encoder_combo)
        form.addRow("init", self.init_combo)
        form.addRow("", self._with_browse(self.init_path, self._browse_init))
        form.addRow("classes", self.classes_spin)
        form.addRow("weights", self.weights_combo)
        form.addRow("", self._with_browse(self.weights_path, self._browse_weights))
        form.addRow(self.rescale_check)
        form.addRow("name", self.name_edit)
        form.addRow(self.create_button)

        self.model_list = QListWidget()
        self.model_list.setMaximumHeight(110)
        self.card_view = QPlainTextEdit()
        self.card_view.setReadOnly(True)
        self.card_view.setMaximumHeight(170)
        self.load_button = QPushButton("Load…")
        self.save_button = QPushButton("Save…")
        self.remove_button = QPushButton("Remove")
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Write the selected model as a bioimage.io package (.zip) with an attribution "
                                      "audit on the Data section's image")
        # Two rows of two: four buttons in one row need about 340 px and the dock must work at 360 px.
        buttons = QGridLayout()
        for i, button in enumerate((self.load_button, self.save_button, self.remove_button, self.export_button)):
            buttons.addWidget(button, i // 2, i % 2)

        column = QVBoxLayout(self)
        column.addLayout(form)
        self.rank_inits = RankInitsPanel(self)  # "Rank initialisations on this image" (issue 9)
        column.addWidget(self.rank_inits)
        column.addWidget(QLabel("loaded models"))
        column.addWidget(self.model_list)
        column.addLayout(buttons)
        column.addWidget(self.card_view)

        self.preset_combo.currentTextChanged.connect(bridge.guarded(self._apply_preset, "Preset"))
        self.init_combo.currentTextChanged.connect(self._update_enabled)
        self.weights_combo.currentTextChanged.connect(self._update_enabled)
        self.create_button.clicked.connect(bridge.guarded(self.create_untrained, "Create model"))
        self.load_button.clicked.connect(bridge.guarded(self._load_dialog, "Load checkpoint"))
        self.save_button.clicked.connect(bridge.guarded(self._save_dialog, "Save checkpoint"))
        self.remove_button.clicked.connect(bridge.guarded(self.remove_selected, "Remove model"))
        self.export_button.clicked.connect(bridge.guarded(lambda: export_dialog(self), "Export package"))
        self.model_list.currentTextChanged.connect(self._show_card)
        self._unsubscribe = workspace.subscribe(
            lambda event, name: self._refresh_models(select=name if event == "added" else None)
        )
        self.destroyed.connect(self._unsubscribe)
        if data is not None:
            data.labels_changed.connect(self._classes_from_labels)
            self._classes_from_labels()
        self._update_enabled()
        self._refresh_models()

    @staticmethod
    def _with_browse(edit: QLineEdit, browse: Any) -> QWidget:
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(edit)
        button = QPushButton("…")
        button.setMaximumWidth(30)
        button.clicked.connect(bridge.guarded(browse, "Choose file"))
        layout.addWidget(button)
        return row

    # -- the spec of a new model -------------------------------------------------------------------
    def _update_enabled(self, *_: Any) -> None:
        self.init_path.setEnabled(self.init_combo.currentText() == "checkpoint")
        self.weights_path.setEnabled(self.weights_combo.currentText() == WEIGHTS_FILE)

    def _classes_from_labels(self, *_: Any) -> None:
        """Set the classes the chosen labels suggest (the core's rule: io.checks.suggest_classes)."""
        layer = self.data.labels_layer() if self.data is not None else None
        classes = suggest_classes(layer.data) if layer is not None else None
        if classes is not None:
            self.classes_spin.setValue(classes)

    def _apply_preset(self) -> None:
        name = self.preset_combo.currentText()
        if name == CUSTOM:
            self.preset = None
            return
        preset = load_preset(name)
        spec = preset.spec
        self.arch_combo.setCurrentText(spec.arch)
        self.encoder_combo.setCurrentText(spec.encoder)
        init = spec.init
        if init.startswith(CHECKPOINT_PREFIX):
            self.init_combo.setCurrentText("checkpoint")
            self.init_path.setText(init[len(CHECKPOINT_PREFIX):])
        else:
            self.init_combo.setCurrentText(init)
        self.rescale_check.setChecked(bool(spec.rescale))
        if self.data is not None:
            self.data.set_window(spec.window)
        self.preset = preset
        self.preset_chosen.emit(preset)

    def spec(self, window: int | None = None) -> ModelSpec:
        """The :class:`ModelSpec` the widgets describe, validated (ConfigError names the bad field)."""
        if window is None:
            window = self.data.window() if self.data is not None else 3
        init = self.init_combo.currentText()
        if init == "checkpoint":
            path = self.init_path.text().strip()
            if not path:
                raise ConfigError("init 'checkpoint' needs the checkpoint file to start from: choose it with …")
            init = CHECKPOINT_PREFIX + path
        weights_path = None
        if self.weights_combo.currentText() == WEIGHTS_FILE:
            weights_path = self.weights_path.text().strip()
            if not weights_path:
                raise ConfigError("weights 'file' needs an ImageNet weights file: choose it with …")
        spec = ModelSpec(
            arch=self.arch_combo.currentText(), encoder=self.encoder_combo.currentText(), init=init,
            window=window, classes=int(self.classes_spin.value()), weights_path=weights_path,
            rescale=self.rescale_check.isChecked(),
        )
        return spec.canonical()

    def classes(self) -> int:
        """The number of classes the model will have (1 = binary)."""
        return int(self.classes_spin.value())

    def model_name(self, card: ModelCard | None = None) -> str | None:
        """The name typed by the user, or None for the automatic one."""
        return self.name_edit.text().strip() or None

    # -- building and loading (in a worker) --------------------------------------------------------
    def _busy(self) -> bool:
        return self.job is not None and self.job.is_running

    def create_untrained(self) -> bridge.Job:
        """Build the described model without training and add it to the workspace."""
        if self._busy():
            raise ConfigError("a model is being built or loaded; wait until it is done")
        if self.data is None:
            raise ConfigError("creating a model needs the Data section (its image fixes the normalisation)")
        selection = self.data.selection()
        spec = self.spec(window=selection.window)
        normalizer = self.data.normalizer(selection)
        name = self.model_name()

        def work():
            yield Progress(task="build", done=0, total=1, message=f"building {spec.arch}/{spec.encoder}")
            model, provenance = build_model(spec)
            model.eval()
            card = ModelCard(
                model=provenance["spec"], normalization=normalizer.to_dict(), padding=selection.padding,
                axis=selection.axis, weights_source=provenance["weights_source"],
                training={"steps": 0, "note": "untrained"},
            )
            yield Progress(task="build", done=1, total=1)
            return model, card

        def done(result: tuple[Any, ModelCard]) -> None:
            model, card = result
            self.workspace.add_model(name or suggest_model_name(card) + "-untrained", model, card)

        self.job = bridge.start_job(self, work(), "Building the model", total=1, on_done=done)
        return self.job

    def load_checkpoint_file(self, path: str | Path) -> bridge.Job:
        """Load a checkpoint (in a worker) and add it to the workspace; errors become notifications."""
        path = Path(path)
        name = self.model_name()

        def work():
            yield Progress(task="load", done=0, total=1, message=path.name)
            model, card = load_checkpoint(path, device="cpu")
            return model, card

        def done(result: tuple[Any, ModelCard]) -> None:
            model, card = result
            self.workspace.add_model(name, model, card, path=path)

        self.job = bridge.start_job(self, work(), f"Loading {path.name}", total=1, on_done=done)
        return self.job

    def _load_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Load checkpoints", "", LOAD_FILTER)
        for path in paths:  # one at a time: the name box applies to each, unique names keep them apart
            self.load_checkpoint_file(path)

    def selected_name(self) -> str:
        """The model selected in the list; ConfigError if there is none."""
        item = self.model_list.currentItem()
        if item is None:
            raise ConfigError("no model is selected: load a checkpoint or train a model, then select it")
        return item.text()

    def save_selected(self, path: str | Path) -> Path:
        """Save the selected model with its card to ``path`` (atomically)."""
        entry = self.workspace.get(self.selected_name())
        path = Path(path)
        if path.suffix == "":
            path = path.with_suffix(".pt")
        card = dataclasses.replace(entry.card, name=entry.name)
        return save_checkpoint(path, entry.model, card)

    def _save_dialog(self) -> None:
        name = self.selected_name()
        path, _ = QFileDialog.getSaveFileName(self, "Save checkpoint", f"{name}.pt", CHECKPOINT_FILTER)
        if path:
            self.save_selected(path)

    def remove_selected(self) -> None:
        self.workspace.remove(self.selected_name())

    def _browse_init(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Start from checkpoint", "", CHECKPOINT_FILTER)
        if path:
            self.init_path.setText(path)

    def _browse_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "ImageNet weights", "", "Weights (*.pth *.pt *.bin *.safetensors);;All files (*)"
        )
        if path:
            self.weights_path.setText(path)

    # -- the list of loaded models -----------------------------------------------------------------
    def _refresh_models(self, select: str | None = None) -> None:
        """Re-list the workspace's models; keep the selection, or select ``select`` (just added)."""
        names = self.workspace.names()
        current = self.model_list.currentItem().text() if self.model_list.currentItem() else None
        target = select if select in names else current if current in names else None
        self.model_list.blockSignals(True)
        self.model_list.clear()
        self.model_list.addItems(names)
        self.model_list.blockSignals(False)
        if names:
            self.model_list.setCurrentRow(names.index(target) if target else len(names) - 1)
            self._show_card(self.model_list.currentItem().text())
        else:
            self.card_view.setPlainText("")
        self.save_button.setEnabled(bool(names))
        self.remove_button.setEnabled(bool(names))
        self.export_button.setEnabled(bool(names))

    def _show_card(self, name: str) -> None:
        if not name or name not in self.workspace:
            self.card_view.setPlainText("")
            return
        entry = self.workspace.get(name)
        try:
            self.card_view.setPlainText(format_card(entry.card, entry.path))
        except (CheckpointError, AttributeError, TypeError) as exc:
            self.card_view.setPlainText(f"(card not readable: {exc})")
