"""The Saliency section's form on its own: which option rows a method shows, its parameters, the model list."""

from __future__ import annotations

import pytest
from qtpy.QtWidgets import QLineEdit

from napari_channelbias._qt.saliency_options import ALL_MODELS, SaliencyOptions

pytestmark = pytest.mark.gui


@pytest.fixture
def form(qtbot) -> SaliencyOptions:
    widget = SaliencyOptions()
    qtbot.addWidget(widget)
    return widget


def _items(combo) -> list[str]:
    return [combo.itemText(i) for i in range(combo.count())]


def test_method_options_show_only_for_their_methods(form):
    visible = {}
    for method in ("full-output", "full-output-points", "occlusion", "gradcam++"):
        form.method_combo.setCurrentText(method)
        visible[method] = {k for k in ("points", "patch", "target_layer") if not form.rows[k][1].isHidden()}
    assert visible == {"full-output": set(), "full-output-points": {"points"}, "occlusion": {"patch"},
                       "gradcam++": {"target_layer"}}
    form.method_combo.setCurrentText("occlusion")
    form.patch_spin.setValue(8)
    assert form.params("occlusion") == (("patch", 8), ("target", None))  # sorted: a hashable cache key part
    form.target_spin.setValue(2)
    form.points_spin.setValue(7)
    assert dict(form.params("full-output-points")) == {"points": 7, "seed": 0, "target": 2}
    assert dict(form.params("gradcam++")) == {"target": 2, "target_layer": None}  # blank: the method's default
    form.layer_edit.setText(" decoder ")
    assert dict(form.params("gradcam++"))["target_layer"] == "decoder"


def test_the_model_list_keeps_the_choice_and_offers_all_models_from_two(form):
    form.set_models(["a"])
    assert _items(form.model_combo) == ["a"] and form.chosen_models(["a"]) == ["a"]
    form.set_models(["a", "b"])
    assert _items(form.model_combo) == ["a", "b", ALL_MODELS]
    form.model_combo.setCurrentText("b")
    form.set_models(["a", "b", "c"])
    assert form.model_combo.currentText() == "b" and form.chosen_models(["a", "b", "c"]) == ["b"]
    form.model_combo.setCurrentText(ALL_MODELS)
    assert form.chosen_models(["a", "b", "c"]) == ["a", "b", "c"]
    form.set_models(["a"])  # one model left: "all" is no choice any more
    assert _items(form.model_combo) == ["a"] and form.model_combo.currentText() == "a"


def test_a_shared_store_field_is_used_and_gets_no_row_and_the_image_row_can_hide(form, qtbot):
    shared = QLineEdit()
    qtbot.addWidget(shared)
    with_data = SaliencyOptions(shared)
    qtbot.addWidget(with_data)
    assert with_data.store_edit is shared and "store" not in with_data.rows
    assert "store" in form.rows and form.rows["store"][1] is form.store_edit
    with_data.show_image_row(False)
    assert all(w.isHidden() for w in with_data.rows["image"])
    form.set_images(["em", "other"])
    form.image_combo.setCurrentText("other")
    form.set_images(["other", "new"])
    assert _items(form.image_combo) == ["other", "new"] and form.image_combo.currentText() == "other"
