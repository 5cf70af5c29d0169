"""The asymmetry figures, drawn on a given matplotlib ``Axes``: one set of colours, labels and titles.

The napari docks (``_qt/plots.py`` wraps a figure in a Qt canvas and themes it) and the study report
(``study/report.py``, PNG files) draw with these functions, so a model or an initialisation looks the
same in both. They take plain numbers and an Axes and use matplotlib's object API only -- no pyplot,
no Qt -- so they work headless and are tested on an Agg figure.

Models (or initialisations) are told apart by colour, :data:`MODEL_COLORS` (the Okabe-Ito palette,
distinguishable with the common colour-vision deficiencies); within one model the lowest and highest
channel of the window are told apart by line style (solid and dashed).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..io.atomic import atomic_path
from .metrics import MAX_VALUE, cdf_pair

# Okabe-Ito without its black (invisible on napari's dark theme): orange, sky blue, bluish green,
# reddish purple, yellow, blue, vermillion, grey.
MODEL_COLORS = ("#E69F00", "#56B4E9", "#009E73", "#CC79A7", "#F0E442", "#0072B2", "#D55E00", "#999999")
EQUAL_SHARE_COLOR = "0.6"  # mid grey: readable on the dark dock and on the report's white
# Points at which the CDFs of raw maps are drawn. Drawing every distinct value of a 512 x 512 map would be
# ~250k vertices per curve; 1024 steps look the same at dock size, and the shaded area stays within two
# grid spacings of the exact W1 (see asymmetry.metrics.cdf_pair).
CDF_POINTS = 1024

Curves = tuple[np.ndarray, np.ndarray, np.ndarray]  # x, F of the lowest channel, F of the highest


def channel_labels(window: int) -> list[str]:
    """Offsets of the window's channels relative to the centre slice: ``z-1, z, z+1`` for K = 3."""
    r = window // 2
    return [f"z{c - r:+d}" if c != r else "z" for c in range(window)]


def model_color(index: int, colors: Sequence[str] = MODEL_COLORS) -> str:
    """The colour of the ``index``-th model (cycling through ``colors``)."""
    return colors[index % len(colors)]


def plot_channel_shares(ax: Axes, shares: Mapping[str, Sequence[float]], colors: Sequence[str] = MODEL_COLORS,
                        title: str = "Share of saliency per input channel", top: float | None = None) -> None:
    """Grouped bars of each model's channel shares ``a_c``, with the equal share ``1/K`` as a line.

    Parameters
    ----------
    ax
        Axes to draw on (cleared first).
    shares
        Model name -> its K shares (they sum to 1).
    colors
        One colour per model, in order.
    title
        The axes title.
    top
        The largest share the y axis must hold (default: the largest given); the GUI passes the
        largest over every computed slice so the axis stays put while the slider moves.
    """
    ax.clear()
    if not shares:
        return
    window = len(next(iter(shares.values())))
    x = np.arange(window)
    width = 0.8 / len(shares)
    for i, (name, values) in enumerate(shares.items()):
        offset = (i - (len(shares) - 1) / 2) * width
        ax.bar(x + offset, values, width=width * 0.95, color=model_color(i, colors), label=name)
    ax.axhline(1.0 / window, color=EQUAL_SHARE_COLOR, linestyle=":", linewidth=1.0, label=f"equal (1/{window})")
    ax.set_xticks(x, channel_labels(window))
    ax.set_ylabel("channel share")
    ax.set_title(title, fontsize=8)
    top = max(max(v) for v in shares.values()) if top is None else top
    ax.set_ylim(0.0, max(top, 1.0 / window) * 1.45)  # head room for the legend above the bars
    ax.legend(fontsize=6, loc="upper center", ncol=len(shares) + 1, handlelength=1.2, columnspacing=0.8)


def plot_channel_drops(ax: Axes, drops: Mapping[str, Sequence[float | None]], colors: Sequence[str] = MODEL_COLORS,
                       ylabel: str = "prob_drop", title: str = "Ablation: drop per removed input channel",
                       limits: tuple[float, float] | None = None) -> None:
    """Grouped bars of each model's per-channel ablation drop, beside (and laid out like) the shares.

    Same channel order, offsets and colours as :func:`plot_channel_shares`, so a model's ablation bar
    sits under the same x as its share bar. A missing value (``None`` or NaN: the centre channel in
    ``centre`` mode, an empty mask) is not drawn as 0: its bar is hidden and an "n/a" mark stands on the
    zero line instead. Every bar and every mark exists (hidden when unused) so a caller can update
    heights in place.

    Parameters
    ----------
    ax
        Axes to draw on (cleared first).
    drops
        Model name -> its K drops (any sign; the measure's own units).
    colors
        One colour per model, in order.
    ylabel, title
        Axis label (the measure) and title.
    limits
        Fixed y limits; default: the values' range with the zero line and some margin.
    """
    ax.clear()
    if not drops:
        return
    window = len(next(iter(drops.values())))
    x = np.arange(window)
    width = 0.8 / len(drops)
    finite = []
    for i, (name, values) in enumerate(drops.items()):
        offset = (i - (len(drops) - 1) / 2) * width
        heights = [float("nan") if v is None else float(v) for v in values]
        bars = ax.bar(x + offset, [0.0 if np.isnan(h) else h for h in heights], width=width * 0.95,
                      color=model_color(i, colors), label=name)
        for bar, h, xc in zip(bars, heights, x + offset, strict=True):
            bar.set_visible(not np.isnan(h))
            ax.text(xc, 0.0, "n/a", ha="center", va="bottom", rotation=90, fontsize=6,  # upright: narrow bars
                    color=EQUAL_SHARE_COLOR, visible=bool(np.isnan(h)))
        finite.extend(h for h in heights if not np.isnan(h))
    ax.axhline(0.0, color=EQUAL_SHARE_COLOR, linewidth=0.8)
    ax.set_xticks(x, channel_labels(window))
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=8)
    ax.set_ylim(*(limits or drop_limits(finite)))
    ax.legend(fontsize=6, loc="upper center", ncol=len(drops), handlelength=1.2, columnspacing=0.8)


def drop_limits(values: Sequence[float]) -> tuple[float, float]:
    """y limits that hold ``values`` and 0, with head room for the legend (a tiny span when all are 0)."""
    lo = min([0.0, *values])
    hi = max([0.0, *values])
    span = hi - lo if hi > lo else 1e-3
    return lo - 0.1 * span * (lo < 0), hi + 0.45 * span


def plot_cdf_curves(ax: Axes, curves: Mapping[str, Curves], window: int, colors: Sequence[str] = MODEL_COLORS,
                    title: str | None = None) -> None:
    """CDFs of the first and last channel per model, the area between them shaded (it is their W1).

    Parameters
    ----------
    ax
        Axes to draw on (cleared first).
    curves
        Model name -> ``(x, F_first, F_last)`` on a common grid of jointly scaled values (0..255), as
        :func:`~.metrics.cdf_pair` or a volume accumulator's pooled CDFs give them.
    window
        The window size K (for the channel labels).
    colors
        One colour per model, in order.
    title
        The axes title (default: says what the shaded area is).
    """
    ax.clear()
    first, last = channel_labels(window)[0], channel_labels(window)[-1]
    for i, (name, (x, f_low, f_high)) in enumerate(curves.items()):
        color = model_color(i, colors)
        ax.step(x, f_low, where="post", color=color, linewidth=1.2, label=f"{name} {first}")
        ax.step(x, f_high, where="post", color=color, linewidth=1.2, linestyle="--", label=f"{name} {last}")
        ax.fill_between(x, f_low, f_high, step="post", color=color, alpha=0.3, linewidth=0)
    ax.set_xlabel("saliency (jointly scaled, 0-255)")
    ax.set_ylabel("fraction of pixels")
    ax.set_title(title or f"CDF {first} vs {last}: shaded area = W1", fontsize=8)
    ax.set_xlim(0.0, MAX_VALUE)
    ax.set_ylim(0.0, 1.02)
    if curves:
        ax.legend(fontsize=6, loc="lower right")


def plot_cdf_pair(ax: Axes, pairs: Mapping[str, tuple[np.ndarray, np.ndarray]], window: int,
                  colors: Sequence[str] = MODEL_COLORS) -> None:
    """:func:`plot_cdf_curves` of two channels' raw (jointly scaled) values per model.

    ``pairs`` maps a model name to (values of channel 0, values of channel K-1); the CDFs are drawn on
    :data:`CDF_POINTS` points, so the shaded area is their W1 to within two grid spacings.
    """
    curves = {name: cdf_pair(low, high, max_points=CDF_POINTS) for name, (low, high) in pairs.items()}
    plot_cdf_curves(ax, curves, window, colors)


def plot_metric_over_z(ax: Axes, series: Mapping[str, tuple[Sequence[int], Sequence[float]]],
                       current_z: int | None = None, metric: str = "SWd",
                       colors: Sequence[str] = MODEL_COLORS, marker_color: str = "0.3",
                       marker_label: str | None = None) -> None:
    """A per-slice metric against z for each model, with the current slice marked.

    Parameters
    ----------
    ax
        Axes to draw on (cleared first).
    series
        Model name -> (slice indices, metric values); only computed slices are given, in any order.
    current_z
        The viewer's current slice, drawn as a vertical line (None: no line).
    metric
        The metric's label for the y axis.
    colors
        One colour per model, in order.
    marker_color
        The colour of the current-slice line (the GUI passes its theme's text colour).
    marker_label
        The line's legend entry (default ``"slice <z>"``; the GUI's fast path passes a fixed text so
        the legend need not be redrawn when only the slice changes).
    """
    ax.clear()
    for i, (name, (zs, values)) in enumerate(series.items()):
        order = np.argsort(np.asarray(zs))
        zs_sorted = np.asarray(zs)[order]
        vals_sorted = np.asarray(values, dtype=float)[order]
        ax.plot(zs_sorted, vals_sorted, color=model_color(i, colors), marker="o", markersize=2.5,
                linewidth=1.0, label=name)
    if current_z is not None:
        ax.axvline(current_z, color=marker_color, linewidth=1.0, alpha=0.8, label=marker_label or f"slice {current_z}")
    ax.set_xlabel("slice z")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per slice (computed slices only)", fontsize=8)
    ax.set_ylim(bottom=0.0)
    if series or current_z is not None:
        ax.legend(fontsize=6, loc="best")


def new_figure(width: float, height: float, dpi: int = 110) -> Figure:
    """A constrained-layout figure on the Agg canvas (files, tests), without pyplot's global state."""
    figure = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: str | os.PathLike[str], dpi: int = 150,
                size: tuple[float, float] | None = None) -> Path:
    """Write ``figure`` as PNG atomically (a temporary file beside the target, then a rename).

    ``size`` (inches) draws the file at that size instead of the on-screen one, so an export does not
    depend on how wide the dock happens to be; the figure's own size is restored afterwards.

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
