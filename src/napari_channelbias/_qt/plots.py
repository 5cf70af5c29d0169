"""Matplotlib figures in the napari docks: a themed Qt canvas widget.

The figures themselves are the core's (:mod:`napari_channelbias.asymmetry.figures`: functions that
draw on a matplotlib ``Axes``, shared with the study report); this module adds the only Qt and napari
parts -- :class:`FigureWidget`, a canvas in a widget, and :class:`PlotTheme`, the colours of the
current napari theme applied to those axes so plots sit in the dock without a white box.
"""

from __future__ import annotations

from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from napari.utils.theme import get_theme
from qtpy.QtWidgets import QSizePolicy, QVBoxLayout, QWidget


@dataclass(frozen=True)
class PlotTheme:
    """Colours of a figure, taken from a napari theme so plots sit in the dock without a white box."""

    background: str = "#23242b"
    axes: str = "#2e333e"
    text: str = "#f0f1f2"
    grid: str = "#565f6c"
    marker: str = "#f0f1f2"

    @classmethod
    def from_napari(cls, theme_name: str) -> PlotTheme:
        """The plot colours matching napari's theme ``theme_name`` (default dark theme if unknown)."""
        try:
            theme = get_theme(theme_name)
        except (KeyError, ValueError):
            return cls()
        return cls(background=theme.background.as_hex(), axes=theme.foreground.as_hex(),
                   text=theme.text.as_hex(), grid=theme.secondary.as_hex(), marker=theme.text.as_hex())


def style_axes(ax: Axes, theme: PlotTheme) -> None:
    """Apply ``theme`` to one axes: face, spines, ticks, labels, title and grid."""
    ax.set_facecolor(theme.axes)
    for spine in ax.spines.values():
        spine.set_color(theme.grid)
    ax.tick_params(colors=theme.text, labelsize=7)
    for label in (ax.xaxis.label, ax.yaxis.label):
        label.set_color(theme.text)
        label.set_fontsize(8)
    ax.title.set_color(theme.text)
    ax.grid(True, color=theme.grid, linewidth=0.5, alpha=0.5)
    legend = ax.get_legend()
    if legend is not None:
        legend.get_frame().set_facecolor(theme.axes)
        legend.get_frame().set_edgecolor(theme.grid)
        for text in legend.get_texts():
            text.set_color(theme.text)


class FigureWidget(QWidget):
    """A matplotlib figure in a Qt widget, themed like napari.

    Parameters
    ----------
    theme
        Colours; see :meth:`PlotTheme.from_napari`.
    height
        Minimum height in pixels (the figure stretches with the dock).
    """

    def __init__(self, theme: PlotTheme | None = None, height: int = 240, parent: QWidget | None = None):
        super().__init__(parent)
        self.theme = theme or PlotTheme()
        self.figure = Figure(figsize=(4.0, height / 100.0), dpi=100, layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(height)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.figure.set_facecolor(self.theme.background)

    def set_theme(self, theme: PlotTheme) -> None:
        """Change the colours; callers redraw their axes afterwards."""
        self.theme = theme
        self.figure.set_facecolor(theme.background)
        for ax in self.figure.axes:
            style_axes(ax, theme)
        self.canvas.draw_idle()

    def finish(self) -> None:
        """Style every axes with the theme and schedule a repaint (call after drawing)."""
        for ax in self.figure.axes:
            style_axes(ax, self.theme)
        self.canvas.draw_idle()
