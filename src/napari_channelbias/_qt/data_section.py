"""The Data section: which image (and labels) layer, the 2D+ window, and a preview of the model input.

The preview is the point of this section: the user sees, as an RGB layer, exactly what a 2D+ network
sees for the current slice -- channel 0 (red) is the slice below, the centre channel (green) the slice
itself, the last channel (blue) the slice above, after the same padding and normalisation the model
gets. Scrolling the z slider updates it. For a window K > 3 the preview shows the lowest, centre and
highest channels.

The section also holds the image's results store (*store*, ``DIR.ome.zarr``): one store per analysed
image, shared by the Predict and Saliency sections. The path is remembered in the image layer's
metadata (:data:`STORE_KEY`), so choosing another image shows its own store, and an image opened from
a results store comes with that store's path filled in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from napari.layers import Image, Labels
from napari.viewer import Viewer
from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import QCheckBox, QComboBox, QFormLayout, QLineEdit, QSpinBox, QWidget

from ..errors import VolumeError
from ..io.checks import validate_image
from ..segmentation.labels import Foreground, check_labels
from ..store.results import ResultsStore
from ..store.sinks import open_store
from ..windowing import PADDINGS, Normalizer, extract_window
from ..workspace import Workspace
from .bridge import guarded
from .compact import compact_combo
from .store_layers import STORE_KEY

NO_LABELS = "(none)"
# Metadata keys that mark the plugin's own image layers (the saliency maps, the 2D+ preview): they are
# displays of a model's input or output, never an image to train on or explain.
SALIENCY_LAYER_KEY = "channelbias_saliency"
PREVIEW_LAYER_KEY = "channelbias_preview"
OWN_IMAGE_KEYS = (SALIENCY_LAYER_KEY, PREVIEW_LAYER_KEY)
OPEN_HINT = "open a 3-D stack (File > Open) or the sample (File > Open Sample > Channel bias 2D+ analysis)"


def preview_name(window: int) -> str:
    """``2D+ input (z-1, z, z+1)`` for K = 3; the shown channels' offsets for other windows."""
    r = window // 2
    offsets = [-r, 0, r] if window > 1 else [0, 0, 0]
    return "2D+ input (" + ", ".join("z" if o == 0 else f"z{o:+d}" for o in offsets) + ")"


def _layer_names(viewer: Any, kind: type) -> list[str]:
    return [layer.name for layer in viewer.layers
            if isinstance(layer, kind) and not _is_rgb(layer) and not is_own_image(layer)]


def is_own_image(layer: Any) -> bool:
    """True for the plugin's own display layers (saliency maps, the 2D+ preview), by their metadata."""
    metadata = getattr(layer, "metadata", None) or {}
    stored_result = STORE_KEY in metadata and "key" in metadata  # a layer read from a results store's image
    return stored_result or any(key in metadata for key in OWN_IMAGE_KEYS)


def store_field() -> QLineEdit:
    """The line edit of a results store path (the Data section's; a Saliency section on its own has one)."""
    edit = QLineEdit()
    edit.setPlaceholderText("DIR.ome.zarr: whole-volume results into a store (empty: in memory)")
    edit.setToolTip("The image's OME-Zarr results store: whole-volume Predict and Saliency write into it "
                    "(created if absent, resumed if present) and show lazy layers, so memory stays bounded "
                    "whatever the volume's size")
    return edit


def full_resolution(layer: Any) -> Any:
    """A layer's data at full resolution: level 0 of a multiscale layer, else the data itself.

    Every job reads volumes through this: a multiscale layer's ``data`` is a list of levels, which the
    core cannot slice.
    """
    return layer.data[0] if layer.multiscale else layer.data


def open_image_store(path: str, image: Image) -> ResultsStore:
    """The store at ``path`` opened for writing, created for ``image`` (its shape, scale, translation)."""
    data = full_resolution(image)
    return open_store(path, data, source=image.metadata.get("source_path"), scale=tuple(image.scale),
                      translation=tuple(image.translate))


def _is_rgb(layer: Any) -> bool:
    return bool(getattr(layer, "rgb", False))


@dataclass(frozen=True)
class DataSelection:
    """What the user picked: the layers and the 2D+ window settings (what the other sections read)."""

    image: Image
    labels: Labels | None
    axis: int
    window: int
    padding: str

    @property
    def n_slices(self) -> int:
        return int(self.image.data.shape[self.axis])


class DataSection(QWidget):
    """Pick the image and labels layers, the axis, the window K and the padding; preview the input.

    The other sections use it through :meth:`selection` (a validated :class:`DataSelection`),
    :meth:`window` / :meth:`set_window`, :meth:`labels_layer` and the :attr:`labels_changed` signal,
    never through its widgets.

    Signals
    -------
    labels_changed()
        Another labels layer (or none) was chosen.
    """

    labels_changed = Signal()

    def __init__(self, viewer: Viewer, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer, self.workspace = viewer, workspace
        self.image_combo = QComboBox()
        self.image_combo.setToolTip("The grayscale (Z, Y, X) volume the models read")
        self.labels_combo = QComboBox()
        self.labels_combo.setToolTip("Ground-truth labels for training (same shape as the image)")
        self.axis_spin = QSpinBox()
        self.axis_spin.setRange(0, 2)
        self.axis_spin.setToolTip("The axis along which slices are taken (0 = z for a (Z, Y, X) stack)")
        self.window_spin = QSpinBox()
        self.window_spin.setRange(1, 15)
        self.window_spin.setSingleStep(2)
        self.window_spin.setValue(3)
        self.window_spin.setToolTip("K: the number of neighbouring slices fed as input channels (odd)")
        for combo in (self.image_combo, self.labels_combo):
            compact_combo(combo)  # a layer named after a long file must not widen the dock
        self.padding_combo = QComboBox()
        self.padding_combo.addItems(PADDINGS)
        self.padding_combo.setToolTip("How slices beyond the volume's ends are filled (mirror by default)")
        self.preview_check = QCheckBox("preview the 2D+ input")  # short: the dock must work ~360 px wide
        self.preview_check.setToolTip("Show the model's input of the current slice as an RGB layer")
        self.store_edit = store_field()

        form = QFormLayout(self)
        form.addRow("image", self.image_combo)
        form.addRow("labels", self.labels_combo)
        form.addRow("axis", self.axis_spin)
        form.addRow("window K", self.window_spin)
        form.addRow("padding", self.padding_combo)
        form.addRow(self.preview_check)
        form.addRow("store", self.store_edit)

        self._known_labels: set[str] = set()
        self._normalizers: dict[tuple[int, int], Normalizer] = {}  # (id(data), axis) -> fitted
        self._preview_timer = QTimer(self)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.setInterval(30)  # coalesce a fast slider drag into one update
        self._preview_timer.timeout.connect(guarded(self.update_preview, "2D+ preview"))

        for emitter in (viewer.layers.events.inserted, viewer.layers.events.removed):
            emitter.connect(self._refresh_layers)
        viewer.layers.events.inserted.connect(self._watch_name)
        viewer.dims.events.current_step.connect(self._schedule_preview)
        for signal in (self.image_combo.currentTextChanged, self.axis_spin.valueChanged,
                       self.window_spin.valueChanged, self.padding_combo.currentTextChanged,
                       self.preview_check.toggled):
            signal.connect(self._schedule_preview)
        self.window_spin.valueChanged.connect(self._force_odd)
        self.labels_combo.currentTextChanged.connect(lambda *_: self.labels_changed.emit())
        self.image_combo.currentTextChanged.connect(guarded(self._show_store, "Data"))
        self.store_edit.textChanged.connect(guarded(self._remember_store, "Data"))
        for layer in viewer.layers:
            layer.events.name.connect(self._refresh_layers)
        self._refresh_layers()
        self._show_store()

    # -- the image's results store -----------------------------------------------------------------
    def _show_store(self) -> None:
        name = self.image_combo.currentText()
        layer = self.viewer.layers[name] if name and name in self.viewer.layers else None
        if layer is not None and layer.metadata.get(STORE_KEY) != self.store_edit.text().strip():
            # another image: its own store (or none), never the previous image's
            self.store_edit.setText(str(layer.metadata.get(STORE_KEY) or ""))

    def _remember_store(self) -> None:
        name = self.image_combo.currentText()
        if name and name in self.viewer.layers:
            layer = self.viewer.layers[name]
            layer.metadata = {**layer.metadata, STORE_KEY: self.store_path()}

    def store_path(self) -> str:
        """The results store typed for the chosen image ('' for none)."""
        return self.store_edit.text().strip()

    # -- layer lists -------------------------------------------------------------------------------
    def _watch_name(self, event: Any) -> None:
        event.value.events.name.connect(self._refresh_layers)

    def _refresh_layers(self, *_: Any) -> None:
        preview = self._preview_layer_name()
        images = [n for n in _layer_names(self.viewer, Image) if n != preview]
        labels = _layer_names(self.viewer, Labels)
        # A labels layer the user adds is picked up when none is chosen yet; our own predictions are not.
        fresh = [n for n in labels if n not in self._known_labels
                 and not self.viewer.layers[n].metadata.get("channelbias_model")]
        self._known_labels = set(labels)
        unset = self.labels_combo.currentText() in ("", NO_LABELS)
        self._fill(self.image_combo, images)
        self._fill(self.labels_combo, [NO_LABELS, *labels], prefer=fresh[0] if fresh and unset else None)

    @staticmethod
    def _fill(combo: QComboBox, names: list[str], prefer: str | None = None) -> None:
        current = combo.currentText()
        combo.blockSignals(True)
        combo.clear()
        combo.addItems(names)
        if prefer is not None:
            combo.setCurrentText(prefer)
        elif current in names:
            combo.setCurrentText(current)
        combo.blockSignals(False)
        if combo.currentText() != current:
            combo.currentTextChanged.emit(combo.currentText())

    def _force_odd(self, value: int) -> None:
        if value % 2 == 0:
            self.window_spin.setValue(value + 1)

    # -- the selection the other sections use ------------------------------------------------------
    def window(self) -> int:
        """The 2D+ window K chosen (odd)."""
        return int(self.window_spin.value())

    def set_window(self, window: int) -> None:
        """Choose the 2D+ window K (a preset does)."""
        self.window_spin.setValue(int(window))

    def image_layer(self) -> Image:
        """The chosen image layer; a VolumeError saying what to open if there is none."""
        name = self.image_combo.currentText()
        if not name or name not in self.viewer.layers:
            raise VolumeError(f"no image layer is selected; {OPEN_HINT}")
        return self.viewer.layers[name]

    def labels_layer(self) -> Labels | None:
        name = self.labels_combo.currentText()
        if not name or name == NO_LABELS or name not in self.viewer.layers:
            return None
        return self.viewer.layers[name]

    def selection(self, require_labels: bool = False, n_classes: int | None = None,
                  foreground: Foreground = None) -> DataSelection:
        """The validated choice of layers and window settings.

        With ``require_labels`` the labels must fit a model of ``n_classes`` outputs under ``foreground``
        (see :mod:`napari_channelbias.segmentation.labels`: a binary model's foreground).

        Raises
        ------
        VolumeError
            No image layer, a 2-D or colour image, too few slices for the window, missing labels (when
            required) or labels that do not match the image; the message says what to do.
        """
        image = self.image_layer()
        window = int(self.window_spin.value())
        axis = int(self.axis_spin.value())
        validate_image(image.data, window=1, name=f"image layer {image.name!r}", check_values=False)
        labels = self.labels_layer()
        if require_labels and labels is None:
            raise VolumeError(
                "training needs a labels layer with the ground truth: open or paint one, then pick it "
                "under Data > labels"
            )
        if labels is not None and require_labels:
            check_labels(labels.data, image.data.shape, n_classes or 1, foreground)
        return DataSelection(image, labels, axis, window, self.padding_combo.currentText())

    def normalizer(self, selection: DataSelection) -> Normalizer:
        """A percentile normaliser fitted on the image (cached per array and axis)."""
        key = (id(selection.image.data), selection.axis)
        if key not in self._normalizers:
            self._normalizers[key] = Normalizer.fit(selection.image.data, axis=selection.axis)
        return self._normalizers[key]

    def current_slice(self, selection: DataSelection | None = None) -> int:
        """The slice index along the axis under the viewer's sliders, clipped to the volume."""
        selection = selection or self.selection()
        layer = selection.image
        coords = layer.world_to_data(self.viewer.dims.point)
        z = int(np.round(coords[-3 + selection.axis]))
        return int(np.clip(z, 0, selection.n_slices - 1))

    # -- preview -----------------------------------------------------------------------------------
    def _preview_layer_name(self) -> str:
        return preview_name(int(self.window_spin.value()))

    def _schedule_preview(self, *_: Any) -> None:
        if self.preview_check.isChecked() or self._find_preview() is not None:
            self._preview_timer.start()

    def _find_preview(self) -> Image | None:
        for layer in self.viewer.layers:
            if layer.metadata.get(PREVIEW_LAYER_KEY):
                return layer
        return None

    def update_preview(self) -> None:
        """Show (or refresh, or remove when unchecked) the RGB layer of the current slice's input."""
        if getattr(self.viewer.window, "_qt_window", None) is None:
            return  # the viewer was closed while an update was pending
        existing = self._find_preview()
        if not self.preview_check.isChecked():
            if existing is not None:
                self.viewer.layers.remove(existing)
            return
        if not self.image_combo.currentText():
            return
        sel = self.selection()
        validate_image(sel.image.data, window=1, name=f"image layer {sel.image.name!r}", check_values=False)
        z = self.current_slice(sel)
        window = extract_window(sel.image.data, z, sel.window, sel.padding, sel.axis, self.normalizer(sel))
        picks = [0, sel.window // 2, sel.window - 1]
        rgb = np.clip(np.moveaxis(window[picks], 0, -1), 0.0, 1.0).astype(np.float32)
        plane_axes = [a for a in range(3) if a != sel.axis]
        scale = [float(sel.image.scale[-3:][a]) for a in plane_axes]
        translate = [float(sel.image.translate[-3:][a]) for a in plane_axes]
        name = preview_name(sel.window)
        if existing is None:
            layer = self.viewer.add_image(
                rgb, name=name, rgb=True, scale=scale, translate=translate, contrast_limits=(0.0, 1.0),
                metadata={PREVIEW_LAYER_KEY: True}, blending="translucent_no_depth",
            )
            layer.opacity = 0.8
        else:
            existing.data = rgb
            existing.name = name
            existing.scale, existing.translate = scale, translate
        self.preview_check.setToolTip(f"showing slice {z}: red = lowest, green = centre, blue = highest")
