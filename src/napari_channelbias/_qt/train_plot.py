"""A live plot of training: loss per step and validation Dice, drawn at most a few times a second.

Redrawing a matplotlib figure costs tens of milliseconds; doing it for every optimiser step would make
the GUI thread the bottleneck of training and the viewer sluggish. Points are therefore appended to
plain lists as events arrive and a timer redraws (``draw_idle``) only when something changed, at most
every :data:`REDRAW_MS` milliseconds.
"""

from __future__ import annotations

import math

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

REDRAW_MS = 250
BACKGROUND, FOREGROUND, GRID = "#262930", "#f0f1f2", "#414851"
LOSS_COLOR, DICE_COLOR = "#56B4E9", "#E69F00"  # Okabe-Ito sky blue and orange


class TrainPlot(QWidget):
    """Training loss (left axis, log scale once it spans a decade) and validation Dice (right axis)."""

    def __init__(self, parent: QWidget | None = None, height: int = 200) -> None:
        super().__init__(parent)
        self.figure = Figure(figsize=(4, 2), dpi=90, facecolor=BACKGROUND, layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(height)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)

        self.loss_axes = self.figure.add_subplot(1, 1, 1)
        self.dice_axes = self.loss_axes.twinx()
        for ax in (self.loss_axes, self.dice_axes):
            ax.set_facecolor(BACKGROUND)
            ax.tick_params(colors=FOREGROUND, labelsize=7)
            for spine in ax.spines.values():
                spine.set_color(GRID)
        self.loss_axes.set_xlabel("step", color=FOREGROUND, fontsize=8)
        self.loss_axes.set_ylabel("training loss", color=LOSS_COLOR, fontsize=8)
        self.dice_axes.set_ylabel("validation Dice", color=DICE_COLOR, fontsize=8)
        self.dice_axes.set_ylim(0.0, 1.0)
        self.loss_axes.grid(True, color=GRID, linewidth=0.5)
        (self._loss_line,) = self.loss_axes.plot([], [], color=LOSS_COLOR, linewidth=1.0, label="loss")
        (self._dice_line,) = self.dice_axes.plot(
            [], [], color=DICE_COLOR, marker="o", markersize=3, linewidth=1.2, label="val Dice"
        )
        (self._best,) = self.dice_axes.plot([], [], linestyle="none", marker="*", markersize=9,
                                            color=DICE_COLOR, label="best")

        self.steps: list[int] = []
        self.losses: list[float] = []
        self.val_steps: list[int] = []
        self.dice: list[float] = []
        self.best: tuple[int, float] | None = None
        self._dirty = False
        self.draws = 0
        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self._redraw_if_dirty)
        self._timer.start()

    # -- data --------------------------------------------------------------------------------------
    def clear(self) -> None:
        self.steps.clear()
        self.losses.clear()
        self.val_steps.clear()
        self.dice.clear()
        self.best = None
        self._dirty = True

    def add_loss(self, step: int, loss: float) -> None:
        if math.isfinite(loss):
            self.steps.append(int(step))
            self.losses.append(float(loss))
            self._dirty = True

    def add_validation(self, step: int, dice: float, is_best: bool = False) -> None:
        self.val_steps.append(int(step))
        self.dice.append(float(dice))
        if is_best:
            self.best = (int(step), float(dice))
        self._dirty = True

    # -- drawing -----------------------------------------------------------------------------------
    def _redraw_if_dirty(self) -> None:
        if self._dirty and self.isVisible():
            self.redraw()

    def redraw(self) -> None:
        """Update the lines and rescale the axes now."""
        self._dirty = False
        self._loss_line.set_data(self.steps, self.losses)
        self._dice_line.set_data(self.val_steps, self.dice)
        self._best.set_data(*([self.best[0]], [self.best[1]]) if self.best else ([], []))
        if self.steps:
            last = max(self.steps[-1], self.val_steps[-1] if self.val_steps else 0)
            self.loss_axes.set_xlim(0, max(last, 1))
            low, high = min(self.losses), max(self.losses)
            positive = low > 0
            self.loss_axes.set_yscale("log" if positive and high / low > 10 else "linear")
            pad = 0.05 * (high - low or abs(high) or 1.0)
            self.loss_axes.set_ylim(low / 1.2 if positive and high / low > 10 else low - pad, high + pad)
        self.canvas.draw_idle()
        self.draws += 1
