"""Train section: a tiny real training run, Stop keeps the best checkpoint, bad inputs are notifications."""

from __future__ import annotations

import numpy as np
import pytest

from napari_channelbias._qt.train_section import THREADS_AUTO
from napari_channelbias.devices import gui_friendly_threads
from napari_channelbias.models.checkpoints import read_checkpoint
from qt_helpers import messages, wait_job

pytest_plugins = ["qt_helpers"]
pytestmark = pytest.mark.gui


def tiny(widget, out, steps: int, val_every: int):
    """Settings for a seconds-long CPU run: random-init Lite0, 64 x 64 patches."""
    widget.sections["Model"].init_combo.setCurrentText("random")
    train = widget.sections["Train"]
    train.steps_spin.setValue(steps)
    train.batch_spin.setValue(2)
    train.patch_spin.setValue(64)
    train.val_every_spin.setValue(val_every)
    train.val_edit.setText("6:8")
    train.device_combo.setCurrentText("cpu")
    train.out_edit.setText(str(out))
    return train


def test_training_runs_plots_and_adds_the_best_model(widget, qtbot, tmp_path, notes):
    train = tiny(widget, tmp_path / "run.pt", steps=4, val_every=2)
    assert train.device_label.text().startswith("cpu (")
    assert train.threads_combo.currentText() == THREADS_AUTO
    job = train.start()
    assert not train.start_button.isEnabled() and train.stop_button.isEnabled()
    assert job.pbar is not None and job.pbar.total == 4
    wait_job(qtbot, job)
    assert job.failed is None, messages(notes)
    assert train.plot.steps == [1, 2, 3, 4] and all(np.isfinite(train.plot.losses))
    assert train.plot.val_steps == [2, 4] and all(0 <= d <= 1 for d in train.plot.dice)
    assert widget.workspace.names() == ["lite0-random"]
    entry = widget.workspace.get("lite0-random")
    assert entry.path == tmp_path / "run.pt"
    assert entry.card.training["num_threads"] == gui_friendly_threads(reserve=0).threads  # auto: every core
    assert "finished" in train.status.text() and train.start_button.isEnabled()
    assert any("is loaded as 'lite0-random'" in m for m in messages(notes, None))
    # the Predict section offers the new model at once
    assert widget.sections["Predict"].model_combo.currentText() == "lite0-random"


def test_stop_keeps_the_best_checkpoint(widget, qtbot, tmp_path):
    train = tiny(widget, tmp_path / "stopped.pt", steps=10_000, val_every=1)
    job = train.start()
    qtbot.waitUntil(lambda: train.best_checkpoint is not None and train.last_step >= 2, timeout=300_000)
    train.stop_button.click()
    wait_job(qtbot, job)
    assert job.cancelled and job.failed is None
    card, _ = read_checkpoint(tmp_path / "stopped.pt")
    assert card["training"]["complete"] is False and card["metrics"]["step"] == train.best_step
    assert widget.workspace.names() == ["lite0-random"]
    assert widget.workspace.get("lite0-random").path == tmp_path / "stopped.pt"
    assert f"stopped at step {train.last_step}" in train.status.text()
    assert train.last_step < 10_000


def test_bad_training_inputs_are_notifications(widget, em_viewer, tmp_path, notes):
    train = tiny(widget, tmp_path / "never.pt", steps=2, val_every=1)
    train.val_edit.setText("20:30")
    train.start_button.click()
    assert "Training: slice bound 20 in '20:30' is out of range" in messages(notes)[-1]

    train.val_edit.setText("6:8")
    em_viewer.layers.remove("em labels")
    train.start_button.click()
    assert "training needs a labels layer" in messages(notes)[-1]

    em_viewer.add_labels(np.zeros((8, 32, 32), np.uint8), name="wrong labels")
    train.start_button.click()
    assert "labels have shape (8, 32, 32) but the image has shape (8, 64, 64)" in messages(notes)[-1]

    em_viewer.layers.remove("wrong labels")
    em_viewer.add_labels(np.full((8, 64, 64), 7, np.uint8), name="odd labels")
    widget.sections["Model"].classes_spin.setValue(1)
    train.start_button.click()
    assert "labels hold values outside 0..1" in messages(notes)[-1]
    assert train.job is None and not (tmp_path / "never.pt").exists()


def test_a_preset_fills_the_model_and_training_settings(widget):
    model, train = widget.sections["Model"], widget.sections["Train"]
    model.preset_combo.setCurrentText("deeplabv3plus-resnet34-uniform-green")
    assert (model.arch_combo.currentText(), model.encoder_combo.currentText(),
            model.init_combo.currentText()) == ("deeplabv3plus", "resnet34", "uniform-green")
    assert (train.steps_spin.value(), train.batch_spin.value(), train.patch_spin.value()) == (4000, 8, 256)
    assert train.lr_spin.value() == pytest.approx(3e-4)
    settings = train.settings(widget.data.selection())
    assert settings["normalization"] == {"mode": "percentile", "low": 0.5, "high": 99.5}
    assert settings["steps"] == 4000 and settings["padding"] == "mirror"


def test_the_compile_checkbox_reaches_the_training_config(widget):
    from napari_channelbias.segmentation.training import TrainConfig

    train = widget.sections["Train"]
    assert train.settings(widget.data.selection())["compile"] is False  # off by default: a slow first step
    train.compile_check.setChecked(True)
    settings = train.settings(widget.data.selection())
    assert TrainConfig(**{k: v for k, v in settings.items() if k in TrainConfig.__dataclass_fields__}).compile


def test_instance_labels_for_a_binary_model_are_a_notification_naming_the_foreground_fix(
        widget, em_viewer, sample_volume, qtbot, tmp_path, notes):
    """Instance labels 0..N (one value per object) must not train `labels == 1` (one object) silently."""
    from napari.utils.notifications import NotificationSeverity

    from napari_channelbias.errors import ConfigError, VolumeError
    from napari_channelbias.segmentation.training import TrainConfig

    train = tiny(widget, tmp_path / "inst.pt", steps=2, val_every=2)
    mask = sample_volume[1]
    instances = np.zeros(mask.shape, np.uint16)
    instances[mask > 0] = np.arange(1, int((mask > 0).sum()) + 1) % 40 + 1  # 40 "objects"
    em_viewer.add_labels(instances, name="instances", scale=em_viewer.layers["em"].scale,
                         translate=em_viewer.layers["em"].translate)
    widget.data.labels_combo.setCurrentText("instances")
    assert widget.sections["Model"].classes() == 1  # 41 values suggest a binary model, not 41 classes
    warned = messages(notes, NotificationSeverity.WARNING)
    assert len(warned) == 1
    assert "'instances'" in warned[0] and "Train > foreground" in warned[0] and "any" in warned[0]
    assert train.status.text() == warned[0]
    with pytest.raises(VolumeError, match="--foreground any"):
        train.start()  # the core refuses too: nothing runs on one object by accident

    train.foreground_combo.setCurrentText("any (every label > 0)")
    assert train.check_labels_now() == "" and train.status.text() == ""
    assert len(messages(notes, NotificationSeverity.WARNING)) == 1  # no new warning once it fits
    settings = train.settings(widget.data.selection())
    assert TrainConfig.from_dict(settings).foreground == "any"
    train.foreground_combo.setCurrentText("7")
    assert train.foreground() == 7 and train.check_labels_now() == ""
    train.foreground_combo.setCurrentText("membrane")
    with pytest.raises(ConfigError, match="foreground must be 'any'"):
        train.foreground()

    train.foreground_combo.setCurrentText("any (every label > 0)")
    job = train.start()  # trains on every object
    wait_job(qtbot, job)
    assert job.failed is None, messages(notes)
    assert read_checkpoint(tmp_path / "inst.pt")[0]["training"]["foreground"] == "any"
