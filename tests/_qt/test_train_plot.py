"""The live training plot: points accumulate, redraws are coalesced, axes follow the data."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("napari")

import numpy as np  # noqa: E402

from napari_channelbias._qt.train_plot import REDRAW_MS, TrainPlot, _columns

pytestmark = pytest.mark.gui
WAIT_MS = 120_000  # generous for a loaded CI machine; waits return as soon as the condition holds


def test_many_points_cost_few_redraws(qtbot):
    plot = TrainPlot()
    qtbot.addWidget(plot)
    plot.show()
    qtbot.waitExposed(plot, timeout=WAIT_MS)
    for step in range(1, 501):
        plot.add_loss(step, 1.0 / step)
    plot.add_validation(250, 0.5)
    plot.add_validation(500, 0.75, is_best=True)
    plot.add_loss(501, math.nan)  # a non-finite loss is not drawn
    qtbot.waitUntil(lambda: plot.draws >= 1, timeout=WAIT_MS)
    qtbot.wait(2 * REDRAW_MS)
    assert plot.draws <= 4  # a handful of paints, not 500
    assert len(plot.steps) == 500 and plot.best == (500, 0.75)
    assert plot.log_scale  # the loss spans more than a decade
    draws = plot.draws
    qtbot.wait(2 * REDRAW_MS)
    assert plot.draws == draws  # nothing new, nothing drawn


def test_columns_average_runs_of_points():
    x = np.arange(10.0)
    cx, cy = _columns(x, 2 * x, 5)
    np.testing.assert_allclose(cx, [0.5, 2.5, 4.5, 6.5, 8.5])
    np.testing.assert_allclose(cy, 2 * cx)
    same = _columns(x[:3], x[:3], 5)
    assert same[0] is x[:3] or np.array_equal(same[0], x[:3])


def test_paint_is_cheap_and_grabs_a_picture(qtbot):
    plot = TrainPlot()
    qtbot.addWidget(plot)
    plot.resize(400, 200)
    for step in range(1, 5001):
        plot.add_loss(step, 0.5 + 0.1 * math.sin(step))
    plot.add_validation(2500, 0.6, is_best=True)
    image = plot.grab().toImage()  # paints once, off screen
    assert plot.draws == 1 and image.width() == 400
    assert not plot.log_scale  # the loss stays within a decade


def test_clear_starts_over(qtbot):
    plot = TrainPlot()
    qtbot.addWidget(plot)
    plot.add_loss(1, 0.5)
    plot.add_validation(1, 0.1, is_best=True)
    plot.clear()
    plot.redraw()
    assert plot.steps == [] and plot.val_steps == [] and plot.best is None
