"""The asymmetry plots: what they draw matches the numbers they are given, and PNGs are written atomically."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from napari_channelbias._qt.plots import (
    CDF_POINTS,
    FigureWidget,
    PlotTheme,
    channel_labels,
    plot_cdf_pair,
    plot_channel_shares,
    plot_metric_over_z,
    save_figure,
)
from napari_channelbias.asymmetry.metrics import joint_scale, wasserstein_1d


def test_channel_labels_name_offsets_from_the_centre():
    assert channel_labels(1) == ["z"]
    assert channel_labels(3) == ["z-1", "z", "z+1"]
    assert channel_labels(5) == ["z-2", "z-1", "z", "z+1", "z+2"]


def test_share_bars_have_the_given_heights_per_model():
    ax = Figure().subplots()
    plot_channel_shares(ax, {"a": [0.2, 0.3, 0.5], "b": [1 / 3, 1 / 3, 1 / 3]})
    heights = [round(p.get_height(), 6) for p in ax.patches]
    assert heights == [0.2, 0.3, 0.5, round(1 / 3, 6), round(1 / 3, 6), round(1 / 3, 6)]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["z-1", "z", "z+1"]
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"a", "b", "equal (1/3)"}


def test_cdf_shaded_area_is_w1_up_to_the_grid():
    rng = np.random.default_rng(0)
    maps = joint_scale(rng.gamma(1.0, 1.0, (3, 32, 32)) * np.array([1.0, 1.0, 2.0])[:, None, None])
    ax = Figure().subplots()
    plot_cdf_pair(ax, {"m": (maps[0], maps[2])}, window=3)
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["m z-1", "m z+1"]
    x, f_low, f_high = lines[0].get_xdata(), lines[0].get_ydata(), lines[1].get_ydata()
    assert len(x) == CDF_POINTS
    area = float(np.sum(np.abs(f_low - f_high)[:-1] * np.diff(x)))
    # On an even grid the step area is within two grid spacings of the exact W1 (asymmetry.cdf_pair).
    assert area == pytest.approx(wasserstein_1d(maps[0], maps[2]), abs=2 * (x[1] - x[0]))
    assert len(ax.collections) == 1  # the shaded area


def test_metric_over_z_sorts_slices_and_marks_the_current_one():
    ax = Figure().subplots()
    plot_metric_over_z(ax, {"m": ([3, 1, 2], [0.3, 0.1, 0.2])}, current_z=2)
    line = ax.get_lines()[0]
    assert list(line.get_xdata()) == [1, 2, 3]
    assert list(line.get_ydata()) == [0.1, 0.2, 0.3]
    marker = ax.get_lines()[1]
    assert list(marker.get_xdata()) == [2, 2]


def test_save_figure_writes_a_png_and_leaves_no_temporary(tmp_path):
    fig = Figure()
    plot_channel_shares(fig.subplots(), {"a": [0.2, 0.3, 0.5]})
    out = save_figure(fig, tmp_path / "sub" / "fig.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["fig.png"]


def test_save_figure_at_a_fixed_size_restores_the_shown_size(tmp_path):
    from PIL import Image

    fig = Figure(figsize=(3.0, 2.0))
    plot_channel_shares(fig.subplots(), {"a": [0.2, 0.3, 0.5]})
    out = save_figure(fig, tmp_path / "fig.png", dpi=100, size=(5.0, 8.0))
    assert Image.open(out).size == (500, 800)
    assert tuple(fig.get_size_inches()) == (3.0, 2.0)


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
