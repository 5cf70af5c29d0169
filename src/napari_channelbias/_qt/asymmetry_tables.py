"""The asymmetry panel's tables: short metric labels, their tooltips, cell texts, a table that fits its rows.

Kept apart from :mod:`.asymmetry_panel` so the panel holds the wiring and these the presentation rules,
each tested on its own (how a number is written, how a volume cell reads).
"""

from __future__ import annotations

import math

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget

METRIC_LABELS = {  # short, so two models' columns fit a dock; the tooltips say what each one is
    "swd": "SWd",
    "fwd": "FWd",
    "js_sym": "JS sym",
    "js_full": "JS full",
    "bhatt_sym": "Bhatt. sym",
    "bhatt_full": "Bhatt. full",
}
METRIC_TIPS = {
    "swd": "Mean 1-D Wasserstein distance W1 between the value distributions of mirror channels "
           "(z-1 vs z+1 for a window of 3), after joint scaling to 0..255. 0 = symmetric attention.",
    "fwd": "Mean W1 over all channel pairs.",
    "js_sym": "Jensen-Shannon divergence (base 2, 0..1) of 256-bin histograms, mirror pairs.",
    "js_full": "Jensen-Shannon divergence, all pairs.",
    "bhatt_sym": "Bhattacharyya distance of 256-bin histograms, mirror pairs.",
    "bhatt_full": "Bhattacharyya distance, all pairs.",
}


def format_value(value: float) -> str:
    """How a metric appears in the tables (4 significant digits; blank for nan)."""
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4g}"


def volume_cell(pooled: float | None, mean: float | None, se: float | None) -> str:
    """The pooled value, and on a second line the per-slice mean ± SE: ``"6.42"`` over ``"6.42 ± 0.05"``.

    The second line is shorter (3 and 2 significant digits) so two models' columns fit a dock; the CSV
    export has every digit.
    """
    text = format_value(pooled)
    if mean is not None:
        spread = "n/a" if se is None or math.isnan(se) else f"{se:.2g}"
        text += f"\n{mean:.3g} ± {spread}"
    return text


def make_table(rows: int, columns: int, lines: int = 1) -> QTableWidget:
    table = QTableWidget(rows, columns)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
    table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    table.verticalHeader().setDefaultSectionSize(lines * table.fontMetrics().height() + 6)
    return table


def fit_height(table: QTableWidget) -> None:
    """Make a small table exactly as tall as its rows, so the panel needs no nested scrolling."""
    header = table.horizontalHeader()
    rows = sum(table.verticalHeader().sectionSize(r) for r in range(table.rowCount()))
    table.setFixedHeight(max(header.height(), header.sizeHint().height()) + rows + 2 * table.frameWidth() + 2)
    table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)


