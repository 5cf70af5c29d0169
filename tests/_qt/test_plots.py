"""The Qt side of the figures: the napari theme's colours and the themed canvas widget.

What the figures draw is tested with the core's functions in tests/asymmetry/test_figures.py.
"""

from __future__ import annotations

import pytest

from napari_channelbias._qt.plots import FigureWidget, PlotTheme
from napari_channelbias.asymmetry.figures import plot_channel_shares


def test_theme_follows_napari_and_falls_back_for_unknown_names():
    dark, light = PlotTheme.from_napari("dark"), PlotTheme.from_napari("light")
    assert dark.background != light.background
    assert PlotTheme.from_napari("no-such-theme") == PlotTheme()


def test_figure_widget_styles_its_axes(qtbot):
    widget = FigureWidget(PlotTheme.from_napari("light"))
    qtbot.addWidget(widget)
    ax = widget.figure.add_subplot()
    plot_channel_shares(ax, {"a": [0.2, 0.3, 0.5]})
    widget.finish()
    assert ax.get_facecolor()[:3] == pytest.approx(tuple(int(widget.theme.axes[i:i + 2], 16) / 255
                                                         for i in (1, 3, 5)))
