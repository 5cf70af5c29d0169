"""The Saliency section's choices: which model(s), image and method, the method's options, the device.

A form of widgets and the few rules that read them: which option rows a method shows (the registry's
option names), the method's parameters as a hashable tuple (part of the cache key), and which models
the model choice means (one, or each loaded model in turn). Running jobs and the layers are the
section's (:mod:`.saliency_dock`), not this form's.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QComboBox, QFormLayout, QLabel, QLineEdit, QSpinBox, QWidget

from ..devices import available_devices
from ..saliency.registry import SALIENCY_METHODS
from .compact import compact_combo
from .data_section import store_field

ALL_MODELS = "all loaded models"
METHOD_OPTIONS = {  # which widgets each method's options need (the registry's option names)
    name: set(method.options) for name, method in SALIENCY_METHODS.items()
}
OPTION_ROWS = ("points", "patch", "target_layer")  # the rows shown only for the methods that take them


def _replace_items(combo: QComboBox, names: list[str]) -> None:
    """Fill ``combo`` with ``names``, keeping the current choice when it is still offered."""
    current = combo.currentText()
    combo.clear()
    combo.addItems(names)
    if current in names:
        combo.setCurrentText(current)


class SaliencyOptions(QWidget):
    """The form of the Saliency section (model, image, method and its options, device, store).

    Parameters
    ----------
    store_edit
        The results-store field to use (the Data section's, shared with Predict); None makes this
        form's own, shown as a *Store* row.
    """

    def __init__(self, store_edit: QLineEdit | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model_combo = QComboBox()
        self.model_combo.setToolTip(f"The model to explain; '{ALL_MODELS}' runs each in turn")
        self.image_combo = QComboBox()
        self.image_combo.setToolTip("The image layer the model reads (a 3-D stack)")
        self.method_combo = QComboBox()
        for name, method in SALIENCY_METHODS.items():
            self.method_combo.addItem(name)
            self.method_combo.setItemData(self.method_combo.count() - 1, method.summary,
                                          Qt.ItemDataRole.ToolTipRole)
        self.method_combo.currentTextChanged.connect(self.method_changed)
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
        # writes to the same store), else this form's own.
        self.store_edit = store_edit if store_edit is not None else store_field()
        for combo in (self.model_combo, self.image_combo, self.method_combo):
            compact_combo(combo)  # long model or layer names must not widen the dock

        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)  # laid out as if the rows were the section's own
        self.rows: dict[str, tuple[QLabel, QWidget]] = {}
        for key, label, widget in (
            ("model", "Model", self.model_combo), ("image", "Image", self.image_combo),
            ("method", "Method", self.method_combo), ("points", "Points N", self.points_spin),
            ("patch", "Patch", self.patch_spin), ("target_layer", "Target layer", self.layer_edit),
            ("target", "Target class", self.target_spin), ("device", "Device", self.device_combo),
            *((("store", "Store", self.store_edit),) if store_edit is None else ()),
        ):
            lab = QLabel(label)
            form.addRow(lab, widget)
            self.rows[key] = (lab, widget)
        self.method_changed()

    def method_changed(self, *_: Any) -> None:
        """Show the option rows the chosen method takes, hide the others."""
        options = METHOD_OPTIONS.get(self.method_combo.currentText(), set())
        for key in OPTION_ROWS:
            for w in self.rows[key]:
                w.setVisible(key in options)

    def show_image_row(self, visible: bool) -> None:
        """The *Image* row is hidden where the Data section picks the image."""
        for w in self.rows["image"]:
            w.setVisible(visible)

    # -- lists ------------------------------------------------------------------------------------
    def set_models(self, names: list[str]) -> None:
        """Offer the loaded models, and *all loaded models* when there are two or more."""
        _replace_items(self.model_combo, names + ([ALL_MODELS] if len(names) > 1 else []))

    def set_images(self, names: list[str]) -> None:
        """Offer these image layers (the section filters out its own saliency layers)."""
        _replace_items(self.image_combo, names)

    # -- what the choices mean --------------------------------------------------------------------
    def chosen_models(self, names: list[str]) -> list[str]:
        """The models to run, in order, out of the loaded ``names`` (not empty)."""
        choice = self.model_combo.currentText()
        return list(names) if choice == ALL_MODELS else [choice or names[0]]

    @property
    def target(self) -> int | None:
        """The target class; None means the model's foreground."""
        return None if self.target_spin.value() < 0 else self.target_spin.value()

    def params(self, method: str) -> tuple[tuple[str, Any], ...]:
        """``method``'s parameters from the form, sorted by name (hashable: part of the cache key)."""
        options = METHOD_OPTIONS[method]
        params: dict[str, Any] = {"target": self.target}
        if "points" in options:
            params.update(points=self.points_spin.value(), seed=0)
        if "patch" in options:
            params["patch"] = self.patch_spin.value()
        if "target_layer" in options:
            params["target_layer"] = self.layer_edit.text().strip() or None
        return tuple(sorted(params.items()))


__all__ = ["ALL_MODELS", "METHOD_OPTIONS", "SaliencyOptions"]
