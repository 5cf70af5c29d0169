"""Model section: build, load, save, list and inspect models; bad checkpoints become notifications."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_channelbias.errors import ConfigError
from napari_channelbias.models.factory import load_checkpoint
from napari_channelbias.models.spec import ModelSpec
from qt_helpers import messages, wait_job

pytest_plugins = ["qt_helpers"]
pytestmark = pytest.mark.gui


def test_classes_follow_the_chosen_labels_and_instance_labels_suggest_binary(widget, em_viewer, sample_volume):
    model = widget.sections["Model"]
    classes = sample_volume[1].copy()
    classes[:, :8, :8] = 2  # 0, 1, 2: semantic classes
    em_viewer.add_labels(classes, name="classes")
    widget.data.labels_combo.setCurrentText("classes")
    assert model.classes_spin.value() == 3
    instances = (np.arange(sample_volume[1].size) % 500).reshape(sample_volume[1].shape).astype(np.uint16)
    em_viewer.add_labels(instances, name="instances")  # 500 objects: not 500 classes
    widget.data.labels_combo.setCurrentText("instances")
    assert model.classes_spin.value() == 1
    widget.data.labels_combo.setCurrentText("em labels")
    assert model.classes_spin.value() == 1


def test_spec_reflects_the_widgets_and_the_data_window(widget):
    model = widget.sections["Model"]
    assert model.classes_spin.value() == 1  # the labels layer is binary
    model.init_combo.setCurrentText("uniform-green")
    widget.data.window_spin.setValue(5)
    spec = model.spec()
    assert spec == ModelSpec(arch="unet", encoder="efficientnet-lite0", init="uniform-green", window=5,
                             classes=1).canonical()
    model.init_combo.setCurrentText("checkpoint")
    with pytest.raises(ConfigError, match="needs the checkpoint file"):
        model.spec()
    model.init_path.setText("/runs/best.pt")
    assert model.spec().init == "checkpoint:/runs/best.pt"
    model.weights_combo.setCurrentText("file")
    with pytest.raises(ConfigError, match="needs an ImageNet weights file"):
        model.spec()


def test_load_save_round_trip_and_card(widget, qtbot, checkpoint_file, tmp_path):
    model = widget.sections["Model"]
    wait_job(qtbot, model.load_checkpoint_file(checkpoint_file))
    wait_job(qtbot, model.load_checkpoint_file(checkpoint_file))
    assert widget.workspace.names() == ["lite0-random", "lite0-random-2"]
    assert model.model_list.currentItem().text() == "lite0-random-2"  # the newest is selected
    card_text = model.card_view.toPlainText()
    assert "unet / efficientnet-lite0, init random" in card_text and str(checkpoint_file) in card_text

    saved = model.save_selected(tmp_path / "copy")
    assert saved.name == "copy.pt"
    reloaded, card = load_checkpoint(saved)
    original = widget.workspace.get("lite0-random-2").model
    assert card.name == "lite0-random-2"
    for (k, a), (_, b) in zip(original.state_dict().items(), reloaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), k

    model.remove_selected()
    assert widget.workspace.names() == ["lite0-random"]
    assert model.model_list.currentItem().text() == "lite0-random"


def test_create_untrained_model(widget, qtbot):
    model = widget.sections["Model"]
    model.init_combo.setCurrentText("random")
    model.name_edit.setText("baseline")
    wait_job(qtbot, model.create_untrained())
    entry = widget.workspace.get("baseline")
    assert entry.card.training["steps"] == 0 and entry.card.window == 3
    assert entry.card.normalizer().mode == "percentile"
    with torch.no_grad():
        assert entry.model(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 64, 64)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_checkpoint_is_a_notification(widget, qtbot, tmp_path, notes, checkpoint_file, damage):
    bad = tmp_path / "broken.pt"
    whole = checkpoint_file.read_bytes()
    bad.write_bytes(b"not a checkpoint at all" if damage == "garbage" else whole[: len(whole) // 2])
    wait_job(qtbot, widget.sections["Model"].load_checkpoint_file(bad))
    text = messages(notes)[-1]
    assert text.startswith("Loading broken.pt: ") and "corrupt" in text and "bug" not in text
    assert widget.workspace.names() == []


def test_buttons_without_a_model_explain_themselves(widget, notes):
    model = widget.sections["Model"]
    model.remove_button.setEnabled(True)  # normally disabled while the list is empty
    model.remove_button.click()
    assert messages(notes)[-1].startswith("Remove model: no model is selected")
