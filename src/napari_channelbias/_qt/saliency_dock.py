"""The saliency section: per-channel saliency layers of a model, for the current slice or the volume.

The K layers of a model (:mod:`.saliency_layers`: names, colours that add up to grey, one contrast
limit) are filled by a worker job (:mod:`.saliency_job`) run through :mod:`.bridge` (worker thread,
progress bar, cancel, notifications); the GUI thread only shows what arrives. Computed maps go into the
workspace's saliency cache, keyed by model, method, its parameters, image and slice, so moving back and
forth, or asking again, costs nothing.

With a results store typed under *store* (the Data section's field: one store per analysed image,
shared with Predict), a whole-volume run writes the maps, the per-slice asymmetry table and the volume
summary into the store and the layers read the store lazily as slices land, so memory stays bounded
whatever the volume's size; cancel keeps the finished slices and a rerun computes only the rest.
Without a store, a whole volume whose in-memory layers would exceed the memory budget is refused with
that fix in the message. The current slice stays instant (in memory and the cache) unless the model's
layers already read from the store. Opening a results store turns its saliency images into records too
(:mod:`.stored_records`), so the asymmetry panel shows their figures without recomputing. What the
panel needs is published per workspace in :class:`~.saliency_results.SaliencyResults`.

This module is the section itself: the buttons, the queue of models to run and the job callbacks. Its
form is :mod:`.saliency_options`, the bookkeeping of its records against the viewer's layers
:mod:`.saliency_records`; the names other modules imported from here are re-exported.
"""

from __future__ import annotations

import time
from typing import Any

from napari.layers import Image
from napari.viewer import Viewer
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ..asymmetry.volume import VolumeAsymmetryResult
from ..errors import ChannelBiasError, ConfigError, VolumeError
from ..events import SliceDone
from ..io.checks import validate_image
from ..models.inputs import InputSettings
from ..store.layout import model_name_from
from ..store.sinks import saliency_sink
from ..workspace import Workspace, image_token
from . import bridge
from .data_section import DataSection, full_resolution, open_image_store
from .saliency_job import SliceSaliency, StoreTarget, saliency_job, store_options
from .saliency_layers import META_KEY, channel_colormaps, check_memory_budget, saliency_layer_name, show_slice
from .saliency_options import ALL_MODELS, SaliencyOptions
from .saliency_records import adopt_stored, layer_removed, record_for, refresh_own_store_layers, status_text
from .saliency_results import SaliencyRecord, SaliencyRequest, saliency_results
from .viewer_links import connect_while_alive, current_index

__all__ = [  # names other modules import from here (the form, layer, job and viewer parts moved out, re-exported)
    "ALL_MODELS", "JOINT_SCALING_TIP", "META_KEY", "SaliencySection", "SliceSaliency", "channel_colormaps",
    "connect_while_alive", "current_index", "saliency_layer_name",
]

JOINT_SCALING_TIP = (
    "The saliency layers of one model share ONE contrast limit (joint scaling, as the asymmetry metrics "
    "do). Per-layer autoscaling would stretch a weak channel to look as bright as a strong one and hide "
    "the asymmetry; change the limits of one layer and the others follow."
)
REFRESH_S = 0.5  # store-backed layers re-read the store at most this often while slices land


class SaliencySection(QWidget):
    """Compute and show per-channel saliency layers of a loaded model.

    Parameters
    ----------
    viewer
        The napari viewer.
    workspace
        The viewer's shared state (models and the saliency cache).
    data
        The main dock's Data section; when given, its image choice is used (one place to pick the image)
        and this section's own image list is hidden.
    """

    def __init__(self, viewer: Viewer, workspace: Workspace, data: DataSection | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.workspace = workspace
        self.data = data
        self.results = saliency_results(workspace)
        self.job: bridge.Job | None = None
        self.busy = False  # True from a compute() until its last job's callbacks have run
        self._queue: list[tuple[str, bool]] = []
        self._last_refresh = 0.0
        self._build()
        self._refresh_models()
        self._refresh_images()
        self.options.show_image_row(data is None)
        self._unsubscribe = workspace.subscribe(self._workspace_changed)
        connect_while_alive(self, viewer.layers.events.inserted, self._layers_changed)
        connect_while_alive(self, viewer.layers.events.removed, self._layer_removed)
        self._follow_timer = QTimer(self)
        self._follow_timer.setSingleShot(True)
        self._follow_timer.setInterval(150)  # wait until the slider rests before starting a job
        self._follow_timer.timeout.connect(bridge.guarded(self._follow_slider, "Saliency"))
        connect_while_alive(self, viewer.dims.events.current_step, self._slice_moved)
        self.destroyed.connect(self._unsubscribe)
        self._adopt_stored(list(viewer.layers))  # a results store opened before this dock

    # -- layout -----------------------------------------------------------------------------------
    def _build(self) -> None:
        self.options = SaliencyOptions(self.data.store_edit if self.data is not None else None)
        # The form's widgets under the names the other docks, the tests and the benchmarks use.
        opts = self.options
        self.model_combo, self.image_combo, self.method_combo = opts.model_combo, opts.image_combo, opts.method_combo
        self.points_spin, self.patch_spin, self.layer_edit = opts.points_spin, opts.patch_spin, opts.layer_edit
        self.target_spin, self.device_combo, self.store_edit = opts.target_spin, opts.device_combo, opts.store_edit

        self.slice_button = QPushButton("Current slice")
        self.slice_button.setToolTip("Saliency of the slice shown in the viewer (cached afterwards)")
        self.volume_button = QPushButton("Whole volume")
        self.volume_button.setToolTip("Saliency of every slice, then the whole-volume asymmetry figures; "
                                      "with a results store typed, into the store (resumable, bounded memory)")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.slice_button.clicked.connect(bridge.guarded(lambda: self.compute(whole_volume=False), "Saliency"))
        self.volume_button.clicked.connect(bridge.guarded(lambda: self.compute(whole_volume=True), "Saliency"))
        self.cancel_button.clicked.connect(bridge.guarded(self.cancel, "Saliency"))
        buttons = QHBoxLayout()
        for b in (self.slice_button, self.volume_button, self.cancel_button):
            buttons.addWidget(b)

        self.follow_check = QCheckBox("Follow the slider")
        self.follow_check.setToolTip("Start a current-slice job whenever the viewer rests on a new slice")
        self.grid_check = QCheckBox("Models side by side (grid)")
        self.grid_check.setToolTip("napari grid view with one model's K saliency layers per cell")
        self.grid_check.toggled.connect(bridge.guarded(self._grid_toggled, "Saliency"))
        self.compile_check = QCheckBox("Compile (torch.compile)")
        self.compile_check.setToolTip("Run the model through torch.compile on a GPU: faster per slice after a "
                                      "slow first call (about a minute; cached across runs; Grad-CAM stays "
                                      "eager). On the CPU saliency stays eager: compiled, it measured slower")
        self.status = QLabel("No saliency computed yet.")
        self.status.setWordWrap(True)
        note = QLabel("One contrast limit per model (joint scaling)")
        note.setWordWrap(True)
        note.setToolTip(JOINT_SCALING_TIP)

        layout = QVBoxLayout(self)
        layout.addWidget(self.options)
        layout.addLayout(buttons)
        layout.addWidget(self.follow_check)
        layout.addWidget(self.grid_check)
        layout.addWidget(self.compile_check)
        layout.addWidget(note)
        layout.addWidget(self.status)
        layout.addStretch(1)

    # -- lists ------------------------------------------------------------------------------------
    def _workspace_changed(self, event: str, name: str) -> None:
        try:
            if event == "removed" and self.results.records.pop(name, None) is not None:
                self.results.changed.emit(name)
            self._refresh_models()
        except Exception as exc:  # called from the workspace, i.e. from another dock's slot
            bridge.report_error(exc, "Saliency")

    def _refresh_models(self) -> None:
        self.options.set_models(self.workspace.names())

    def _image_layers(self) -> list[Image]:
        return [layer for layer in self.viewer.layers
                if isinstance(layer, Image) and META_KEY not in layer.metadata and not layer.rgb]

    def _refresh_images(self) -> None:
        self.options.set_images([layer.name for layer in self._image_layers()])

    def _layers_changed(self, event: Any = None) -> None:
        self._refresh_images()
        if event is not None and getattr(event, "value", None) is not None:
            try:
                self._adopt_stored([event.value])
            except Exception as exc:  # a napari event callback must not raise
                bridge.report_error(exc, "Saliency")

    def _adopt_stored(self, layers: list[Any]) -> None:
        adopt_stored(self.viewer, self.results, layers)
        self._show_status()

    def _layer_removed(self, event: Any) -> None:
        try:
            layer_removed(self.results, self.workspace.saliency, event.value)
            self._refresh_images()
        except Exception as exc:  # a napari event callback must not raise
            bridge.report_error(exc, "Saliency")

    # -- computing --------------------------------------------------------------------------------
    def _image_layer(self) -> Image:
        if self.data is not None:
            return self.data.image_layer()
        name = self.image_combo.currentText()
        for layer in self._image_layers():
            if layer.name == name:
                return layer
        raise VolumeError("no image layer to explain: open a 3-D stack (File > Open, or the Data section) "
                          "and pick it under Image")

    def request_for(self, model_name: str) -> SaliencyRequest:
        """The request the current settings make for ``model_name`` on the chosen image."""
        loaded = self.workspace.get(model_name)
        layer = self._image_layer()
        data = full_resolution(layer)
        window = int(loaded.card.window)
        validate_image(data, window=window, name=f"image layer {layer.name!r}", check_values=False)
        if int(loaded.card.classes) <= max(self.target_spin.value(), 0):
            raise ConfigError(f"target class {self.target_spin.value()} does not exist in model "
                              f"{model_name!r}, which has {loaded.card.classes} output channel(s)")
        method = self.method_combo.currentText()
        return SaliencyRequest(model_name, method, self.options.params(method), image_token(data, layer.name),
                               layer.name, window, int(loaded.card.axis))

    def compute(self, whole_volume: bool = False) -> None:
        """Start saliency for the current slice or the whole volume (of one model, or each in turn)."""
        if self.busy:
            raise ChannelBiasError("a saliency job is still running; wait for it or press Cancel")
        names = self.workspace.names()
        if not names:
            raise ChannelBiasError("no model loaded: load a checkpoint or train a model first "
                                   "(Model and Train sections)")
        models = self.options.chosen_models(names)
        layer = self._image_layer()  # fail now, not after the first model
        if whole_volume and not self.store_edit.text().strip():
            data = full_resolution(layer)
            check_memory_budget(tuple(int(s) for s in data.shape),
                                [int(self.workspace.get(m).card.window) for m in models])
        self._queue = [(m, whole_volume) for m in models]
        self._next_or_stop()

    def _next_or_stop(self) -> None:
        """Start the next queued model; on an error nothing more is queued and the section is idle."""
        try:
            self._next()
        except Exception:
            self._queue.clear()
            self.busy = False
            raise

    def _next(self) -> None:
        if not self._queue:
            self.busy = False
            return
        self.busy = True
        model_name, whole_volume = self._queue.pop(0)
        request = self.request_for(model_name)
        layer = self._image_layer()
        data = full_resolution(layer)
        loaded = self.workspace.get(model_name)
        held = self.results.get(model_name)
        into_store = bool(self.store_edit.text().strip()) and (
            whole_volume or (held is not None and held.request == request and held.store is not None))
        target = self._store_target(request, loaded, data, layer) if into_store else None
        record = record_for(self.viewer, self.results, self.workspace.saliency, request, layer, target)
        if whole_volume:
            slices = list(range(data.shape[request.axis]))
        else:
            z = current_index(self.viewer, layer, request.axis)
            if z in record.computed:
                self._show_status()
                self._next()
                return
            slices = [z]
        device = self.device_combo.currentText()
        gen = saliency_job(request, loaded.model, loaded.card, data, slices, self.workspace.saliency,
                           device, whole_volume, compile=self.compile_check.isChecked(), store=target)
        self._set_running(True)
        scope = "whole volume" if whole_volume else f"slice {slices[0]}"
        where = f" into {target.store.path.name}" if target is not None else ""
        self.job = bridge.start_job(
            self, gen, f"Saliency {model_name}, {request.method}, {scope}{where}", total=len(slices),
            on_event=lambda ev: self._on_slice(request, ev),
            on_done=lambda result: self._on_done(request, result),
            on_error=lambda exc: self._queue.clear(),
            on_finished=self._on_finished,
        )

    def _store_target(self, request: SaliencyRequest, loaded: Any, data: Any, layer: Image) -> StoreTarget:
        """The typed store, with this model's saliency image created (or checked against) in it."""
        store = open_image_store(self.store_edit.text().strip(), layer)
        name = model_name_from(request.model)
        settings = InputSettings.from_any(loaded.card)
        # Created here, in the GUI thread: a store holding this image from other settings is refused
        # now, as a notification, before any job starts; the job's own sink then finds it ready.
        saliency_sink(store, name, loaded.model, loaded.card, settings, data, request.method,
                      store_options(request.params, self.compile_check.isChecked()))
        return StoreTarget(store, name)

    def cancel(self) -> None:
        """Stop the running job (and the models queued after it)."""
        self._queue.clear()
        if self.job is not None:
            self.job.cancel()

    def _set_running(self, running: bool) -> None:
        self.slice_button.setEnabled(not running)
        self.volume_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def _on_finished(self, job: bridge.Job) -> None:
        self._set_running(False)
        refresh_own_store_layers(self.results)  # the last slices since the last throttled refresh
        if job.cancelled or job.failed is not None:
            self._queue.clear()
        self._next_or_stop()

    # -- results ----------------------------------------------------------------------------------
    def _record_of(self, request: SaliencyRequest) -> SaliencyRecord | None:
        """The model's record if it is still for ``request`` (the user may have started another since)."""
        record = self.results.get(request.model)
        return record if record is not None and record.request == request else None

    def _on_slice(self, request: SaliencyRequest, event: Any) -> None:
        if not isinstance(event, SliceDone) or not isinstance(event.result, SliceSaliency):
            return
        record = self._record_of(request)
        if record is None:
            return
        now = time.perf_counter()
        refresh = record.store is None or now - self._last_refresh >= REFRESH_S
        if refresh:
            self._last_refresh = now
        show_slice(record, event.z, event.result.maps, refresh=refresh)
        if event.result.metrics is not None:
            record.per_slice[event.z] = event.result.metrics
        self._show_status()
        self.results.changed.emit(request.model)

    def _on_done(self, request: SaliencyRequest, result: Any) -> None:
        record = self._record_of(request)
        if record is None:
            return
        if isinstance(result, VolumeAsymmetryResult):
            record.volume = result
        self._show_status()
        self.results.changed.emit(request.model)

    def _show_status(self) -> None:
        self.status.setText(status_text(self.results))

    # -- viewer interaction -----------------------------------------------------------------------
    def _slice_moved(self, *_: Any) -> None:
        if self.follow_check.isChecked():
            self._follow_timer.start()

    def _follow_slider(self) -> None:
        if self.busy:
            return
        if self.workspace.names() and self._image_layers():
            self.compute(whole_volume=False)

    def _grid_toggled(self) -> None:
        on = self.grid_check.isChecked()
        windows = {r.request.window for r in self.results.records.values()}
        if on and len(windows) > 1:
            raise ConfigError("side-by-side view needs models with the same window size; found "
                              f"{sorted(windows)}")
        # napari 0.9 moved the grid to viewer.canvas (viewer.grid warns); older napari only has viewer.grid.
        grid = self.viewer.canvas.grid if hasattr(self.viewer, "canvas") else self.viewer.grid
        # A negative stride groups layers from the top of the list: each model's K layers share a cell.
        grid.stride = -(windows.pop() if windows else 3)
        grid.enabled = on
