"""Matplotlib figures embedded in the napari docks: a themed canvas widget and the asymmetry plots.

The drawing functions take a matplotlib ``Axes`` and plain numbers, so they are testable without a
viewer and reusable for exported figures; :class:`FigureWidget` is the only Qt part. Two models are
told apart by colour (:data:`MODEL_COLORS`, Okabe-Ito orange and sky blue, distinguishable with the
common colour-vision deficiencies); within one model the lowest and highest channel of the window are
told apart by line style (solid and dashed).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

from ..asymmetry.metrics import MAX_VALUE, cdf_pair
from ..io.atomic import atomic_path

MODEL_COLORS = ("#E69F00", "#56B4E9", "#009E73", "#CC79A7")
# Points at which the CDFs are drawn. Drawing every distinct value of a 512 x 512 map would be ~250k
# vertices per curve; 1024 steps look the same at dock size, and the shaded area stays within two grid
# spacings of the exact W1 (see asymmetry.cdf_pair).
CDF_POINTS = 1024


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
            from napari.utils.theme import get_theme

            theme = get_theme(theme_name)
        except (KeyError, ValueError, ImportError):
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


def channel_labels(window: int) -> list[str]:
    """Offsets of the window's channels relative to the centre slice: ``z-1, z, z+1`` for K = 3."""
    r = window // 2
    return [f"z{c - r:+d}" if c != r else "z" for c in range(window)]


def plot_channel_shares(ax: Axes, shares: Mapping[str, Sequence[float]], colors: Sequence[str] = MODEL_COLORS,
                        ) -> None:
    """Grouped bars of each model's channel shares ``a_c``, with the equal share ``1/K`` as a line.

    Parameters
    ----------
    ax
        Axes to draw on (cleared first).
    shares
        Model name -> its K shares (they sum to 1).
    colors
        One colour per model, in order.
    """
    ax.clear()
    if not shares:
        return
    window = len(next(iter(shares.values())))
    x = np.arange(window)
    width = 0.8 / len(shares)
    for i, (name, values) in enumerate(shares.items()):
        offset = (i - (len(shares) - 1) / 2) * width
        ax.bar(x + offset, values, width=width * 0.95, color=colors[i % len(colors)], label=name)
    ax.axhline(1.0 / window, color="0.6", linestyle=":", linewidth=1.0, label=f"equal (1/{window})")
    ax.set_xticks(x, channel_labels(window))
    ax.set_ylabel("channel share")
    ax.set_title("Share of saliency per input channel", fontsize=8)
    top = max(max(v) for v in shares.values())
    ax.set_ylim(0.0, max(top, 1.0 / window) * 1.45)  # head room for the legend above the bars
    ax.legend(fontsize=6, loc="upper center", ncol=len(shares) + 1, handlelength=1.2, columnspacing=0.8)


def plot_cdf_pair(ax: Axes, pairs: Mapping[str, tuple[np.ndarray, np.ndarray]], window: int,
                  colors: Sequence[str] = MODEL_COLORS) -> None:
    """Empirical CDFs of the first and last channel's (jointly scaled) values, area between shaded.

    The shaded area between the two step curves of one model is their 1-D Wasserstein distance W1,
    which for K = 3 is the slice's SWd.

    Parameters
    ----------
    ax
        Axes to draw on (cleared first).
    pairs
        Model name -> (values of channel 0, values of channel K-1), already jointly scaled to [0, 255].
    window
        The window size K (for the channel labels).
    colors
        One colour per model, in order.
    """
    ax.clear()
    first, last = channel_labels(window)[0], channel_labels(window)[-1]
    for i, (name, (low, high)) in enumerate(pairs.items()):
        color = colors[i % len(colors)]
        x, f_low, f_high = cdf_pair(low, high, max_points=CDF_POINTS)
        ax.step(x, f_low, where="post", color=color, linewidth=1.2, label=f"{name} {first}")
        ax.step(x, f_high, where="post", color=color, linewidth=1.2, linestyle="--", label=f"{name} {last}")
        ax.fill_between(x, f_low, f_high, step="post", color=color, alpha=0.3, linewidth=0)
    ax.set_xlabel("saliency (jointly scaled, 0-255)")
    ax.set_ylabel("fraction of pixels")
    ax.set_title(f"CDF {first} vs {last}: shaded area = W1", fontsize=8)
    ax.set_xlim(0.0, MAX_VALUE)
    ax.set_ylim(0.0, 1.02)
    if pairs:
        ax.legend(fontsize=6, loc="lower right")


def plot_metric_over_z(ax: Axes, series: Mapping[str, tuple[Sequence[int], Sequence[float]]],
                       current_z: int | None, metric: str = "SWd",
                       colors: Sequence[str] = MODEL_COLORS, marker_color: str = "white") -> None:
    """A per-slice metric against z for each model, with the current slice marked.

    Parameters
    ----------
    ax
        Axes to draw on (cleared first).
    series
        Model name -> (slice indices, metric values); only computed slices are given.
    current_z
        The viewer's current slice, drawn as a vertical line (None: no line).
    metric
        The metric's label for the y axis.
    """
    ax.clear()
    for i, (name, (zs, values)) in enumerate(series.items()):
        order = np.argsort(np.asarray(zs))
        zs_sorted = np.asarray(zs)[order]
        vals_sorted = np.asarray(values, dtype=float)[order]
        ax.plot(zs_sorted, vals_sorted, color=colors[i % len(colors)], marker="o", markersize=2.5,
                linewidth=1.0, label=name)
    if current_z is not None:
        ax.axvline(current_z, color=marker_color, linewidth=1.0, alpha=0.8, label=f"slice {current_z}")
    ax.set_xlabel("slice z")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per slice (computed slices only)", fontsize=8)
    ax.set_ylim(bottom=0.0)
    if series or current_z is not None:
        ax.legend(fontsize=6, loc="best")


def save_figure(figure: Figure, path: str | os.PathLike[str], dpi: int = 150,
                size: tuple[float, float] | None = None) -> Path:
    """Write ``figure`` as PNG atomically (a temporary file beside the target, then a rename).

    ``size`` (inches) draws the file at that size instead of the on-screen one, so an export does not
    depend on how wide the dock happens to be; the figure on screen is restored afterwards.

    Returns
    -------
    Path
        The written file.
    """
    shown = figure.get_size_inches().copy()
    try:
        if size is not None:
            figure.set_size_inches(*size, forward=False)
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format="png", dpi=dpi, facecolor=figure.get_facecolor())
    finally:
        if size is not None:
            figure.set_size_inches(*shown, forward=False)
            figure.canvas.draw_idle()
    return Path(path)


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
