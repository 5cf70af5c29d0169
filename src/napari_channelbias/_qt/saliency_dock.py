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
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image
from napari.viewer import Viewer
from qtpy.QtCore import QObject, Qt, QTimer
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

from ..asymmetry.metrics import slice_asymmetry
from ..asymmetry.volume import VolumeAsymmetryResult
from ..devices import available_devices
from ..errors import ChannelBiasError, ConfigError, VolumeError
from ..events import SliceDone
from ..io.checks import validate_image
from ..models.inputs import InputSettings
from ..saliency.registry import SALIENCY_METHODS
from ..store.asymmetry import stored_asymmetry
from ..store.layout import model_name_from, saliency_key
from ..store.sinks import saliency_sink
from ..workspace import Workspace, image_token
from . import bridge
from .compact import compact_combo
from .data_section import DataSection, full_resolution, open_image_store, store_field
from .saliency_job import SliceSaliency, StoreTarget, saliency_job, store_options
from .saliency_layers import (
    META_KEY,
    channel_colormaps,
    check_memory_budget,
    prepare_layers,
    refresh_layers,
    saliency_layer_name,
    show_slice,
)
from .saliency_results import SaliencyRecord, SaliencyRequest, saliency_results
from .stored_records import group_layers, record_for_layers, record_name, stored_saliency_group

__all__ = [  # names other modules import from here (the layer and job parts moved out, re-exported)
    "ALL_MODELS", "JOINT_SCALING_TIP", "META_KEY", "SaliencySection", "SliceSaliency", "channel_colormaps",
    "connect_while_alive", "current_index", "saliency_layer_name",
]

ALL_MODELS = "all loaded models"
JOINT_SCALING_TIP = (
    "The saliency layers of one model share ONE contrast limit (joint scaling, as the asymmetry metrics "
    "do). Per-layer autoscaling would stretch a weak channel to look as bright as a strong one and hide "
    "the asymmetry; change the limits of one layer and the others follow."
)
METHOD_OPTIONS = {  # which widgets each method's options need (the registry's option names)
    name: set(method.options) for name, method in SALIENCY_METHODS.items()
}
REFRESH_S = 0.5  # store-backed layers re-read the store at most this often while slices land


# ----------------------------------------------------------------------------------------------- widget
def connect_while_alive(widget: QObject, emitter: Any, callback: Any) -> None:
    """Connect a napari event to ``callback`` and disconnect it when ``widget`` is destroyed.

    A dock can be closed while its viewer lives on; a napari event must not then call into the deleted
    Qt object.
    """
    emitter.connect(callback)

    def disconnect(*_: Any) -> None:
        with contextlib.suppress(Exception):
            emitter.disconnect(callback)

    widget.destroyed.connect(disconnect)


def current_index(viewer: Any, layer: Any, axis: int) -> int:
    """The viewer's current slice of ``layer`` along its data ``axis`` (world -> data coordinates)."""
    point = list(viewer.dims.point)[-layer.ndim:]
    position = layer.world_to_data(point)
    n = layer.data.shape[axis]
    return int(min(max(round(float(position[axis])), 0), n - 1))


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
        self._method_changed()
        for w in self._rows["image"]:
            w.setVisible(data is None)
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
        form = QFormLayout()
        self.model_combo = QComboBox()
        self.model_combo.setToolTip(f"The model to explain; '{ALL_MODELS}' runs each in turn")
        self.image_combo = QComboBox()
        self.image_combo.setToolTip("The image layer the model reads (a 3-D stack)")
        self.method_combo = QComboBox()
        for name, method in SALIENCY_METHODS.items():
            self.method_combo.addItem(name)
            self.method_combo.setItemData(self.method_combo.count() - 1, method.summary,
                                          Qt.ItemDataRole.ToolTipRole)
        self.method_combo.currentTextChanged.connect(self._method_changed)
        self.points_spin = QSpinBox()
        self.points_spin.setRange(1, 100_000)
        self.points_spin.setValue(100)
        self.points_spin.setToolTip("N: output pixels drawn (seeded), each back-propagated on its own")
        self.patch_spin = QSpinBox()
        self.patch_spin.setRange(1, 4096)
        self.patch_spin.setValue(16)
        self.patch_spin.setToolTip("Occlusion patch size P (stride P)")
        self.layer_edit = QLineEdit()
        self.layer_edit.setPlaceholderText("encoder (last stage)")
        self.layer_edit.setToolTip("Grad-CAM target layer: a dotted module name, e.g. encoder or decoder")
        self.target_spin = QSpinBox()
        self.target_spin.setRange(-1, 255)
        self.target_spin.setValue(-1)
        self.target_spin.setSpecialValueText("foreground")
        self.target_spin.setToolTip("Target class t; 'foreground' = 0 for a binary model, 1 otherwise")
        self.device_combo = QComboBox()
        self.device_combo.addItems(["auto", *available_devices()])
        # One results store per analysed image: the Data section's field when there is one (Predict
        # writes to the same store), else this section's own.
        self.store_edit = self.data.store_edit if self.data is not None else store_field()
        for combo in (self.model_combo, self.image_combo, self.method_combo):
            compact_combo(combo)  # long model or layer names must not widen the dock
        self._rows: dict[str, tuple[QLabel, QWidget]] = {}
        for key, label, widget in (
            ("model", "Model", self.model_combo), ("image", "Image", self.image_combo),
            ("method", "Method", self.method_combo), ("points", "Points N", self.points_spin),
            ("patch", "Patch", self.patch_spin), ("target_layer", "Target layer", self.layer_edit),
            ("target", "Target class", self.target_spin), ("device", "Device", self.device_combo),
            *((("store", "Store", self.store_edit),) if self.data is None else ()),
        ):
            lab = QLabel(label)
            form.addRow(lab, widget)
            self._rows[key] = (lab, widget)

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
        self.compile_check.setToolTip("Run the model through torch.compile: faster per slice after a slow "
                                      "first call (about a minute; cached across runs; Grad-CAM stays eager)")
        self.status = QLabel("No saliency computed yet.")
        self.status.setWordWrap(True)
        note = QLabel("One contrast limit per model (joint scaling)")
        note.setWordWrap(True)
        note.setToolTip(JOINT_SCALING_TIP)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.follow_check)
        layout.addWidget(self.grid_check)
        layout.addWidget(self.compile_check)
        layout.addWidget(note)
        layout.addWidget(self.status)
        layout.addStretch(1)

    def _method_changed(self, *_: Any) -> None:
        options = METHOD_OPTIONS.get(self.method_combo.currentText(), set())
        for key in ("points", "patch", "target_layer"):
            for w in self._rows[key]:
                w.setVisible(key in options)

    # -- lists ------------------------------------------------------------------------------------
    def _workspace_changed(self, event: str, name: str) -> None:
        try:
            if event == "removed" and self.results.records.pop(name, None) is not None:
                self.results.changed.emit(name)
            self._refresh_models()
        except Exception as exc:  # called from the workspace, i.e. from another dock's slot
            bridge.report_error(exc, "Saliency")

    def _refresh_models(self) -> None:
        current = self.model_combo.currentText()
        names = self.workspace.names()
        self.model_combo.clear()
        self.model_combo.addItems(names + ([ALL_MODELS] if len(names) > 1 else []))
        if current in names or (current == ALL_MODELS and len(names) > 1):
            self.model_combo.setCurrentText(current)

    def _image_layers(self) -> list[Image]:
        return [layer for layer in self.viewer.layers
                if isinstance(layer, Image) and META_KEY not in layer.metadata and not layer.rgb]

    def _refresh_images(self) -> None:
        current = self.image_combo.currentText()
        names = [layer.name for layer in self._image_layers()]
        self.image_combo.clear()
        self.image_combo.addItems(names)
        if current in names:
            self.image_combo.setCurrentText(current)

    def _layers_changed(self, event: Any = None) -> None:
        self._refresh_images()
        if event is not None and getattr(event, "value", None) is not None:
            try:
                self._adopt_stored([event.value])
            except Exception as exc:  # a napari event callback must not raise
                bridge.report_error(exc, "Saliency")

    def _adopt_stored(self, layers: list[Any]) -> None:
        """Records for the saliency images of an opened results store (once all K layers are in)."""
        for group in dict.fromkeys(g for layer in layers if (g := stored_saliency_group(layer))):
            record = record_for_layers(group, group_layers(self.viewer.layers, group))
            if record is None:
                continue
            name = record_name(self.results.records, record)
            held = self.results.get(name)
            if held is not None and held.layers and META_KEY in held.layers[0].metadata:
                continue  # this section's own run into that store: its record is live
            self.results.records[name] = record
            self.results.changed.emit(name)
        self._show_status()

    def _layer_removed(self, event: Any) -> None:
        try:
            layer = event.value
            for name, rec in list(self.results.records.items()):
                if rec.store is not None and layer in rec.layers and META_KEY not in layer.metadata:
                    del self.results.records[name]  # an opened store's layer is gone: so is its record
                    self.results.changed.emit(name)
            if isinstance(layer, Image) and META_KEY not in layer.metadata and stored_saliency_group(layer) is None:
                # The image is gone: its cached maps can never be asked for again.
                data = full_resolution(layer)
                self.workspace.saliency.evict(image=image_token(data, layer.name))
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

    def _params(self, method: str) -> tuple[tuple[str, Any], ...]:
        options = METHOD_OPTIONS[method]
        params: dict[str, Any] = {"target": None if self.target_spin.value() < 0 else self.target_spin.value()}
        if "points" in options:
            params.update(points=self.points_spin.value(), seed=0)
        if "patch" in options:
            params["patch"] = self.patch_spin.value()
        if "target_layer" in options:
            params["target_layer"] = self.layer_edit.text().strip() or None
        return tuple(sorted(params.items()))

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
        return SaliencyRequest(model_name, method, self._params(method), image_token(data, layer.name),
                               layer.name, window, int(loaded.card.axis))

    def compute(self, whole_volume: bool = False) -> None:
        """Start saliency for the current slice or the whole volume (of one model, or each in turn)."""
        if self.busy:
            raise ChannelBiasError("a saliency job is still running; wait for it or press Cancel")
        names = self.workspace.names()
        if not names:
            raise ChannelBiasError("no model loaded: load a checkpoint or train a model first "
                                   "(Model and Train sections)")
        choice = self.model_combo.currentText()
        models = names if choice == ALL_MODELS else [choice or names[0]]
        layer = self._image_layer()  # fail now, not after the first model
        if whole_volume and not self.store_edit.text().strip():
            data = full_resolution(layer)
            check_memory_budget(tuple(int(s) for s in data.shape),
                                [int(self.workspace.get(m).card.window) for m in models])
        self._queue = [(m, whole_volume) for m in models]
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
        record = self._record_for(request, target)
        if whole_volume:
            slices = list(range(data.shape[request.axis]))
        else:
            z = current_index(self.viewer, layer, request.axis)
            if z in record.computed:
                self._show_status(record)
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
        for record in self.results.records.values():
            if record.store is not None and record.layers and META_KEY in record.layers[0].metadata:
                refresh_layers(record)  # the last slices since the last throttled refresh
        if job.cancelled or job.failed is not None:
            self._queue.clear()
        try:
            self._next()
        except Exception:
            self._queue.clear()
            self.busy = False
            raise

    # -- layers -----------------------------------------------------------------------------------
    def _record_for(self, request: SaliencyRequest, target: StoreTarget | None = None) -> SaliencyRecord:
        """The model's record for ``request``: kept if it matches (same backing), else new, layers ready."""
        record = self.results.get(request.model)
        layers_alive = record is not None and all(layer in self.viewer.layers for layer in record.layers)
        own = record is not None and bool(record.layers) and META_KEY in record.layers[0].metadata
        stored = target.store.get(saliency_key(target.model, request.method)) if target is not None else None
        same_backing = record is not None and (
            (stored is None and record.store is None)
            or (stored is not None and record.store is not None and record.store.key == stored.key
                and record.store_path == target.store.path))
        if record is not None and record.request == request and layers_alive and own and same_backing:
            return record
        image = self._image_layer()
        layers = prepare_layers(self.viewer, request, image, stored,
                                target.store.path if target is not None else None)
        record = SaliencyRecord(request, layers, store=stored,
                                store_path=target.store.path if target is not None else None)
        self.results.records[request.model] = record
        if stored is not None:  # what the store already holds shows at once (a resumed run)
            record.computed.update(np.flatnonzero(stored.done_mask()).tolist())
            kept = stored_asymmetry(target.store, target.model, request.method)
            if kept is not None:
                record.per_slice.update(kept.per_slice)
            for z in sorted(record.computed)[-1:]:  # a contrast limit from one stored slice
                show_slice(record, z, stored.read_slice(z), refresh=False)
            refresh_layers(record)
        else:  # slices this request already has in the cache show at once
            n = full_resolution(image).shape[request.axis]
            for z in range(n):
                maps = self.workspace.saliency.get(request.key(z))
                if maps is not None:
                    show_slice(record, z, maps)
                    if request.window >= 3:
                        record.per_slice[z] = slice_asymmetry(maps)
        self.results.changed.emit(request.model)
        return record

    def _on_slice(self, request: SaliencyRequest, event: Any) -> None:
        if not isinstance(event, SliceDone) or not isinstance(event.result, SliceSaliency):
            return
        record = self.results.get(request.model)
        if record is None or record.request != request:
            return  # the user started something else for this model meanwhile
        now = time.perf_counter()
        refresh = record.store is None or now - self._last_refresh >= REFRESH_S
        if refresh:
            self._last_refresh = now
        show_slice(record, event.z, event.result.maps, refresh=refresh)
        if event.result.metrics is not None:
            record.per_slice[event.z] = event.result.metrics
        self._show_status(record)
        self.results.changed.emit(request.model)

    def _on_done(self, request: SaliencyRequest, result: Any) -> None:
        record = self.results.get(request.model)
        if record is None or record.request != request:
            return
        if isinstance(result, VolumeAsymmetryResult):
            record.volume = result
        self._show_status(record)
        self.results.changed.emit(request.model)

    def _show_status(self, record: SaliencyRecord | None = None) -> None:
        """One line per model with saliency: method and how many slices are computed."""
        lines = []
        for rec in self.results.records.values():
            n = rec.layers[0].data.shape[rec.request.axis] if rec.layers else 0
            where = f" (store {Path(rec.store_path).name})" if rec.store is not None else ""
            lines.append(f"{rec.request.model}: {rec.request.describe()}, {len(rec.computed)} of {n} slices{where}")
        self.status.setText("\n".join(lines) or "No saliency computed yet.")

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
        # A negative stride groups layers from the top of the list: each model's K layers share a cell.
        self.viewer.grid.stride = -(windows.pop() if windows else 3)
        self.viewer.grid.enabled = on
