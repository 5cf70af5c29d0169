"""Main dock: sections in workflow order, a hook for more sections, and a closed viewer stops its workers."""

from __future__ import annotations

import logging
from pathlib import Path

import npe2
import pytest
from napari._app_model import get_app_model
from napari.utils.notifications import NotificationSeverity
from qtpy.QtWidgets import QLabel, QScrollArea

from napari_channelbias._qt import bridge, main_widget
from napari_channelbias._qt.asymmetry_panel import AsymmetryPanel
from napari_channelbias._qt.main_widget import PLUGIN, AsymmetryDock, ChannelBiasWidget
from napari_channelbias._qt.saliency_dock import SaliencySection
from napari_channelbias.segmentation.run_outputs import last_path_for
from napari_channelbias.workspace import workspace_for
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
    dock = AsymmetryDock(em_viewer)
    em_viewer.window.add_dock_widget(dock)  # docked, it dies with the window (its timers too)
    assert isinstance(dock.panel, AsymmetryPanel)
    assert dock.workspace is dock.panel.workspace is workspace_for(em_viewer)


def test_a_panel_that_fails_to_build_is_a_logged_warning_not_a_silent_note(em_viewer, monkeypatch, caplog,
                                                                           notes):
    def broken(*_args, **_kwargs):
        raise RuntimeError("no OpenGL for the figure")

    monkeypatch.setattr(main_widget, "AsymmetryPanel", broken)
    with caplog.at_level(logging.WARNING, logger="napari_channelbias"):
        dock = AsymmetryDock(em_viewer)
    em_viewer.window.add_dock_widget(dock)
    label = dock.panel
    assert isinstance(label, QLabel) and "RuntimeError: no OpenGL for the figure" in label.text()
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and "asymmetry panel" in r.message]
    assert len(warned) == 1 and "Traceback" in warned[0].getMessage()  # the traceback is in the log
    shown = messages(notes, NotificationSeverity.WARNING)
    assert len(shown) == 1 and "asymmetry panel" in shown[0] and "no OpenGL for the figure" in shown[0]


def test_a_section_that_fails_to_build_is_a_visible_warning_and_the_rest_still_work(em_viewer, monkeypatch,
                                                                                   notes):
    def broken(*_args, **_kwargs):
        raise ValueError("bad default")

    monkeypatch.setattr(main_widget, "PredictSection", broken)
    dock = ChannelBiasWidget(em_viewer)
    em_viewer.window.add_dock_widget(dock)
    assert isinstance(dock.sections["Predict"], QLabel)
    assert "ValueError: bad default" in dock.sections["Predict"].text()
    assert isinstance(dock.sections["Saliency"], SaliencySection)  # the sections after it are built
    shown = messages(notes, NotificationSeverity.WARNING)
    assert len(shown) == 1 and "Predict section" in shown[0] and "bad default" in shown[0]


def _manifest_widgets() -> list[str]:
    manifest = npe2.PluginManifest.from_file(Path(main_widget.__file__).parents[1] / "napari.yaml")
    return [w.display_name for w in manifest.contributions.widgets]


@pytest.mark.parametrize("display_name", _manifest_widgets())
def test_every_manifest_widget_opens_from_the_plugins_menu(make_napari_viewer, sample_volume, display_name,
                                                           notes):
    """What *Plugins -> Channel bias 2D+ analysis -> <widget>* does in napari, for each widget."""
    viewer = make_napari_viewer()
    viewer.add_image(sample_volume[0], name="em")
    dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, display_name)
    expected = {"Channel bias (2D+)": ChannelBiasWidget, "Asymmetry panel": AsymmetryDock}[display_name]
    assert isinstance(widget, expected), widget
    assert widget.workspace is workspace_for(viewer)
    if isinstance(widget, AsymmetryDock):
        assert isinstance(widget.panel, AsymmetryPanel)  # not the "could not be built" note
    assert dock.widget() is widget
    assert messages(notes, None) == []  # no error, no warning


@pytest.mark.parametrize("display_name", _manifest_widgets())
def test_every_manifest_widget_opens_through_the_menu_action(make_napari_viewer, display_name, notes):
    """The menu item's own app-model action: the path whose viewer injection failed for a plain function."""
    viewer = make_napari_viewer()
    manifest = npe2.PluginManifest.from_file(Path(main_widget.__file__).parents[1] / "napari.yaml")
    [command] = [w.command for w in manifest.contributions.widgets if w.display_name == display_name]
    get_app_model().commands.execute_command(command).result()
    [widget] = [w for name, w in viewer.window.dock_widgets.items() if display_name in name]
    assert isinstance(widget, (ChannelBiasWidget, AsymmetryDock)) and widget.workspace is workspace_for(viewer)
    assert messages(notes, None) == []


def test_open_asymmetry_panel_docks_it_once(widget, em_viewer):
    first = widget.open_asymmetry_panel()
    second = widget.open_asymmetry_panel()
    assert isinstance(first, AsymmetryDock) and first is second
    assert [name for name in em_viewer.window.dock_widgets if "Asymmetry panel" in name] == [
        "Asymmetry panel (napari-channelbias)"  # the Plugins menu's own dock: the menu finds it open
    ]


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
