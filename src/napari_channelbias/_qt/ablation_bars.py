"""Channel ablation in the asymmetry panel: is the attribution faithful? The controls, the runs, the cache.

Beside the saliency shares the panel draws, per input channel, how much the model loses when that
channel is removed (:mod:`napari_channelbias.quality.ablation`: the channel replaced by its slice mean,
or by a copy of the centre slice). *Ablation: current slice* runs it for the slice under the slider,
*Ablation: whole volume* for every slice (cancellable; the slices done so far stay), both in the worker
through :mod:`.bridge`, for the models the panel shows: the loaded model named by the saliency record,
on the image layer the record was computed on, with the window, axis and normalisation of its card.
The measure is the label-free ``prob_drop`` (the relative drop of the summed foreground probability);
with a labels layer chosen, ``dice_drop`` (the drop of Dice against those labels).

Results are cached per (model, image, labels, mode, slice), so moving the slider back shows them at
once and a second run skips what is known. A missing value (the centre channel in ``centre`` mode, an
empty prediction) stays missing (None), never 0. Painting a labels layer (napari's ``paint`` event:
a brush stroke, a fill, ``layer.paint``) or replacing its data (``data``) drops every result measured
against that layer, so its ``dice_drop`` shows as not run instead of stale; a run measuring against it
at that moment stops and keeps nothing. (napari's undo/redo and writing into ``layer.data`` directly
emit neither event, so they are not noticed.)
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Generator, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from napari.layers import Labels
from qtpy.QtWidgets import QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from ..asymmetry.figures import drop_limits
from ..devices import gui_friendly_threads
from ..errors import ConfigError
from ..events import SliceDone
from ..models.inputs import InputSettings
from ..quality.ablation import MODES, ablation_events
from ..windowing import n_slices_along
from ..workspace import Workspace, image_token
from . import bridge
from .compact import compact_combo
from .data_section import full_resolution
from .viewer_links import connect_while_alive

NO_LABELS = "(none: prob_drop)"
MEASURE_NO_LABELS, MEASURE_WITH_LABELS = "prob_drop", "dice_drop"
AblationKey = tuple[str, Hashable, Hashable, str, int]  # model, image, labels, mode, z


@dataclass(frozen=True)
class AblationRun:
    """One model's share of an ablation job: what to run it on, and which slices are still to do."""

    name: str
    model: Any
    card: Any
    volume: Any
    labels: Any
    slices: tuple[int, ...]
    image: Hashable
    labels_token: Hashable


def ablation_slices_events(runs: Sequence[AblationRun], mode: str
                           ) -> Generator[SliceDone, None, int]:
    """The core's :func:`~napari_channelbias.quality.ablation.ablation_events` for each model in turn.

    One core run per model (its set-up, the label check included, happens once); each finished slice
    comes back at once as ``SliceDone.result = (name, z, rows)``, so a cancelled run keeps the slices
    done. Progress counts over all runs. Returns the number of slices done.
    """
    total = sum(len(run.slices) for run in runs)
    done = 0
    for run in runs:
        # On the device the model already lives on: the model is shared with the other sections, and moving
        # it here (device 'auto') could pull it from under a saliency job running on another device.
        device = next((p.device for p in run.model.parameters()), "cpu")
        gen = ablation_events(run.model, run.card, run.volume, run.labels, slices=run.slices, modes=(mode,),
                              device=device)
        try:
            for event in gen:
                if isinstance(event, SliceDone):
                    done += 1
                    yield SliceDone("ablation", event.z, done, total, result=(run.name, event.z, event.result))
        finally:
            gen.close()
    return done


class AblationControls(QGroupBox):
    """Mode and labels choices, the two run buttons and Cancel; the cache of results.

    Parameters
    ----------
    viewer, workspace
        The napari viewer (its image and labels layers) and the workspace (the loaded models).
    records
        Returns the panel's shown saliency records, by model name.
    current_z
        Returns the panel's current slice of a model (None when unknown).
    on_changed
        Called when something to draw changed (a result arrived, the mode or labels changed).
    """

    def __init__(self, viewer: Any, workspace: Workspace, records: Callable[[], dict[str, Any]],
                 current_z: Callable[[str], int | None], on_changed: Callable[[], None]) -> None:
        super().__init__("Ablation: is the attribution faithful?")
        self.viewer, self.workspace = viewer, workspace
        self._records, self._current_z, self._on_changed = records, current_z, on_changed
        self.cache: dict[AblationKey, list[dict[str, Any]]] = {}
        self.job: bridge.Job | None = None
        # Which labels tokens each labels layer's cached results were measured with (by id of the layer:
        # replacing its data changes the token, so the old token cannot be rebuilt from the layer).
        self._measured: dict[int, set[Hashable]] = {}
        self._watched: dict[int, Callable[..., None]] = {}  # id(labels layer) -> its edit callback
        self._run_labels: int | None = None  # id of the labels layer the running job measures against
        self._stale_run: str | None = None  # that layer's name once it was edited during the run

        self.mode_combo = QComboBox()
        self.mode_combo.addItems(["centre", "mean"])
        self.mode_combo.setToolTip("centre: the channel replaced by a copy of the centre slice; "
                                   "mean: by its own mean over the slice")
        self.labels_combo = QComboBox()
        compact_combo(self.labels_combo, tooltip_shows_text=True)
        self.labels_combo.setToolTip("With a labels layer: dice_drop (Dice against the labels, clean minus "
                                     "ablated); without: the label-free prob_drop (relative drop of the "
                                     "summed foreground probability)")
        self.slice_button = QPushButton("Ablation: current slice")
        self.volume_button = QPushButton("Ablation: whole volume")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.status = QLabel("Removes one input channel at a time and measures what the shown models lose.")
        self.status.setWordWrap(True)
        form = QFormLayout()
        form.addRow("mode", self.mode_combo)
        form.addRow("labels", self.labels_combo)
        buttons = QHBoxLayout()
        buttons.addWidget(self.slice_button)
        buttons.addWidget(self.volume_button)
        column = QVBoxLayout(self)
        column.addLayout(form)
        column.addLayout(buttons)
        column.addWidget(self.cancel_button)
        column.addWidget(self.status)

        self.slice_button.clicked.connect(bridge.guarded(lambda: self.run(whole_volume=False), "Ablation"))
        self.volume_button.clicked.connect(bridge.guarded(lambda: self.run(whole_volume=True), "Ablation"))
        self.cancel_button.clicked.connect(bridge.guarded(self.cancel, "Ablation"))
        for combo in (self.mode_combo, self.labels_combo):
            combo.currentTextChanged.connect(bridge.guarded(lambda *_: self._on_changed(), "Ablation"))
        connect_while_alive(self, viewer.layers.events.inserted, self._layer_inserted)
        connect_while_alive(self, viewer.layers.events.removed, self._layer_removed)
        watched = self._watched  # not self: the closure runs while the widget is being destroyed
        self.destroyed.connect(lambda *_: _unwatch_all(viewer, watched))
        for layer in viewer.layers:
            self._watch(layer)
        self._refresh_labels()

    # -- labels layers ----------------------------------------------------------------------------
    def _layer_inserted(self, event: Any) -> None:
        try:
            self._watch(event.value)
        except Exception as exc:  # a napari event callback must not raise
            bridge.report_error(exc, "Ablation")
        self._refresh_labels()

    def _layer_removed(self, event: Any) -> None:
        _unwatch(event.value, self._watched)
        self._measured.pop(id(event.value), None)  # its id may be reused by a new layer
        self._refresh_labels()

    def _watch(self, layer: Any) -> None:
        """Listen to the edits of a labels layer: painted (``paint``) or its data replaced (``data``)."""
        if not isinstance(layer, Labels) or id(layer) in self._watched:
            return
        ref = weakref.ref(layer)  # the layer's own emitters must not keep it alive through this callback

        def edited(*_: Any) -> None:
            target = ref()
            if target is not None:
                try:
                    self.labels_edited(target)
                except Exception as exc:  # a napari event callback must not raise
                    bridge.report_error(exc, "Ablation")

        layer.events.paint.connect(edited)
        layer.events.data.connect(edited)
        self._watched[id(layer)] = edited

    def labels_edited(self, layer: Any) -> None:
        """``layer``'s labels changed: drop what was measured against them, stop a run measuring now."""
        tokens = self._measured.pop(id(layer), set())
        stale = [key for key in self.cache if key[2] in tokens]
        for key in stale:
            del self.cache[key]
        # `job`, not `is_running`: a job whose worker has stopped may still have results queued for the GUI.
        if self.job is not None and self._run_labels == id(layer):
            self._stale_run = layer.name  # its results from now on are ignored, then it stops
            self.job.cancel()
        elif not stale:
            return
        self.status.setText(f"the labels {layer.name!r} changed: the ablation results measured against them "
                            "were dropped; run it again")
        self._on_changed()

    # -- choices ----------------------------------------------------------------------------------
    def _refresh_labels(self, *_: Any) -> None:
        try:
            names = [layer.name for layer in self.viewer.layers if isinstance(layer, Labels)]
            current = self.labels_combo.currentText()
            self.labels_combo.blockSignals(True)
            self.labels_combo.clear()
            self.labels_combo.addItems([NO_LABELS, *names])
            self.labels_combo.setCurrentText(current if current in names else NO_LABELS)
            self.labels_combo.blockSignals(False)
            if current and current != self.labels_combo.currentText():  # (empty: being built)
                self._on_changed()
        except Exception as exc:  # a napari event callback must not raise
            bridge.report_error(exc, "Ablation")

    @property
    def mode(self) -> str:
        return self.mode_combo.currentText()

    def _labels_layer(self) -> Any:
        name = self.labels_combo.currentText()
        return self.viewer.layers[name] if name != NO_LABELS and name in self.viewer.layers else None

    @property
    def measure(self) -> str:
        """``dice_drop`` with a labels layer chosen, else ``prob_drop``."""
        return MEASURE_WITH_LABELS if self._labels_layer() is not None else MEASURE_NO_LABELS

    def _labels_token(self) -> Hashable:
        layer = self._labels_layer()
        return None if layer is None else image_token(full_resolution(layer), layer.name)

    @property
    def is_running(self) -> bool:
        return self.job is not None and self.job.is_running

    # -- what to draw -----------------------------------------------------------------------------
    def forget_model(self, name: str) -> None:
        """Drop the cached results of the model called ``name`` (it was removed, or the name reused)."""
        for key in [k for k in self.cache if k[0] == name]:
            del self.cache[key]

    def _key(self, name: str, rec: Any, z: int) -> AblationKey:
        return (name, rec.request.image, self._labels_token(), self.mode, int(z))

    def _values(self, rows: list[dict[str, Any]], window: int) -> list[float | None]:
        by_channel = {int(row["channel"]): row.get(self.measure) for row in rows}
        return [by_channel.get(c) for c in range(window)]

    def drops(self, records: dict[str, Any], z_of: dict[str, int]) -> dict[str, list[float | None]]:
        """Per shown model that has any result under the current choices: its drops on its current slice."""
        labels, mode = self._labels_token(), self.mode
        out: dict[str, list[float | None]] = {}
        for name, rec in records.items():
            mine = {k[4]: rows for k, rows in self.cache.items()
                    if k[:4] == (name, rec.request.image, labels, mode)}
            if mine:
                rows = mine.get(z_of.get(name, -1))
                out[name] = self._values(rows, rec.request.window) if rows else [None] * rec.request.window
        return out

    def limits(self, records: dict[str, Any]) -> tuple[float, float] | None:
        """The ablation axis limits: every cached drop of the shown models under the current choices."""
        labels, mode = self._labels_token(), self.mode
        values = [v for (name, image, lab, m, _), rows in self.cache.items()
                  if name in records and image == records[name].request.image and (lab, m) == (labels, mode)
                  for v in self._values(rows, records[name].request.window)
                  if v is not None and np.isfinite(v)]
        return drop_limits(values) if values else None

    def label(self) -> str:
        return f"{self.measure}, {self.mode}"

    def rows(self, name: str, rec: Any) -> list[dict[str, Any]]:
        """CSV rows of ``name``'s cached results on its image: one per (labels, mode, slice)."""
        out = []
        for (model, image, labels, mode, z), rows in sorted(self.cache.items(), key=lambda kv: repr(kv[0])):
            if model != name or image != rec.request.image:
                continue
            row: dict[str, Any] = {"scope": "ablation", "z": z, "ablation_mode": mode,
                                   "ablation_labels": labels[0] if labels else ""}
            for r in sorted(rows, key=lambda r: r["channel"]):
                for measure in ("prob_drop", "dice_drop", "change"):
                    value = r.get(measure)
                    row[f"ablation_{measure}_{r['offset']:+d}"] = "" if value is None else value
            out.append(row)
        return out

    # -- runs -------------------------------------------------------------------------------------
    def run(self, whole_volume: bool) -> bridge.Job | None:
        """Ablate each input channel of the current slice (or every slice) for the shown models."""
        if self.is_running:
            raise ConfigError("an ablation run is going on; cancel it or wait until it is done")
        if self.mode not in MODES:
            raise ConfigError(f"unknown ablation mode {self.mode!r}")
        records = self._records()
        if not records:
            raise ConfigError("no model shown: compute saliency first (Saliency section); the ablation "
                              "runs for the models the asymmetry panel shows")
        labels_layer = self._labels_layer()
        labels_token = self._labels_token()
        runs = []
        for name, rec in records.items():
            if rec.request.model not in self.workspace:
                raise ConfigError(f"model {rec.request.model!r} is no longer loaded (Model section)")
            if rec.request.image_name not in self.viewer.layers:
                raise ConfigError(f"the image layer {rec.request.image_name!r} of {name}'s saliency is gone")
            entry = self.workspace.get(rec.request.model)
            volume = full_resolution(self.viewer.layers[rec.request.image_name])
            if whole_volume:
                slices = range(n_slices_along(volume, InputSettings.from_any(entry.card).axis))
            else:
                z = self._current_z(name)
                if z is None:
                    raise ConfigError(f"no current slice for {name}")
                slices = [z]
            todo = tuple(z for z in slices if self._key(name, rec, z) not in self.cache)
            if todo:
                runs.append(AblationRun(name, entry.model, entry.card, volume,
                                        None if labels_layer is None else full_resolution(labels_layer), todo,
                                        rec.request.image, labels_token))
        if not runs:
            self.status.setText("already computed: shown from the cache")
            self._on_changed()
            return None
        self._run_keys = {run.name: (run.image, run.labels_token, self.mode) for run in runs}
        self._run_labels, self._stale_run = (None if labels_layer is None else id(labels_layer)), None
        if labels_layer is not None:
            self._measured.setdefault(id(labels_layer), set()).add(labels_token)
        total = sum(len(run.slices) for run in runs)
        self.status.setText(f"ablation ({self.mode}) of {total} slice(s) x {len(runs)} model(s) ...")
        self.job = bridge.start_job(self, gui_friendly_threads().wrap(ablation_slices_events(runs, self.mode)),
                                    "Ablation", total=total, on_event=self._event, on_finished=self._finished)
        for button in (self.slice_button, self.volume_button):
            button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        return self.job

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def _event(self, event: Any) -> None:
        if not isinstance(event, SliceDone) or event.result is None:
            return
        if self._stale_run is not None:
            return  # measured (maybe in part) against labels that have changed since
        name, z, rows = event.result
        image, labels, mode = self._run_keys[name]
        self.cache[(name, image, labels, mode, int(z))] = rows
        self._on_changed()

    def _finished(self, job: bridge.Job) -> None:
        stale = self._stale_run
        # Done or stopped in time, a run whose labels changed under it kept nothing: say so, not "done".
        dropped = f"the labels {stale!r} changed during the run: nothing of it is kept; run it again"
        bridge.show_job_end(job, (self.slice_button, self.volume_button), self.cancel_button, self.status,
                            done=dropped if stale is not None else f"ablation done ({self.label()})",
                            cancelled=dropped if stale is not None else "cancelled; the slices done so far are shown",
                            failed="ablation failed (see the notification)")
        self.job, self._run_labels, self._stale_run = None, None, None


def _unwatch(layer: Any, watched: dict[int, Callable[..., None]]) -> None:
    """Disconnect the edit callback of ``layer`` (a removed layer must not be kept alive by it)."""
    edited = watched.pop(id(layer), None)
    if edited is not None:
        for emitter in (layer.events.paint, layer.events.data):
            with contextlib.suppress(Exception):
                emitter.disconnect(edited)


def _unwatch_all(viewer: Any, watched: dict[int, Callable[..., None]]) -> None:
    with contextlib.suppress(Exception):  # the viewer may be closing too
        for layer in list(viewer.layers):
            _unwatch(layer, watched)
