"""The Quality section: which slices to proofread first (mean SA score mu), and what each layer separates.

- *Score volume* runs the core's ``quality.slice_quality.quality_events`` for one model, or two side by
  side, through the bridge (cancellable, never freezing napari). mu over z is drawn with the current
  slice marked, and the slices are listed in review order (missing mu first, then the lowest);
  clicking one moves the viewer there.
- *Score this slice* computes the SAM of the chosen layer for the current slice and adds it as a
  layer one slice thick, sitting on that slice of the image; with a labels layer chosen in the Data
  section, the per-layer SA scores (Dice of each layer's SAM against the labels) are drawn as bars,
  for both models.

The section holds state only: the scores come from the core, the figures from ``quality.figures``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..devices import available_devices, gui_friendly_threads, resolve_device
from ..errors import ConfigError
from ..events import SliceDone
from ..quality.coverage import review_order
from ..quality.figures import plot_layer_sa, plot_mu_over_z
from ..quality.layers import layer_catalog
from ..quality.slice_quality import INPUT_LAYER, models_events, quality_events
from ..workspace import Workspace
from . import bridge
from .compact import compact_combo
from .plots import FigureWidget
from .viewer_links import connect_while_alive

NO_MODEL = "(none)"
Z_ROLE = int(Qt.ItemDataRole.UserRole)


def _fmt(mu: float | None) -> str:
    return "missing" if mu is None else f"{mu:.3f}"


class QualitySection(QWidget):
    """mu over z, the review list, the SAM of a layer on the current slice, SA per layer; two models."""

    def __init__(self, viewer: Any, workspace: Workspace, data: Any = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer, self.workspace, self.data = viewer, workspace, data
        self.job: bridge.Job | None = None
        self.scores: dict[str, dict[int, Any]] = {}  # model -> z -> SliceQuality (whole-volume run)
        self.slice_scores: dict[str, Any] = {}  # model -> SliceQuality of the last "this slice" run
        self.sam_layers: dict[str, Any] = {}
        self._axis = 0
        self._run: dict[str, Any] = {}

        self.model_combo, self.compare_combo, self.layer_combo = QComboBox(), QComboBox(), QComboBox()
        for combo in (self.model_combo, self.compare_combo, self.layer_combo):
            compact_combo(combo, tooltip_shows_text=True)
        self.layer_combo.setToolTip("the layer whose segmentation-ability map (SAM) is shown")
        self.device_combo = QComboBox()
        self.device_combo.addItems(["auto", *available_devices()])
        self.volume_button = QPushButton("Score volume")
        self.volume_button.setToolTip("mu for every slice, and the review order")
        self.slice_button = QPushButton("Score this slice")
        self.slice_button.setToolTip("the SAM of the layer on the current slice; SA per layer with labels")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.mu_plot = FigureWidget(height=170)
        self.layer_plot = FigureWidget(height=190)
        self.review_list = QListWidget()
        self.review_list.setToolTip("slices to proofread first; click one to go there")
        self.review_list.setMinimumHeight(120)

        form = QFormLayout()
        form.addRow("model", self.model_combo)
        form.addRow("compare", self.compare_combo)
        form.addRow("SAM layer", self.layer_combo)
        form.addRow("device", self.device_combo)
        buttons = QHBoxLayout()  # two buttons a row: the dock must work 360 px wide
        for button in (self.volume_button, self.slice_button):
            buttons.addWidget(button)
        cancel_row = QHBoxLayout()
        cancel_row.addWidget(self.cancel_button)
        column = QVBoxLayout(self)
        column.addLayout(form)
        column.addLayout(buttons)
        column.addLayout(cancel_row)
        column.addWidget(self.status)
        column.addWidget(self.mu_plot)
        column.addWidget(QLabel("review first"))
        column.addWidget(self.review_list)
        column.addWidget(self.layer_plot)

        self.volume_button.clicked.connect(bridge.guarded(self.score_volume, "Quality"))
        self.slice_button.clicked.connect(bridge.guarded(self.score_slice, "Quality"))
        self.cancel_button.clicked.connect(bridge.guarded(self.cancel, "Quality"))
        self.review_list.itemClicked.connect(bridge.guarded(self._jump, "Quality"))
        self.model_combo.currentTextChanged.connect(bridge.guarded(self._refresh_layers, "Quality"))
        connect_while_alive(self, viewer.dims.events.current_step, self._redraw_mu)
        self._unsubscribe = workspace.subscribe(lambda *_: self._refresh_models())
        self.destroyed.connect(self._unsubscribe)
        self._refresh_models()

    # -- choices -----------------------------------------------------------------------------------
    def _refresh_models(self) -> None:
        names = self.workspace.names()
        for combo, extra in ((self.model_combo, []), (self.compare_combo, [NO_MODEL])):
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(extra + names)
            if current in extra + names:
                combo.setCurrentText(current)
            elif combo is self.model_combo and names:
                combo.setCurrentIndex(0)
            combo.blockSignals(False)
        self._refresh_layers()

    def _refresh_layers(self, *_: Any) -> None:
        name = self.model_combo.currentText()
        current = self.layer_combo.currentText()
        self.layer_combo.clear()
        if not name or name not in self.workspace:
            return
        try:
            catalog = layer_catalog(self.workspace.get(name).model)
        except ConfigError as exc:
            self.status.setText(str(exc))
            return
        names = [INPUT_LAYER, *catalog.names]
        self.layer_combo.addItems(names)
        self.layer_combo.setCurrentText(current if current in names else catalog.last_two[-1])

    def models(self) -> list[str]:
        """The chosen model, and the one to compare with (if any)."""
        first = self.model_combo.currentText()
        if not first:
            raise ConfigError("no model is loaded: train one or load a checkpoint in the Model section")
        second = self.compare_combo.currentText()
        return [first] + ([second] if second not in ("", NO_MODEL, first) else [])

    @property
    def is_running(self) -> bool:
        return self.job is not None and self.job.is_running

    # -- jobs --------------------------------------------------------------------------------------
    def _start(self, slices: list[int] | None, single: bool) -> bridge.Job:
        if self.is_running:
            raise ConfigError("a quality run is going on; cancel it or wait until it is done")
        if self.data is None:
            raise ConfigError("the Quality section needs the Data section")
        names = self.models()
        entry = self.workspace.get(names[0])
        selection = dataclasses.replace(self.data.selection(), axis=int(entry.card.axis))
        self._axis = selection.axis
        labels = selection.labels.data if selection.labels is not None else None
        z = self.data.current_slice(selection) if single else None
        layer = self.layer_combo.currentText()
        device = resolve_device(self.device_combo.currentText())
        runs = []
        for name in names:
            e = self.workspace.get(name)
            runs.append((name, quality_events(
                e.model, e.card, selection.image.data, labels if single else None,
                slices=[z] if single else slices, layers="all" if single and labels is not None else (),
                per_unit=False, inputs=False, sam_layers=[layer] if single and layer else (), device=device)))
        total = len(runs) * (1 if single else selection.n_slices)
        self._run = {"selection": selection, "single": single, "z": z, "layer": layer, "names": names}
        if not single:
            self.scores = {n: {} for n in names}
        self.status.setText(f"scoring {'slice ' + str(z) if single else 'the volume'} with {', '.join(names)}")
        self.job = bridge.start_job(self, gui_friendly_threads().wrap(models_events(runs)), "Quality",
                                    total=total, on_event=self._event, on_done=self._done,
                                    on_finished=self._finished)
        for button in (self.volume_button, self.slice_button):
            button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        return self.job

    def score_volume(self) -> bridge.Job:
        """mu of every slice for the chosen model(s), in the worker."""
        return self._start(None, single=False)

    def score_slice(self) -> bridge.Job:
        """The SAM of the chosen layer (and SA per layer with labels) for the current slice."""
        return self._start(None, single=True)

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def _event(self, event: Any) -> None:
        if not isinstance(event, SliceDone) or event.result is None:
            return
        name, q = event.result
        if self._run["single"]:
            self.slice_scores[name] = q
            return
        self.scores[name][q.z] = q
        self._redraw_mu()

    def _done(self, result: Any) -> None:
        if self._run["single"]:
            self._show_sams()
            self._draw_layers()
        else:
            self._fill_review()

    def _finished(self, job: bridge.Job) -> None:
        single = self._run["single"]
        n = sum(len(v) for v in self.scores.values())
        outcome = bridge.show_job_end(
            job, (self.volume_button, self.slice_button), self.cancel_button, self.status,
            done=f"scored slice {self._run['z']}" if single else f"scored {n} slice(s)",
            # A slice's SAMs and bars are drawn only once every model has scored it: cancelled, nothing is.
            cancelled="cancelled; nothing new is shown" if single else "cancelled; the slices scored so far are shown",
            failed="quality run failed (see the notification)",
        )
        if outcome == "cancelled" and not single:
            self._fill_review()
        self.job = None

    # -- display -----------------------------------------------------------------------------------
    def _current_z(self) -> int | None:
        try:
            return self.data.current_slice() if self.data is not None else None
        except Exception:  # no image layer any more: draw without the marker
            return None

    def _redraw_mu(self, *_: Any) -> None:
        fig = self.mu_plot.figure
        fig.clear()
        if self.scores:
            series = {name: {z: q.mu for z, q in by_z.items()} for name, by_z in self.scores.items()}
            plot_mu_over_z(fig.add_subplot(1, 1, 1), series, current=self._current_z())
        self.mu_plot.finish()

    def review_order(self) -> list[Any]:
        first = self.models()[0] if self.model_combo.currentText() else next(iter(self.scores), None)
        by_z = self.scores.get(first, {})
        return review_order({z: q.mu for z, q in by_z.items()}, {z: q.reason for z, q in by_z.items()})

    def _fill_review(self) -> None:
        self.review_list.clear()
        others = {n: s for n, s in self.scores.items() if n != self.models()[0]}
        for item in self.review_order():
            text = f"{item.rank}. z={item.z}  mu {_fmt(item.mu)}"
            for name, by_z in others.items():
                if item.z in by_z:
                    text += f"  | {name} {_fmt(by_z[item.z].mu)}"
            if item.reason and item.mu is None:
                text += f"  ({item.reason})"
            widget_item = QListWidgetItem(text)
            widget_item.setData(Z_ROLE, item.z)
            self.review_list.addItem(widget_item)

    def _jump(self, item: QListWidgetItem) -> None:
        """Move the viewer to the slice of a review item (world coordinates of the image layer)."""
        z = int(item.data(Z_ROLE))
        image = self.data.selection().image
        world_axis = self.viewer.dims.ndim - 3 + self._axis
        self.viewer.dims.set_point(world_axis, float(image.translate[self._axis] + z * image.scale[self._axis]))

    def _show_sams(self) -> None:
        selection, z, layer = self._run["selection"], self._run["z"], self._run["layer"]
        image = selection.image
        translate = list(image.translate)
        translate[selection.axis] += z * image.scale[selection.axis]
        for name in self._run["names"]:
            q = self.slice_scores.get(name)
            if q is None or layer not in q.sams:
                self.status.setText(f"{name}: no SAM on slice {z}: {q.reason if q else 'not scored'}")
                continue
            data = np.expand_dims(q.sams[layer], selection.axis)  # one slice thick, at slice z
            title = f"{name} SAM {layer}"
            if title in self.viewer.layers:
                self.viewer.layers.remove(self.viewer.layers[title])
            self.sam_layers[name] = self.viewer.add_image(
                data, name=title, scale=tuple(image.scale), translate=tuple(translate), colormap="cyan",
                blending="additive", opacity=0.5, contrast_limits=(0, 1),
                metadata={"channelbias_model": name, "channelbias_sam": layer, "slice": z},
            )

    def _draw_layers(self) -> None:
        fig = self.layer_plot.figure
        fig.clear()
        scored = {n: q for n, q in self.slice_scores.items() if n in self._run["names"] and q.layers}
        if scored:
            layers = list(next(iter(scored.values())).layers)
            values = {n: [q.layers[layer].get("truth", {}).get("whole") for layer in layers]
                      for n, q in scored.items()}
            plot_layer_sa(fig.add_subplot(1, 1, 1), layers, values, f"SA on slice {self._run['z']}", bars=True)
        self.layer_plot.finish()
