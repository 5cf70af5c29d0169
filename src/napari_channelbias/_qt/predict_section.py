"""The Predict section: segment the current slice, a slice range or the whole volume with a loaded model.

Prediction is the core's tiled, streamed ``prediction.predict_events`` run through the bridge, so it is
cancellable and never freezes napari. Each finished slice is written into a Labels layer as it arrives
(the user watches the volume fill in); probabilities, if asked for, arrive as an Image layer at the end.
Both layers get the image layer's scale and translation, so they sit exactly on the image. The
window, padding, axis and normalisation come from the model's card -- the model sees its input exactly
as in training -- whatever the Data section shows. With a results store typed in the Data section
(*store*, shared with Saliency), a whole-volume run goes into the store instead and its labels and
probabilities come back as lazy layers.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_info
from napari.viewer import Viewer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..devices import available_devices, gui_friendly_threads, resolve_device
from ..errors import ConfigError
from ..events import SliceDone
from ..io.checks import parse_slices
from ..segmentation.prediction import PredictionResult, predict_events, probabilities_in_volume
from ..store.layout import labels_key, model_name_from, prediction_key
from ..windowing import plane_index
from ..workspace import Workspace
from . import bridge
from .compact import compact_combo
from .data_section import DataSection, DataSelection, open_image_store
from .sparse_volume import in_memory_volume, is_in_memory_volume, refuse_beyond_budget
from .store_layers import store_layer_data

SCOPES = ("current slice", "slice range", "whole volume")
REFRESH_S = 0.2  # refresh the labels layer at most this often while slices stream in


def _spin(low: int, high: int, value: int, step: int, tip: str) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setSingleStep(step)
    spin.setValue(value)
    spin.setToolTip(tip)
    return spin


class PredictSection(QWidget):
    """Choose a model and what to predict; the result goes into layers aligned with the image."""

    def __init__(self, viewer: Viewer, workspace: Workspace, data: DataSection,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer, self.workspace, self.data = viewer, workspace, data
        self.job: bridge.Job | None = None
        self.labels_layer: Labels | None = None
        self.probability_layer: Image | None = None
        self._last_refresh = 0.0
        self._run: dict[str, Any] = {}

        self.model_combo = QComboBox()
        self.scope_combo = QComboBox()
        self.scope_combo.addItems(SCOPES)
        compact_combo(self.model_combo, tooltip_shows_text=True)
        compact_combo(self.scope_combo)
        self.range_edit = QLineEdit()
        self.range_edit.setPlaceholderText("A:B, e.g. 10:20 (end exclusive)")
        self.tile_spin = _spin(32, 8192, 512, 32, "tile size in pixels (memory grows with its square)")
        self.overlap_spin = _spin(0, 1024, 64, 16, "overlap between tiles, blended smoothly")
        self.batch_spin = _spin(1, 64, 4, 1, "tiles per forward pass")
        self.device_combo = QComboBox()
        self.device_combo.addItems(["auto", *available_devices()])
        self.probability_check = QCheckBox("also add a probability layer")
        self.compile_check = QCheckBox("compile (torch.compile)")
        self.compile_check.setToolTip("run the model through torch.compile: faster per slice after a slow "
                                      "first call (about a minute; cached across runs)")
        # Whole volume into the image's results store (the Data section's field, shared with Saliency):
        # lazy layers, bounded memory.
        self.store_edit = data.store_edit
        self.predict_button = QPushButton("Predict")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("model", self.model_combo)
        form.addRow("predict", self.scope_combo)
        form.addRow("slices", self.range_edit)
        form.addRow("tile", self.tile_spin)
        form.addRow("overlap", self.overlap_spin)
        form.addRow("batch", self.batch_spin)
        form.addRow("device", self.device_combo)
        form.addRow(self.probability_check)
        form.addRow(self.compile_check)
        buttons = QHBoxLayout()
        buttons.addWidget(self.predict_button)
        buttons.addWidget(self.cancel_button)
        column = QVBoxLayout(self)
        column.addLayout(form)
        column.addLayout(buttons)
        column.addWidget(self.status)

        self.scope_combo.currentTextChanged.connect(
            lambda scope: self.range_edit.setEnabled(scope == "slice range")
        )
        self.range_edit.setEnabled(False)
        self.predict_button.clicked.connect(bridge.guarded(self.start, "Prediction"))
        self.cancel_button.clicked.connect(bridge.guarded(self.cancel, "Prediction"))
        self._unsubscribe = workspace.subscribe(lambda *_: self._refresh_models())
        self.destroyed.connect(self._unsubscribe)
        self._refresh_models()

    def _refresh_models(self) -> None:
        current = self.model_combo.currentText()
        names = self.workspace.names()
        self.model_combo.clear()
        self.model_combo.addItems(names)
        if current in names:
            self.model_combo.setCurrentText(current)
        elif names:
            self.model_combo.setCurrentIndex(len(names) - 1)  # the newest model

    # -- what to predict ---------------------------------------------------------------------------
    def slices(self, selection: DataSelection) -> list[int]:
        """The slice indices the scope selects (along the model's axis)."""
        scope = self.scope_combo.currentText()
        if scope == "current slice":
            return [self.data.current_slice(selection)]
        if scope == "slice range":
            text = self.range_edit.text().strip()
            if not text:
                raise ConfigError(f"type the slices to predict as A:B (0..{selection.n_slices - 1})")
            return list(parse_slices(text, selection.n_slices))
        return list(range(selection.n_slices))

    @property
    def is_running(self) -> bool:
        return self.job is not None and self.job.is_running

    def start(self) -> bridge.Job:
        """Validate, then predict in a worker; returns the job."""
        if self.is_running:
            raise ConfigError("a prediction is running; cancel it or wait until it is done")
        name = self.model_combo.currentText()
        if not name:
            raise ConfigError("no model is loaded: train one or load a checkpoint in the Model section")
        entry = self.workspace.get(name)
        selection = dataclasses.replace(self.data.selection(), axis=int(entry.card.axis))
        slices = self.slices(selection)
        device = resolve_device(self.device_combo.currentText())
        store = self._store(name, selection)
        if not store:
            self._check_memory(selection, len(slices), entry.card.classes)
        gen = gui_friendly_threads().wrap(predict_events(
            entry.model, entry.card, selection.image.data, slices=slices,
            probabilities=self.probability_check.isChecked(), tile=self.tile_spin.value(),
            overlap=self.overlap_spin.value(), batch_size=self.batch_spin.value(), device=device,
            compile=self.compile_check.isChecked(), **store,
        ))
        self.labels_layer = None if store else self._labels_layer(name, selection)
        self._run = {"name": name, "selection": selection, "classes": entry.card.classes, "done": 0,
                     "total": len(slices)}
        self.status.setText(f"predicting {len(slices)} slice(s) with {name} on {device}")
        self.job = bridge.start_job(
            self, gen, f"Predicting with {name}", total=len(slices),
            on_event=self._event, on_done=self._done, on_finished=self._finished,
        )
        self.predict_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        return self.job

    def _store(self, name: str, selection: DataSelection) -> dict[str, Any]:
        """``store=``/``model_name=`` for a whole-volume run with a store path typed, else nothing."""
        text = self.store_edit.text().strip()
        if not text or self.scope_combo.currentText() != "whole volume":
            return {}
        store = open_image_store(text, selection.image)
        return {"store": store, "model_name": model_name_from(name)}

    def _check_memory(self, selection: DataSelection, n_slices: int, classes: int) -> None:
        """Refuse an in-memory run whose results would not fit (each slice's labels are held twice, by the
        core's result and the layer, and so are its float32 probabilities when asked for)."""
        shape = tuple(int(s) for s in selection.image.data.shape)
        plane = int(np.prod(shape)) // shape[selection.axis]
        per_voxel = 2 * (1 + (4 * max(classes, 1) if self.probability_check.isChecked() else 0))
        refuse_beyond_budget(n_slices * plane * per_voxel,
                             f"predicting {n_slices} slice(s) of a {'x'.join(map(str, shape))} volume without a store")

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    # -- layers ------------------------------------------------------------------------------------
    def _aligned(self, image: Image, lead: int = 0) -> dict[str, Any]:
        """Scale and translation of the image layer (with ``lead`` unit axes in front)."""
        return {"scale": (1.0,) * lead + tuple(image.scale), "translate": (0.0,) * lead + tuple(image.translate)}

    def _labels_layer(self, model_name: str, selection: DataSelection) -> Labels:
        name = f"{model_name} labels"
        image = selection.image
        shape = tuple(int(s) for s in image.data.shape)
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            if tuple(layer.data.shape) == shape and is_in_memory_volume(layer.data):
                layer.scale, layer.translate = image.scale, image.translate
                return layer
            self.viewer.layers.remove(layer)
        # holds only the slices predicted: a current-slice run works on a volume beyond RAM
        return self.viewer.add_labels(
            in_memory_volume(shape, (selection.axis,), "uint8"), name=name, opacity=0.5,
            **self._aligned(image), metadata={"channelbias_model": model_name, "source_image": image.name},
        )

    def _event(self, event: Any) -> None:
        if not isinstance(event, SliceDone) or event.result is None:
            return
        if self.labels_layer is None:  # into the store: the lazy layers come at the end
            self._run["done"] = event.done
            return
        axis = self._run["selection"].axis
        self.labels_layer.data[plane_index(axis, event.z)] = event.result
        self._run["done"] = event.done
        now = time.perf_counter()
        if now - self._last_refresh >= REFRESH_S:
            self._last_refresh = now
            self.labels_layer.refresh()

    def _done(self, result: PredictionResult) -> None:
        if getattr(result, "store_path", None) is not None:
            self._add_store_layers(result.store_path)
            return
        if self.probability_check.isChecked() and getattr(result, "probabilities", None) is not None:
            self._add_probabilities(result)

    def _add_probabilities(self, result: PredictionResult) -> None:
        image = self._run["selection"].image
        shape = tuple(int(s) for s in image.data.shape)
        lead = np.ndim(result.probabilities) - 3  # 1 for multi-class: (C, Z, Y, X)
        classes = tuple(np.shape(result.probabilities)[:lead])
        thin = tuple(range(lead)) + (self._run["selection"].axis + lead,)
        full = probabilities_in_volume(result, shape, out=in_memory_volume((*classes, *shape), thin, "float32"))
        name = f"{self._run['name']} probability"
        if name in self.viewer.layers:
            self.viewer.layers.remove(self.viewer.layers[name])
        self.probability_layer = self.viewer.add_image(
            full, name=name, colormap="magma", contrast_limits=(0.0, 1.0), opacity=0.6, blending="additive",
            **self._aligned(image, lead), metadata={"channelbias_model": self._run["name"]},
        )

    def _add_store_layers(self, path: Any) -> None:
        """This model's labels and probabilities from the store, as lazy (dask) layers."""

        model = model_name_from(self._run["name"])
        keys = {labels_key(model), prediction_key(model)}
        for data, meta, kind in store_layer_data(path):
            if meta.get("metadata", {}).get("key") in keys:
                if meta["name"] in self.viewer.layers:
                    self.viewer.layers.remove(self.viewer.layers[meta["name"]])
                layer = getattr(self.viewer, f"add_{kind}")(data, **meta)
                if kind == "labels":
                    self.labels_layer = layer

    def _finished(self, job: bridge.Job) -> None:
        if self.labels_layer is not None:
            self.labels_layer.refresh()
        done, total = self._run.get("done", 0), self._run.get("total", 0)
        into = f" into {self.labels_layer.name!r}" if self.labels_layer is not None else ""
        outcome = bridge.show_job_end(
            job, [self.predict_button], self.cancel_button, self.status,
            done=f"predicted {done} slice(s){into}",
            cancelled=f"cancelled after {done} of {total} slice(s); those are in the labels layer",
            failed=f"prediction failed after {done} of {total} slice(s) (see the notification)",
        )
        if outcome == "cancelled":
            show_info(self.status.text())
        self.job = None
