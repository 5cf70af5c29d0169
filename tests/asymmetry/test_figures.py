"""The asymmetry figures: what they draw on an Agg figure matches the numbers they are given."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_hex
from PIL import Image

from napari_channelbias.asymmetry.figures import (
    CDF_POINTS,
    MODEL_COLORS,
    channel_labels,
    drop_limits,
    model_color,
    new_figure,
    plot_cdf_curves,
    plot_cdf_pair,
    plot_channel_drops,
    plot_channel_shares,
    plot_metric_over_z,
    save_figure,
)
from napari_channelbias.asymmetry.metrics import MAX_VALUE, joint_scale, wasserstein_1d


def axes():
    return new_figure(4.0, 3.0).subplots()


def test_channel_labels_name_offsets_from_the_centre():
    assert channel_labels(1) == ["z"]
    assert channel_labels(3) == ["z-1", "z", "z+1"]
    assert channel_labels(5) == ["z-2", "z-1", "z", "z+1", "z+2"]


def test_model_colours_are_distinct_and_cycle():
    assert len(set(MODEL_COLORS)) == len(MODEL_COLORS) == 8
    assert model_color(0) == MODEL_COLORS[0] and model_color(len(MODEL_COLORS)) == MODEL_COLORS[0]
    assert model_color(1, ("#000000", "#ffffff")) == "#ffffff"


def test_share_bars_have_the_given_heights_and_colours_per_model():
    ax = axes()
    plot_channel_shares(ax, {"a": [0.2, 0.3, 0.5], "b": [1 / 3, 1 / 3, 1 / 3]}, title="full-output")
    heights = [round(p.get_height(), 6) for p in ax.patches]
    assert heights == [0.2, 0.3, 0.5, round(1 / 3, 6), round(1 / 3, 6), round(1 / 3, 6)]
    colours = [to_hex(p.get_facecolor()).upper() for p in ax.patches]
    assert colours == [MODEL_COLORS[0]] * 3 + [MODEL_COLORS[1]] * 3
    assert [t.get_text() for t in ax.get_xticklabels()] == ["z-1", "z", "z+1"]
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"a", "b", "equal (1/3)"}
    [equal] = ax.get_lines()
    assert list(equal.get_ydata()) == [1 / 3, 1 / 3]
    assert ax.get_title() == "full-output"


def test_share_axis_holds_a_given_top():
    ax = axes()
    plot_channel_shares(ax, {"a": [0.2, 0.3, 0.5]}, top=0.8)
    assert ax.get_ylim() == pytest.approx((0.0, 0.8 * 1.45))


def test_drop_bars_show_missing_values_as_missing_not_zero():
    ax = axes()
    plot_channel_drops(ax, {"a": [0.25, None, 0.0], "b": [-0.1, float("nan"), 0.05]}, ylabel="prob_drop")
    visible = [p.get_visible() for p in ax.patches]
    assert visible == [True, False, True, True, False, True]
    assert [round(p.get_height(), 6) for p in ax.patches if p.get_visible()] == [0.25, 0.0, -0.1, 0.05]
    assert [t.get_visible() for t in ax.texts] == [not v for v in visible]
    assert {t.get_text() for t in ax.texts} == {"n/a"}
    colours = [to_hex(p.get_facecolor()).upper() for p in ax.patches]
    assert colours == [MODEL_COLORS[0]] * 3 + [MODEL_COLORS[1]] * 3
    # The same x as the share bars of the same models, so a model's two bars line up.
    shares = axes()
    plot_channel_shares(shares, {"a": [0.2, 0.3, 0.5], "b": [0.3, 0.3, 0.4]})
    assert [p.get_x() for p in ax.patches] == pytest.approx([p.get_x() for p in shares.patches])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["z-1", "z", "z+1"]
    lo, hi = ax.get_ylim()
    assert lo < -0.1 and hi > 0.25 and ax.get_ylabel() == "prob_drop"


def test_drop_limits_hold_zero_and_the_values():
    assert drop_limits([0.0, 0.0]) == pytest.approx((0.0, 0.45e-3))
    lo, hi = drop_limits([0.2, 0.4])
    assert lo == 0.0 and hi == pytest.approx(0.4 + 0.45 * 0.4)
    lo, hi = drop_limits([-0.5, 0.5])
    assert lo == pytest.approx(-0.6) and hi == pytest.approx(0.95)


def test_shares_of_nothing_draw_nothing():
    ax = axes()
    plot_channel_shares(ax, {})
    assert len(ax.patches) == 0 and ax.get_legend() is None


def test_cdf_shaded_area_is_w1_up_to_the_grid():
    rng = np.random.default_rng(0)
    maps = joint_scale(rng.gamma(1.0, 1.0, (3, 32, 32)) * np.array([1.0, 1.0, 2.0])[:, None, None])
    ax = axes()
    plot_cdf_pair(ax, {"m": (maps[0], maps[2])}, window=3)
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["m z-1", "m z+1"]
    assert [ln.get_linestyle() for ln in lines] == ["-", "--"]
    x, f_low, f_high = lines[0].get_xdata(), lines[0].get_ydata(), lines[1].get_ydata()
    assert len(x) == CDF_POINTS
    area = float(np.sum(np.abs(f_low - f_high)[:-1] * np.diff(x)))
    # On an even grid the step area is within two grid spacings of the exact W1 (asymmetry.cdf_pair).
    assert area == pytest.approx(wasserstein_1d(maps[0], maps[2]), abs=2 * (x[1] - x[0]))
    assert len(ax.collections) == 1  # the shaded area
    assert ax.get_xlim() == (0.0, MAX_VALUE)


def test_cdf_curves_draw_given_grids_in_each_models_colour():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    ax = axes()
    plot_cdf_curves(ax, {"imagenet": (x, np.array([0.5, 1, 1, 1.0]), np.array([0.0, 0.5, 1, 1.0])),
                         "uniform-green": (x, np.array([0.5, 1, 1, 1.0]), np.array([0.5, 1, 1, 1.0]))},
                    window=5, title="pooled")
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["imagenet z-2", "imagenet z+2", "uniform-green z-2",
                                                "uniform-green z+2"]
    assert [ln.get_color() for ln in lines] == [MODEL_COLORS[0]] * 2 + [MODEL_COLORS[1]] * 2
    assert list(lines[1].get_ydata()) == [0.0, 0.5, 1.0, 1.0]
    assert len(ax.collections) == 2 and ax.get_title() == "pooled"


def test_metric_over_z_sorts_slices_and_marks_the_current_one():
    ax = axes()
    plot_metric_over_z(ax, {"m": ([3, 1, 2], [0.3, 0.1, 0.2])}, current_z=2)
    line = ax.get_lines()[0]
    assert list(line.get_xdata()) == [1, 2, 3]
    assert list(line.get_ydata()) == [0.1, 0.2, 0.3]
    marker = ax.get_lines()[1]
    assert list(marker.get_xdata()) == [2, 2]
    assert ax.get_ylabel() == "SWd" and ax.get_ylim()[0] == 0.0


def test_metric_over_z_marker_label_can_be_fixed():
    ax = axes()
    plot_metric_over_z(ax, {"m": ([1, 2], [0.1, 0.2])}, current_z=2, marker_label="current slice")
    assert ax.get_lines()[1].get_label() == "current slice"


def test_metric_over_z_without_a_current_slice_has_only_the_series():
    ax = axes()
    plot_metric_over_z(ax, {"a": ([0, 1], [1.0, 2.0]), "b": ([0, 1], [0.5, 0.5])}, metric="FWd")
    assert [ln.get_label() for ln in ax.get_lines()] == ["a", "b"]
    assert ax.get_ylabel() == "FWd"


def test_save_figure_writes_a_png_and_leaves_no_temporary(tmp_path):
    fig = new_figure(3.0, 2.0)
    plot_channel_shares(fig.subplots(), {"a": [0.2, 0.3, 0.5]})
    out = save_figure(fig, tmp_path / "sub" / "fig.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["fig.png"]


def test_save_figure_at_a_fixed_size_restores_the_shown_size(tmp_path):
    fig = new_figure(3.0, 2.0)
    plot_channel_shares(fig.subplots(), {"a": [0.2, 0.3, 0.5]})
    out = save_figure(fig, tmp_path / "fig.png", dpi=100, size=(5.0, 8.0))
    assert Image.open(out).size == (500, 800)
    assert tuple(fig.get_size_inches()) == (3.0, 2.0)
