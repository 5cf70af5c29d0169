"""The saliency section: per-channel saliency layers of a model, for the current slice or the volume.

For a model with a window of K slices, saliency produces K maps per slice, one per input channel
(channel c holds slice z - r + c). They are shown as K image layers ``"<model> saliency z-1"``,
``"... z"``, ``"... z+1"`` with additive blending and colours that add up to grey where attention is
equal (red, green, blue for K = 3), so a channel that gets more attention tints the overlay at a glance.
The K layers of one model share *one* contrast limit (joint scaling, as the metrics do): per-layer
autoscaling would stretch a weak channel to look as bright as a strong one and hide the asymmetry.

Layers are full ``(Z, Y, X)`` volumes aligned with the image (its scale, translate, rotate, shear and
affine) and are zero until a slice is computed; zeros cost no memory until written (the OS commits
pages on first write). Computed maps go into the workspace's saliency cache, keyed by model, method,
its parameters, image and slice, so moving back and forth, or asking again, costs nothing.

All work runs through :mod:`.bridge` (worker thread, progress bar, cancel, notifications). The worker
also computes each slice's asymmetry metrics with the core (:func:`~napari_channelbias.asymmetry.
slice_asymmetry`, or :class:`~napari_channelbias.volume_asymmetry.VolumeAsymmetry` over a whole-volume run), so
the GUI thread only copies maps into layers. What the asymmetry panel needs is published per workspace
in :class:`~.saliency_results.SaliencyResults` (see :mod:`.saliency_results`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from napari.experimental import link_layers, unlink_layers
from napari.layers import Image
from napari.utils.colormaps import Colormap
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

from ..asymmetry.figures import channel_labels
from ..asymmetry.metrics import SliceAsymmetry, slice_asymmetry
from ..asymmetry.volume import VolumeAsymmetry, VolumeAsymmetryResult
from ..devices import available_devices
from ..errors import ChannelBiasError, ConfigError, VolumeError
from ..events import SliceDone
from ..io.checks import validate_image
from ..models.inputs import InputSettings
from ..saliency.registry import SALIENCY_METHODS
from ..saliency.volume import saliency_events
from ..workspace import Workspace, image_token
from . import bridge
from .compact import compact_combo
from .data_section import SALIENCY_LAYER_KEY, DataSection
from .saliency_results import SaliencyRecord, SaliencyRequest, saliency_results

ALL_MODELS = "all loaded models"
META_KEY = SALIENCY_LAYER_KEY  # marks our layers; the Data section leaves them out of its image list
JOINT_SCALING_TIP = (
    "The saliency layers of one model share ONE contrast limit (joint scaling, as the asymmetry metrics "
    "do). Per-layer autoscaling would stretch a weak channel to look as bright as a strong one and hide "
    "the asymmetry; change the limits of one layer and the others follow."
)
METHOD_OPTIONS = {  # which widgets each method's options need (the registry's option names)
    name: set(method.options) for name, method in SALIENCY_METHODS.items()
}


# ---------------------------------------------------------------------------------------- naming, colours
def saliency_layer_name(model: str, channel_label: str) -> str:
    """``"lite0-imagenet saliency z-1"``: the layer of one model's channel."""
    return f"{model} saliency {channel_label}"


def channel_colormaps(window: int) -> list[str | Colormap]:
    """One colormap per channel whose colours add up to grey when all channels are equally bright.

    K = 3 uses napari's red, green and blue. Other K use colours ``0.5 + 0.5 cos(2 pi (c / K - j / 3))``
    for R, G, B (j = 0, 1, 2): K hues evenly spaced round the colour wheel whose cosines cancel, so the K
    colours sum to exactly equal R, G and B. K = 1 is gray.
    """
    if window == 1:
        return ["gray"]
    if window == 3:
        return ["red", "green", "blue"]
    maps: list[str | Colormap] = []
    for c, label in enumerate(channel_labels(window)):
        rgb = [0.5 + 0.5 * math.cos(2.0 * math.pi * (c / window - j / 3.0)) for j in range(3)]
        maps.append(Colormap([[0.0, 0.0, 0.0, 1.0], [*rgb, 1.0]], name=f"channelbias {label}"))
    return maps


# ------------------------------------------------------------------------------------------ worker side
@dataclass(frozen=True)
class SliceSaliency:
    """What the worker hands the GUI for one slice: the maps and their metrics (None for K < 3)."""

    maps: np.ndarray
    metrics: SliceAsymmetry | None


def _saliency_job(request: SaliencyRequest, model: Any, card: Any, volume: Any, slices: Sequence[int],
                  cache: Any, device: str, whole_volume: bool, compile: bool = False
                  ) -> Generator[Any, None, Any]:
    """Cached slices first, then the core's saliency_events for the rest; metrics computed alongside.

    Runs in the worker thread (the cache is thread-safe). Returns the whole volume's
    VolumeAsymmetryResult for a whole-volume run of a model with K >= 3, else None.
    """
    acc = VolumeAsymmetry(request.window) if whole_volume and request.window >= 3 else None
    total, done = len(slices), 0

    def package(z: int, maps: np.ndarray) -> SliceDone:
        nonlocal done
        done += 1
        if acc is not None:
            metrics = acc.add(z, maps)
        else:
            metrics = slice_asymmetry(maps) if request.window >= 3 else None
        return SliceDone("saliency", z, done, total, result=SliceSaliency(maps, metrics))

    todo = []
    for z in slices:
        maps = cache.get(request.key(z))
        if maps is None:
            todo.append(z)
        else:
            yield package(z, maps)
    if todo:
        # collect=False: each slice goes into the cache and the layers as it comes; a second copy of the
        # volume's maps inside the core would double the memory of a whole-volume run for nothing.
        settings = InputSettings(request.window, card.padding, request.axis, card.normalizer())
        gen = saliency_events(model, settings, volume, request.method, slices=todo, device=device,
                              collect=False, compile=compile, **dict(request.params))
        try:
            for event in gen:
                if isinstance(event, SliceDone):
                    cache.put(request.key(event.z), event.result)
                    yield package(event.z, event.result)
                else:
                    yield event
        finally:
            gen.close()
    return acc.result() if acc is not None else None


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
        for combo in (self.model_combo, self.image_combo, self.method_combo):
            compact_combo(combo)  # long model or layer names must not widen the dock
        self._rows: dict[str, tuple[QLabel, QWidget]] = {}
        for key, label, widget in (
            ("model", "Model", self.model_combo), ("image", "Image", self.image_combo),
            ("method", "Method", self.method_combo), ("points", "Points N", self.points_spin),
            ("patch", "Patch", self.patch_spin), ("target_layer", "Target layer", self.layer_edit),
            ("target", "Target class", self.target_spin), ("device", "Device", self.device_combo),
        ):
            lab = QLabel(label)
            form.addRow(lab, widget)
            self._rows[key] = (lab, widget)

        self.slice_button = QPushButton("Current slice")
        self.slice_button.setToolTip("Saliency of the slice shown in the viewer (cached afterwards)")
        self.volume_button = QPushButton("Whole volume")
        self.volume_button.setToolTip("Saliency of every slice, then the whole-volume asymmetry figures")
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

    def _layers_changed(self, *_: Any) -> None:
        self._refresh_images()

    def _layer_removed(self, event: Any) -> None:
        try:
            layer = event.value
            if isinstance(layer, Image) and META_KEY not in layer.metadata:
                # The image is gone: its cached maps can never be asked for again.
                data = layer.data[0] if layer.multiscale else layer.data
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
        data = layer.data[0] if layer.multiscale else layer.data
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
        self._image_layer()  # fail now, not after the first model
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
        record = self._record_for(request)
        layer = self._image_layer()
        data = layer.data[0] if layer.multiscale else layer.data
        if whole_volume:
            slices = list(range(data.shape[request.axis]))
        else:
            z = current_index(self.viewer, layer, request.axis)
            if z in record.computed:
                self._show_status(record)
                self._next()
                return
            slices = [z]
        loaded = self.workspace.get(model_name)
        device = self.device_combo.currentText()
        gen = _saliency_job(request, loaded.model, loaded.card, data, slices, self.workspace.saliency,
                            device, whole_volume, compile=self.compile_check.isChecked())
        self._set_running(True)
        scope = "whole volume" if whole_volume else f"slice {slices[0]}"
        self.job = bridge.start_job(
            self, gen, f"Saliency {model_name}, {request.method}, {scope}", total=len(slices),
            on_event=lambda ev: self._on_slice(request, ev),
            on_done=lambda result: self._on_done(request, result),
            on_error=lambda exc: self._queue.clear(),
            on_finished=self._on_finished,
        )

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
        if job.cancelled or job.failed is not None:
            self._queue.clear()
        try:
            self._next()
        except Exception:
            self._queue.clear()
            self.busy = False
            raise

    # -- layers -----------------------------------------------------------------------------------
    def _record_for(self, request: SaliencyRequest) -> SaliencyRecord:
        """The model's record for ``request``: kept if it matches, else new, with layers ready."""
        record = self.results.get(request.model)
        layers_alive = record is not None and all(layer in self.viewer.layers for layer in record.layers)
        if record is not None and record.request == request and layers_alive:
            return record
        layers = self._prepare_layers(request)
        record = SaliencyRecord(request, layers)
        self.results.records[request.model] = record
        # Slices this request already has in the cache show at once.
        image = self._image_layer()
        n = (image.data[0] if image.multiscale else image.data).shape[request.axis]
        for z in range(n):
            maps = self.workspace.saliency.get(request.key(z))
            if maps is not None:
                self._write_slice(record, z, maps)
                if request.window >= 3:
                    record.per_slice[z] = slice_asymmetry(maps)
        self.results.changed.emit(request.model)
        return record

    def _prepare_layers(self, request: SaliencyRequest) -> list[Image]:
        """K zero-filled layers aligned with the image; existing layers of the model are reused."""
        image = self._image_layer()
        data = image.data[0] if image.multiscale else image.data
        shape = tuple(int(s) for s in data.shape)
        labels = channel_labels(request.window)
        layers = []
        for c, (label, cmap) in enumerate(zip(labels, channel_colormaps(request.window), strict=True)):
            name = saliency_layer_name(request.model, label)
            meta = {"model": request.model, "channel": c, "window": request.window,
                    "method": request.describe(), "image": request.image_name}
            zeros = np.zeros(shape, dtype=np.float32)  # calloc: pages are committed when written
            if name in self.viewer.layers:
                layer = self.viewer.layers[name]
                layer.data = zeros
                for attr in ("scale", "translate", "rotate", "shear", "affine"):
                    setattr(layer, attr, getattr(image, attr))
                layer.metadata = {**layer.metadata, META_KEY: meta}
            else:
                layer = self.viewer.add_image(
                    zeros, name=name, colormap=cmap, blending="additive", contrast_limits=(0.0, 1.0),
                    scale=image.scale, translate=image.translate, rotate=image.rotate, shear=image.shear,
                    affine=image.affine, metadata={META_KEY: meta},
                )
            layer.contrast_limits_range = (0.0, 1.0)
            layer.contrast_limits = (0.0, 1.0)
            layers.append(layer)
        if len(layers) > 1:
            unlink_layers(layers, ("contrast_limits", "gamma"))
            link_layers(layers, ("contrast_limits", "gamma"))
        return layers

    def _write_slice(self, record: SaliencyRecord, z: int, maps: np.ndarray) -> None:
        index: list[Any] = [slice(None)] * 3
        index[record.request.axis] = z
        for layer, channel in zip(record.layers, maps, strict=True):
            layer.data[tuple(index)] = channel
        record.computed.add(z)
        # One contrast limit for all K layers: the largest per-slice joint 99.9th percentile so far.
        positive = maps[maps > 0]
        if positive.size:
            record.display_max = max(record.display_max, float(np.percentile(maps, 99.9)) or positive.max())
            record.data_max = max(record.data_max, float(positive.max()))
        hi = record.display_max or 1.0
        for layer in record.layers:
            layer.contrast_limits_range = (0.0, max(record.data_max, hi))
            layer.contrast_limits = (0.0, hi)
            layer.refresh()

    def _on_slice(self, request: SaliencyRequest, event: Any) -> None:
        if not isinstance(event, SliceDone) or not isinstance(event.result, SliceSaliency):
            return
        record = self.results.get(request.model)
        if record is None or record.request != request:
            return  # the user started something else for this model meanwhile
        self._write_slice(record, event.z, event.result.maps)
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
            lines.append(f"{rec.request.model}: {rec.request.describe()}, {len(rec.computed)} of {n} slices")
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
