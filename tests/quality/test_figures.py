"""The quality figures draw on a given Axes and save as PNG through the Agg canvas (no pyplot)."""

from __future__ import annotations

import sys

from napari_channelbias.quality.figures import plot_ablation, plot_coverage, plot_layer_sa, plot_mu_over_z, save_png

PNG = b"\x89PNG\r\n\x1a\n"


def test_every_figure_saves_a_png_without_pyplot(tmp_path):
    mu = {"a": {0: 0.5, 1: None, 2: 0.7}, "b": {0: 0.6, 1: 0.4, 2: 0.8}}
    dice = {"a": {0: 0.6, 1: 0.3, 2: 0.9}}
    points = [{"fraction": 1.0, "dice_mean": 0.6, "oracle_mean": 0.6},
              {"fraction": 0.5, "dice_mean": 0.7, "oracle_mean": 0.75}]
    draws = {
        "mu": lambda ax: plot_mu_over_z(ax, mu, current=1, dice=dice),
        "sa": lambda ax: plot_layer_sa(ax, ["encoder.stage1", "decoder.block5"], {"a": [0.2, None]}),
        "cov": lambda ax: plot_coverage(ax, {"a": points}),
        "abl": lambda ax: plot_ablation(ax, 3, {"mean": [0.1, 0.3, 0.2], "centre": [0.05, float("nan"), 0.1]},
                                        "Dice drop"),
    }
    for name, draw in draws.items():
        path = save_png(tmp_path / f"{name}.png", draw)
        assert path.read_bytes()[:8] == PNG
    assert "matplotlib.pyplot" not in sys.modules
