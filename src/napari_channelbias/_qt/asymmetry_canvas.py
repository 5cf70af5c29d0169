"""The asymmetry panel's figure, fast enough to follow the slider: drawn once, then updated in place.

A slider step over cached slices changes few things in the figure: the heights of the share and
ablation bars, the two CDF curves per model and the shaded area between them, the current-slice line
of SWd over z, and the title. Everything else -- axes, ticks, legends, the SWd series, the layout --
stays. So the figure is drawn in full (matplotlib's constrained layout included) only when that
*frame* changes; the per-slice artists are ``animated`` (left out of a full draw), the full draw is kept
as a background, and a slider step restores it, draws just those artists and blits (matplotlib's
documented blitting pattern). A full draw costs hundreds of milliseconds on a small CPU, mostly text
layout; the blit a few.

What keeps the frame still: the axis limits are fixed from *every* computed slice (the share axis holds
the largest share of any slice, the ablation axis every cached drop, SWd over z the whole volume's
z range), the current-slice legend entry says "current slice", not its number, and the layout is
computed once and then frozen (the layout engine is switched off) until the canvas is resized, the
theme changes or the frame does. The figure functions are the core's
(:mod:`napari_channelbias.asymmetry.figures`), so the dock and the study report still draw alike.

``full_redraw = True`` restores the old behaviour (everything redrawn and laid out on every update);
the benchmark uses it to measure both side by side.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from matplotlib.artist import Artist

from ..asymmetry.figures import (
    Curves,
    model_color,
    plot_cdf_curves,
    plot_channel_drops,
    plot_channel_shares,
    plot_metric_over_z,
)
from .plots import FigureWidget, style_axes

CURRENT_SLICE = "current slice"


@dataclass(frozen=True)
class SliceView:
    """Everything the figure shows for one slice of the shown models (plain data; no Qt).

    Attributes
    ----------
    models
        The shown models, in colour order.
    window
        The window size K.
    shares
        Model -> its K channel shares on this slice (only models with maps of this slice).
    curves
        Model -> the CDFs of its first and last channel on this slice (``x, F_first, F_last``).
    drops
        Model -> its K ablation drops on this slice (None: missing or not computed); only models with
        an ablation result on some slice.
    drop_label
        The ablation measure and mode, for the axis label and title.
    drop_limits
        The ablation axis limits (over every cached drop of the shown models).
    shares_top
        The largest share over every computed slice of the shown models.
    series
        Model -> (slices, SWd) of its computed slices.
    z
        The current slice (None: nothing shown).
    z_range
        The first and last slice of the volume (SWd over z spans it).
    title
        The figure title.
    """

    models: tuple[str, ...] = ()
    window: int = 3
    shares: Mapping[str, Sequence[float]] = field(default_factory=dict)
    curves: Mapping[str, Curves] = field(default_factory=dict)
    drops: Mapping[str, Sequence[float | None]] = field(default_factory=dict)
    drop_label: str = "prob_drop"
    drop_limits: tuple[float, float] | None = None
    shares_top: float | None = None
    series: Mapping[str, tuple[Sequence[int], Sequence[float]]] = field(default_factory=dict)
    z: int | None = None
    z_range: tuple[int, int] | None = None
    title: str = ""

    def frame(self) -> tuple[Any, ...]:
        """What a full draw depends on: everything but the per-slice values (a hashable key)."""
        series = tuple((n, tuple(int(z) for z in zs), tuple(float(v) for v in vs))
                       for n, (zs, vs) in self.series.items())
        return (self.models, self.window, tuple(self.shares), tuple(self.curves), tuple(self.drops),
                self.drop_label, self.drop_limits, self.shares_top, series, self.z_range, self.z is None)


def _missing(value: float | None) -> bool:
    return value is None or not math.isfinite(value)


class AsymmetryCanvas:
    """The panel's four axes -- shares, ablation drops, CDFs, SWd over z -- on one :class:`FigureWidget`.

    Attributes
    ----------
    full_draws, blits
        How many updates drew the whole figure and how many only blitted the per-slice artists.
    full_redraw
        Draw everything on every update (the old, slow path; for side-by-side measurements).
    """

    def __init__(self, plot: FigureWidget) -> None:
        self.plot = plot
        figure = plot.figure
        grid = figure.add_gridspec(3, 2, height_ratios=(1.0, 1.2, 1.0))
        self.ax_shares = figure.add_subplot(grid[0, 0])
        self.ax_drops = figure.add_subplot(grid[0, 1])
        self.ax_cdf = figure.add_subplot(grid[1, :])
        self.ax_z = figure.add_subplot(grid[2, :])
        self.full_redraw = False
        self.full_draws = 0
        self.blits = 0
        self._frame: tuple[Any, ...] | None = None
        self._animated: list[Artist] = []
        self._share_bars: dict[str, list[Any]] = {}
        self._drop_bars: dict[str, list[tuple[Any, Any]]] = {}
        self._cdf: dict[str, tuple[Any, Any, Any]] = {}
        self._marker: Any = None
        self._title: Any = None
        self._background: Any = None
        plot.canvas.mpl_connect("draw_event", self._on_draw)
        plot.canvas.mpl_connect("resize_event", self._relayout)

    # -- public -----------------------------------------------------------------------------------
    def show(self, view: SliceView) -> None:
        """Show ``view``: a blit when only per-slice values changed since the last full draw."""
        key = (view.frame(), self.plot.theme)
        if self.full_redraw or key != self._frame or self._background is None:
            self._build(view)
            self._frame = None if self.full_redraw else key
            return
        self._update(view)
        self._blit()

    def invalidate(self) -> None:
        """Make the next :meth:`show` draw everything (the theme or the canvas changed)."""
        self._frame = None

    @contextlib.contextmanager
    def exporting(self) -> Iterator[None]:
        """Within: a plain figure that ``savefig`` draws completely (a figure-level animated artist,
        the title, would be left out) and lays out for the file's size; afterwards the fast path again."""
        for artist in self._animated:
            artist.set_animated(False)
        self.plot.figure.set_layout_engine("constrained")
        try:
            yield
        finally:
            for artist in self._animated:
                artist.set_animated(True)
            self.plot.canvas.draw_idle()  # re-laid out for the screen; _on_draw freezes it again

    # -- full draw --------------------------------------------------------------------------------
    def _build(self, view: SliceView) -> None:
        figure, theme = self.plot.figure, self.plot.theme
        figure.set_layout_engine("constrained")
        color = {n: model_color(i) for i, n in enumerate(view.models)}
        # Short titles: the two bar plots share the dock's width.
        plot_channel_shares(self.ax_shares, view.shares, colors=[color[n] for n in view.shares],
                            title="Saliency share", top=None if self.full_redraw else view.shares_top)
        if view.drops:
            plot_channel_drops(self.ax_drops, view.drops, colors=[color[n] for n in view.drops],
                               ylabel=view.drop_label, title="Ablation drop",
                               limits=view.drop_limits)
        else:
            self.ax_drops.clear()
            self.ax_drops.set_title("Ablation", fontsize=8)
            self.ax_drops.text(0.5, 0.5, "not run yet\n(Ablation buttons below)", ha="center", va="center",
                               fontsize=7, color=theme.text, transform=self.ax_drops.transAxes)
            self.ax_drops.set_xticks([])
            self.ax_drops.set_yticks([])
        plot_cdf_curves(self.ax_cdf, view.curves, view.window, colors=[color[n] for n in view.curves])
        plot_metric_over_z(self.ax_z, view.series, view.z, "SWd", colors=[color[n] for n in view.series],
                           marker_color=theme.marker, marker_label=None if self.full_redraw else CURRENT_SLICE)
        if view.z_range is not None and not self.full_redraw:
            lo, hi = view.z_range
            for zs, _ in view.series.values():
                lo, hi = min(lo, *zs), max(hi, *zs)
            self.ax_z.set_xlim(lo - 0.5, hi + 0.5)  # the whole volume: the line never moves the axis
        self._title = figure.suptitle(view.title, fontsize=9, color=theme.text)
        for ax in figure.axes:
            style_axes(ax, theme)
        self.full_draws += 1
        if self.full_redraw:
            self._animated = []
            self.plot.canvas.draw_idle()
            return
        self._collect(view)
        self.plot.canvas.draw()  # synchronous: the background is taken in _on_draw right away

    def _collect(self, view: SliceView) -> None:
        """Find the per-slice artists the figure functions made, and animate them."""
        k = view.window
        patches = self.ax_shares.patches
        self._share_bars = {n: list(patches[i * k:(i + 1) * k]) for i, n in enumerate(view.shares)}
        self._drop_bars = {}
        if view.drops:
            bars, texts = self.ax_drops.patches, self.ax_drops.texts
            self._drop_bars = {n: list(zip(bars[i * k:(i + 1) * k], texts[i * k:(i + 1) * k], strict=True))
                               for i, n in enumerate(view.drops)}
        lines, fills = self.ax_cdf.get_lines(), self.ax_cdf.collections
        self._cdf = {n: (lines[2 * i], lines[2 * i + 1], fills[i]) for i, n in enumerate(view.curves)}
        self._marker = self.ax_z.get_lines()[-1] if view.z is not None else None
        self._animated = [*(b for bars in self._share_bars.values() for b in bars),
                          *(a for pairs in self._drop_bars.values() for pair in pairs for a in pair),
                          *(a for trio in self._cdf.values() for a in trio),
                          *([self._marker] if self._marker is not None else []), self._title]
        for artist in self._animated:
            artist.set_animated(True)

    def _on_draw(self, _event: Any) -> None:
        """After any full draw (ours, a resize, a theme change): keep it as the background, add the
        per-slice artists, freeze the layout."""
        canvas, figure = self.plot.canvas, self.plot.figure
        if self.full_redraw or not self._animated or canvas.is_saving():
            return
        self._background = canvas.copy_from_bbox(figure.bbox)
        for artist in self._animated:
            figure.draw_artist(artist)
        figure.set_layout_engine("none")  # the positions stay; no text is measured again per draw

    def _relayout(self, _event: Any) -> None:
        self.plot.figure.set_layout_engine("constrained")  # the draw that follows a resize lays out anew

    # -- per slice --------------------------------------------------------------------------------
    def _update(self, view: SliceView) -> None:
        for name, bars in self._share_bars.items():
            for bar, value in zip(bars, view.shares[name], strict=True):
                bar.set_height(value)
        for name, pairs in self._drop_bars.items():
            for (bar, mark), value in zip(pairs, view.drops[name], strict=True):
                missing = _missing(value)
                bar.set_visible(not missing)
                bar.set_height(0.0 if missing else float(value))
                mark.set_visible(missing)
        for name, (low, high, fill) in self._cdf.items():
            x, f_low, f_high = view.curves[name]
            low.set_data(x, f_low)
            high.set_data(x, f_high)
            fill.set_data(x, f_low, f_high)
        if self._marker is not None and view.z is not None:
            self._marker.set_xdata([view.z, view.z])
        self._title.set_text(view.title)

    def _blit(self) -> None:
        canvas, figure = self.plot.canvas, self.plot.figure
        canvas.restore_region(self._background)
        for artist in self._animated:
            figure.draw_artist(artist)
        canvas.blit(figure.bbox)  # Qt repaints now (synchronously), not at the next event-loop turn
        self.blits += 1
