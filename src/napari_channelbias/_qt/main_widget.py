"""The plugin's main dock: the workflow as collapsible sections, and the asymmetry dock factory.

One dock, sections top to bottom in the order of the work: Data -> Model -> Train -> Predict ->
Saliency. The sections share one :class:`~napari_channelbias.workspace.Workspace` (the viewer's, see
:mod:`.session`) and the Data section's choice of layers, so they stay consistent without wiring
between docks; collapsing the finished steps keeps the dock short. The asymmetry panel is a separate
dock (:func:`make_asymmetry_dock`, opened from a button here or from the Plugins menu) because it is a
display the user keeps in view while working in the sections.

Other sections plug in with :meth:`ChannelBiasWidget.add_section`; sections whose module is not
installed yet are skipped, so the dock never fails to open because of an optional part.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from typing import Any

from napari.utils.notifications import show_warning
from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget
from superqt import QCollapsible

from . import bridge
from .data_section import DataSection
from .session import workspace_for

log = logging.getLogger("napari_channelbias")

# (title, module, class, expanded) of the sections built from other modules, created if importable.
# Each class takes (viewer, workspace) and, if its signature names them, earlier sections by lower-case
# title as keywords: ``data=`` (the DataSection), ``model=`` (the ModelSection).
OPTIONAL_SECTIONS: tuple[tuple[str, str, str, bool], ...] = (
    ("Model", "napari_channelbias._qt.model_section", "ModelSection", True),
    ("Train", "napari_channelbias._qt.train_section", "TrainSection", False),
    ("Predict", "napari_channelbias._qt.predict_section", "PredictSection", False),
    ("Saliency", "napari_channelbias._qt.saliency_dock", "SaliencySection", False),
)
ASYMMETRY_PANEL = ("napari_channelbias._qt.asymmetry_panel", "AsymmetryPanel")


def _import_optional(module: str, name: str) -> type | None:
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        log.info("napari-channelbias: %s.%s not available (%s)", module, name, exc)
        return None


def _build(cls: type, viewer: Any, workspace: Any, sections: dict[str, QWidget]) -> QWidget:
    """``cls(viewer, workspace)`` plus the earlier sections it asks for by keyword (``data=``, ``model=``)."""
    accepted = inspect.signature(cls).parameters
    peers = {title.lower(): widget for title, widget in sections.items() if title.lower() in accepted}
    return cls(viewer, workspace, **peers)


class _CloseWatcher(QObject):
    """Calls ``on_close`` when the watched window receives its Close event."""

    def __init__(self, on_close: Any, parent: QObject) -> None:
        super().__init__(parent)
        self._on_close = on_close

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Type.Close:
            self._on_close()
        return False


class ChannelBiasWidget(QWidget):
    """The main dock: Data, Model, Train, Predict and Saliency sections over one shared workspace.

    Parameters
    ----------
    napari_viewer
        The viewer (npe2 passes it by this name).
    """

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.workspace = workspace_for(napari_viewer)
        self.sections: dict[str, QWidget] = {}
        self._collapsibles: dict[str, QCollapsible] = {}

        inner = QWidget()
        self._column = QVBoxLayout(inner)
        self._column.setContentsMargins(4, 4, 4, 4)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(inner)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

        self.data = DataSection(napari_viewer, self.workspace)
        self.add_section("Data", self.data, expanded=True)
        for title, module, name, expanded in OPTIONAL_SECTIONS:
            cls = _import_optional(module, name)
            if cls is not None:
                self.add_section(title, _build(cls, napari_viewer, self.workspace, self.sections), expanded)
        self.asymmetry_button = QPushButton("Open the asymmetry panel")
        self.asymmetry_button.clicked.connect(bridge.guarded(self.open_asymmetry_panel, "Asymmetry panel"))
        self._column.addWidget(self.asymmetry_button)
        self._column.addStretch(1)

        self._stopped = False
        window = getattr(getattr(napari_viewer, "window", None), "_qt_window", None)
        if window is not None:  # stop the workers when the viewer window closes, before it is torn down
            window.installEventFilter(_CloseWatcher(self.shutdown, self))

    # -- sections ----------------------------------------------------------------------------------
    def add_section(self, title: str, widget: QWidget, expanded: bool = False) -> QCollapsible:
        """Add ``widget`` as a collapsible section called ``title`` (before the trailing buttons)."""
        collapsible = QCollapsible(title)
        collapsible.addWidget(widget)
        if expanded:
            collapsible.expand(animate=False)
        else:
            collapsible.collapse(animate=False)
        stretch_at = self._column.count()
        if getattr(self, "asymmetry_button", None) is not None:
            stretch_at = self._column.indexOf(self.asymmetry_button)
        self._column.insertWidget(stretch_at, collapsible)
        self.sections[title] = widget
        self._collapsibles[title] = collapsible
        return collapsible

    def section(self, title: str) -> QWidget:
        """The section widget called ``title`` (``"Data"``, ``"Model"``, ...)."""
        return self.sections[title]

    def open_asymmetry_panel(self) -> QWidget:
        """Dock the asymmetry panel for this viewer (or show the existing one)."""
        existing = self.viewer.window._dock_widgets.get("Asymmetry panel") if hasattr(
            self.viewer.window, "_dock_widgets") else None
        if existing is not None:
            existing.show()
            existing.raise_()
            return existing.widget()
        widget = make_asymmetry_dock(self.viewer)
        self.viewer.window.add_dock_widget(widget, name="Asymmetry panel", area="right", tabify=True)
        return widget

    # -- shutdown ----------------------------------------------------------------------------------
    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop every section's running jobs and wait for their cleanup (the viewer is closing)."""
        if self._stopped:
            return
        self._stopped = True
        for widget in [self, *self.sections.values()]:
            bridge.stop_jobs(widget, timeout=timeout)
            for child in widget.findChildren(QWidget):
                if bridge.jobs_of(child):
                    bridge.stop_jobs(child, timeout=timeout)


def make_asymmetry_dock(napari_viewer: Any) -> QWidget:
    """npe2 widget: the live asymmetry panel of this viewer's workspace (a note if it cannot be imported).

    The panel ships with the plugin, so an import failure is a broken installation, not an optional part
    that is missing: it is logged as a warning with its traceback and shown as a napari warning, and the
    dock says what failed instead of staying blank.
    """
    module, name = ASYMMETRY_PANEL
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        log.warning("napari-channelbias: the asymmetry panel (%s.%s) could not be imported", module, name,
                    exc_info=True)
        show_warning(f"The asymmetry panel could not be loaded ({type(exc).__name__}: {exc}); reinstall "
                     "napari-channelbias, the log has the traceback")
        label = QLabel(f"The asymmetry panel could not be loaded:\n{type(exc).__name__}: {exc}")
        label.setWordWrap(True)
        return label
    return cls(napari_viewer, workspace_for(napari_viewer))
