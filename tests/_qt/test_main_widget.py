"""Main dock: sections in workflow order, a hook for more sections, and a closed viewer stops its workers."""

from __future__ import annotations

import logging

import pytest
from napari.utils.notifications import NotificationSeverity
from qtpy.QtWidgets import QLabel, QScrollArea

from napari_channelbias._qt import bridge, main_widget
from napari_channelbias._qt.main_widget import ChannelBiasWidget, make_asymmetry_dock
from napari_channelbias._qt.session import workspace_for
from napari_channelbias.segmentation.training import last_path_for
from qt_helpers import messages

pytest_plugins = ["qt_helpers"]
pytestmark = pytest.mark.gui
WAIT_MS = 120_000  # generous for a loaded CI machine; waits return as soon as the condition holds


def test_sections_in_workflow_order_share_one_workspace(widget, em_viewer):
    assert list(widget.sections)[:4] == ["Data", "Model", "Train", "Predict"]
    assert widget.workspace is workspace_for(em_viewer)
    train = widget.sections["Train"]
    assert train.data is widget.data and train.model_section is widget.sections["Model"]
    assert widget.sections["Predict"].data is widget.data


def test_add_section_puts_it_before_the_buttons(widget):
    extra = QLabel("extra")
    collapsible = widget.add_section("Extra", extra, expanded=True)
    assert widget.section("Extra") is extra and collapsible.isExpanded()
    column = widget._column
    assert column.indexOf(collapsible) < column.indexOf(widget.asymmetry_button)


def test_the_dock_works_360_px_wide_with_long_names(make_napari_viewer, sample_volume, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(sample_volume[0], name="ISBI 2012 train-volume, a long file name of a stack.tif")
    viewer.add_labels(sample_volume[1], name="ISBI 2012 train-labels, a long file name of a stack.tif")
    dock = ChannelBiasWidget(viewer)
    qtbot.addWidget(dock)
    dock.sections["Model"].preset_combo.setCurrentText("deeplabv3plus-resnet34-uniform-green")
    dock.resize(360, 900)
    dock.show()
    qtbot.waitExposed(dock, timeout=WAIT_MS)
    scroll = dock.findChild(QScrollArea)
    qtbot.waitUntil(lambda: scroll.viewport().width() < 360, timeout=WAIT_MS)  # the layout has settled
    assert scroll.widget().minimumSizeHint().width() <= scroll.viewport().width()
    assert not scroll.horizontalScrollBar().isVisible()


def test_asymmetry_dock_uses_the_viewers_workspace(em_viewer):
    panel = make_asymmetry_dock(em_viewer)
    em_viewer.window.add_dock_widget(panel)  # docked, it dies with the window (its timers too)
    if not isinstance(panel, QLabel):  # the panel module is installed
        assert panel.workspace is workspace_for(em_viewer)


def test_a_broken_asymmetry_panel_is_a_logged_warning_not_a_silent_note(em_viewer, monkeypatch, caplog, notes):
    monkeypatch.setattr(main_widget, "ASYMMETRY_PANEL", ("napari_channelbias._qt.no_such_panel", "Panel"))
    with caplog.at_level(logging.WARNING, logger="napari_channelbias"):
        label = make_asymmetry_dock(em_viewer)
    em_viewer.window.add_dock_widget(label)
    assert isinstance(label, QLabel) and "ModuleNotFoundError" in label.text()
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and "asymmetry panel" in r.message]
    assert len(warned) == 1 and warned[0].exc_info is not None  # the traceback is in the log
    shown = messages(notes, NotificationSeverity.WARNING)
    assert len(shown) == 1 and "no_such_panel" in shown[0]


def test_open_asymmetry_panel_docks_it_once(widget, em_viewer):
    first = widget.open_asymmetry_panel()
    second = widget.open_asymmetry_panel()
    assert first is second
    assert "Asymmetry panel" in em_viewer.window._dock_widgets


def test_closing_the_viewer_stops_training_cleanly(make_napari_viewer, sample_volume, qtbot, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(sample_volume[0], name="em")
    viewer.add_labels(sample_volume[1], name="em labels")
    dock = ChannelBiasWidget(viewer)
    viewer.window.add_dock_widget(dock)
    dock.sections["Model"].init_combo.setCurrentText("random")
    train = dock.sections["Train"]
    train.steps_spin.setValue(100_000)
    train.val_every_spin.setValue(100_000)
    train.patch_spin.setValue(64)
    train.batch_spin.setValue(1)
    train.device_combo.setCurrentText("cpu")
    train.out_edit.setText(str(tmp_path / "run.pt"))
    job = train.start()
    qtbot.waitUntil(lambda: train.last_step >= 1, timeout=300_000)

    viewer.close()  # the Close event reaches the dock's watcher, which stops and waits

    assert job.is_finished and job.cancelled
    assert bridge.all_jobs() == []
    # the core's cleanup ran in the worker before the window went away: the last state is on disk
    assert last_path_for(tmp_path / "run.pt").is_file()
