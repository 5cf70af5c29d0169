"""The live training plot: points accumulate, redraws are coalesced, axes follow the data."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("napari")

from napari_channelbias._qt.train_plot import REDRAW_MS, TrainPlot  # noqa: E402

pytestmark = pytest.mark.gui


def test_many_points_cost_few_redraws(qtbot):
    plot = TrainPlot()
    qtbot.addWidget(plot)
    plot.show()
    qtbot.waitExposed(plot)
    for step in range(1, 501):
        plot.add_loss(step, 1.0 / step)
    plot.add_validation(250, 0.5)
    plot.add_validation(500, 0.75, is_best=True)
    plot.add_loss(501, math.nan)  # a non-finite loss is not drawn
    qtbot.wait(3 * REDRAW_MS)
    assert 1 <= plot.draws <= 3  # not 500
    assert len(plot.steps) == 500 and plot.best == (500, 0.75)
    assert plot.loss_axes.get_yscale() == "log"  # the loss spans more than a decade
    assert plot.loss_axes.get_xlim() == (0.0, 500.0)
    draws = plot.draws
    qtbot.wait(2 * REDRAW_MS)
    assert plot.draws == draws  # nothing new, nothing drawn


def test_clear_starts_over(qtbot):
    plot = TrainPlot()
    qtbot.addWidget(plot)
    plot.add_loss(1, 0.5)
    plot.add_validation(1, 0.1, is_best=True)
    plot.clear()
    plot.redraw()
    assert plot.steps == [] and plot.val_steps == [] and plot.best is None
