"""A live plot of training: loss per step and validation Dice, painted directly with QPainter.

Why not matplotlib here: ``benchmarks/bench_gui_latency.py`` showed the event loop stalling for
hundreds of milliseconds while the plot redrew during training. A matplotlib redraw of a small figure
(text layout, twin axes, log scale) took 80-340 ms on a busy 2-core machine, all of it Python on the GUI
thread competing for the GIL with the training thread. Painting two polylines and a few labels with
QPainter costs well under a millisecond, and Qt merges repaint requests, so the plot can follow every
step. Long curves are reduced to one point per pixel column (the mean of the steps it covers) before
painting.
"""

from __future__ import annotations

import math

import numpy as np
from qtpy.QtCore import QPointF, QRectF, Qt, QTimer
from qtpy.QtGui import QColor, QFont, QPainter, QPainterPath, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

REDRAW_MS = 250
BACKGROUND, FOREGROUND, GRID = QColor("#262930"), QColor("#f0f1f2"), QColor("#414851")
LOSS_COLOR, DICE_COLOR = QColor("#56B4E9"), QColor("#E69F00")  # Okabe-Ito sky blue and orange
MARGINS = (44, 18, 28, 22)  # left, top, right, bottom, in pixels: room for labels and legend


def _columns(x: np.ndarray, y: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``n`` points: the mean x and y of consecutive runs of points (one run per column)."""
    if len(x) <= n:
        return x, y
    edges = np.linspace(0, len(x), n + 1).astype(int)[:-1]
    counts = np.diff(np.append(edges, len(x)))
    return np.add.reduceat(x, edges) / counts, np.add.reduceat(y, edges) / counts


class TrainPlot(QWidget):
    """Training loss (left axis, log scale once it spans more than a decade) and validation Dice (right)."""

    def __init__(self, parent: QWidget | None = None, height: int = 180) -> None:
        super().__init__(parent)
        self.setMinimumHeight(height)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.val_steps: list[int] = []
        self.dice: list[float] = []
        self.best: tuple[int, float] | None = None
        self.log_scale = False
        self.draws = 0
        self._dirty = False
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
        """Repaint at the next opportunity (Qt merges several requests into one paint)."""
        self._dirty = False
        self.update()

    def _loss_range(self) -> tuple[float, float]:
        low, high = min(self.losses), max(self.losses)
        self.log_scale = low > 0 and high / low > 10
        if self.log_scale:
            return math.log10(low), math.log10(high)
        pad = 0.05 * (high - low or abs(high) or 1.0)
        return low - pad, high + pad

    def paintEvent(self, event: object) -> None:  # noqa: N802 (Qt's name)
        self.draws += 1
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), BACKGROUND)
        left, top, right, bottom = MARGINS
        box = QRectF(left, top, max(1, self.width() - left - right), max(1, self.height() - top - bottom))
        painter.setPen(QPen(GRID, 1))
        painter.drawRect(box)
        font = QFont(painter.font())
        font.setPointSizeF(7.5)
        painter.setFont(font)
        last = max([1, *self.steps[-1:], *self.val_steps[-1:]])
        legend_end = box.left()

        def px(step: float) -> float:
            return box.left() + box.width() * step / last

        def text(x: float, y: float, value: str, color: QColor, align: Qt.AlignmentFlag) -> None:
            """Draw ``value`` starting at (left), ending at (right) or centred on (else) ``x``."""
            width = 240.0
            start = x if align == Qt.AlignmentFlag.AlignLeft else x - width if (
                align == Qt.AlignmentFlag.AlignRight) else x - width / 2
            painter.setPen(color)
            painter.drawText(QRectF(start, y - 8, width, 16), int(align | Qt.AlignmentFlag.AlignVCenter), value)

        text(box.left(), box.bottom() + 10, "0", FOREGROUND, Qt.AlignmentFlag.AlignCenter)
        text(box.right(), box.bottom() + 10, f"{last}", FOREGROUND, Qt.AlignmentFlag.AlignCenter)
        text(box.center().x(), box.bottom() + 10, "step", FOREGROUND, Qt.AlignmentFlag.AlignCenter)
        for value in (0.0, 0.5, 1.0):  # Dice axis, right
            y = box.bottom() - box.height() * value
            text(box.right() + 4, y, f"{value:.1f}", DICE_COLOR, Qt.AlignmentFlag.AlignLeft)

        if self.losses:
            low, high = self._loss_range()
            x, y = _columns(np.asarray(self.steps, float), np.asarray(self.losses, float), int(box.width()))
            if self.log_scale:
                y = np.log10(y)
            span = (high - low) or 1.0
            ys = box.bottom() - box.height() * (y - low) / span
            xs = box.left() + box.width() * x / last
            painter.setPen(QPen(LOSS_COLOR, 1.2))
            painter.drawPolyline(QPolygonF([QPointF(a, b) for a, b in zip(xs, ys, strict=True)]))
            for value, y_px in ((high, box.top()), (low, box.bottom())):
                label = f"{10 ** value:.3g}" if self.log_scale else f"{value:.3g}"
                text(box.left() - 4, y_px, label, LOSS_COLOR, Qt.AlignmentFlag.AlignRight)
            legend = f"loss {self.losses[-1]:.4f}"
            text(box.left(), top / 2, legend, LOSS_COLOR, Qt.AlignmentFlag.AlignLeft)
            legend_end = box.left() + painter.fontMetrics().horizontalAdvance(legend) + 12

        if self.dice:
            points = [QPointF(px(s), box.bottom() - box.height() * d) for s, d in zip(self.val_steps, self.dice,
                                                                                      strict=True)]
            painter.setPen(QPen(DICE_COLOR, 1.5))
            if len(points) > 1:
                painter.drawPolyline(QPolygonF(points))
            painter.setBrush(DICE_COLOR)
            for point in points:
                painter.drawEllipse(point, 2.5, 2.5)
            label = f"val Dice {self.dice[-1]:.3f}"
            if self.best is not None:
                star = QPainterPath()
                bx, by = px(self.best[0]), box.bottom() - box.height() * self.best[1]
                for i in range(10):
                    radius = 6 if i % 2 == 0 else 2.5
                    angle = math.pi / 2 + i * math.pi / 5
                    point = QPointF(bx + radius * math.cos(angle), by - radius * math.sin(angle))
                    star.moveTo(point) if i == 0 else star.lineTo(point)
                star.closeSubpath()
                painter.drawPath(star)
                label += f" (best {self.best[1]:.3f} at {self.best[0]})"
            text(legend_end, top / 2, label, DICE_COLOR, Qt.AlignmentFlag.AlignLeft)
        painter.end()
