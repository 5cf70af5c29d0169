"""The plugin's main dock: the workflow as collapsible sections, and the asymmetry dock factory.

One dock, sections top to bottom in the order of the work: Data -> Model -> Train -> Predict ->
Saliency. The sections share one :class:`~napari_channelbias.workspace.Workspace` (the viewer's, see
:func:`~napari_channelbias.workspace.workspace_for`) and the Data section's choice of layers, so they
stay consistent without wiring between docks; collapsing the finished steps keeps the dock short. The
asymmetry panel is a separate dock (:class:`AsymmetryDock`, opened from a button here or from the
Plugins menu) because it is a display the user keeps in view while working in the sections.

Every section ships with the plugin and is imported normally: a section that fails to *build* (a bug,
a broken installation) is a napari warning naming the section and the reason, logged with its
traceback, and the dock shows a note in its place; the other sections still work.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import TypeVar

from napari.utils.notifications import show_warning
from napari.viewer import Viewer
from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget
from superqt import QCollapsible

from ..workspace import workspace_for
from . import bridge
from .asymmetry_panel import AsymmetryPanel
from .data_section import DataSection
from .model_section import ModelSection
from .predict_section import PredictSection
from .quality_section import QualitySection
from .saliency_dock import SaliencySection
from .train_section import TrainSection

log = logging.getLogger("napari_channelbias")
# The plugin's name and its widgets' display names in napari.yaml (napari finds widgets by them).
PLUGIN, MAIN_WIDGET, ASYMMETRY_WIDGET = "napari-channelbias", "Channel bias (2D+)", "Asymmetry panel"
W = TypeVar("W", bound=QWidget)


def build_or_warn(title: str, factory: Callable[[], W]) -> W | QLabel:
    """``factory()``, or -- if it raises -- a note saying why, a napari warning and a logged traceback.

    A section that cannot be built must not take the whole dock down with it, nor vanish silently.
    """
    try:
        return factory()
    except Exception as exc:  # any failure of one section's constructor: report it, keep the dock
        reason = f"{type(exc).__name__}: {exc}"
        # The traceback as text, not exc_info: a log record holding the frames would keep the dead
        # widget, and through it the viewer, alive.
        log.warning("napari-channelbias: the %s could not be built\n%s", title, traceback.format_exc())
        show_warning(f"napari-channelbias: the {title} could not be built ({reason}); the log has the "
                     "traceback")
        label = QLabel(f"The {title} could not be built:\n{reason}")
        label.setWordWrap(True)
        return label


class _CloseWatcher(QObject):
    """Calls ``on_close`` when the watched window receives its Close event."""

    def __init__(self, on_close: Callable[[], None], parent: QObject) -> None:
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

    def __init__(self, napari_viewer: Viewer, parent: QWidget | None = None) -> None:
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

        viewer, workspace = napari_viewer, self.workspace
        self.data = DataSection(viewer, workspace)
        self.add_section("Data", self.data, expanded=True)
        model = self._build_section("Model", lambda: ModelSection(viewer, workspace, data=self.data), True)
        self.model = model if isinstance(model, ModelSection) else None
        if self.model is not None:  # training needs the model description
            trained = self.model
            self._build_section("Train", lambda: TrainSection(viewer, workspace, data=self.data, model=trained))
        self._build_section("Predict", lambda: PredictSection(viewer, workspace, data=self.data))
        self._build_section("Saliency", lambda: SaliencySection(viewer, workspace, data=self.data))
        self._build_section("Quality", lambda: QualitySection(viewer, workspace, data=self.data))
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

    def _build_section(self, title: str, factory: Callable[[], QWidget], expanded: bool = False) -> QWidget:
        """Build a section with :func:`build_or_warn` and add it (a note in its place if it failed)."""
        widget = build_or_warn(f"{title} section", factory)
        self.add_section(title, widget, expanded)
        return widget

    def section(self, title: str) -> QWidget:
        """The section widget called ``title`` (``"Data"``, ``"Model"``, ...)."""
        return self.sections[title]

    def open_asymmetry_panel(self) -> AsymmetryDock:
        """Dock the asymmetry panel for this viewer (or show the existing one), as the Plugins menu does.

        The same npe2 widget as *Plugins -> Channel bias 2D+ analysis -> Asymmetry panel*, so the button
        and the menu never open two panels.
        """
        dock, widget = self.viewer.window.add_plugin_dock_widget(PLUGIN, ASYMMETRY_WIDGET, tabify=True)
        dock.show()
        dock.raise_()
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


class AsymmetryDock(QWidget):
    """npe2 widget: the live asymmetry panel of this viewer's workspace (a note if it cannot be built).

    A QWidget *class* with a ``napari_viewer`` parameter, because that is the one form both of napari's
    ways of opening a plugin widget give the viewer to: the Plugins menu injects it into a plain
    function only when the parameter is annotated, and ``Window.add_plugin_dock_widget`` never does.

    Attributes
    ----------
    panel
        The :class:`~.asymmetry_panel.AsymmetryPanel`, or a QLabel saying why it could not be built.
    """

    def __init__(self, napari_viewer: Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.workspace = workspace_for(napari_viewer)
        self.panel = build_or_warn("asymmetry panel", lambda: AsymmetryPanel(napari_viewer, self.workspace))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.panel)
