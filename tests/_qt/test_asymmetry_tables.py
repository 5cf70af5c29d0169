"""How the asymmetry panel writes its numbers: 4 significant digits, blank for NaN, volume cells on two lines."""

from __future__ import annotations

import pytest

from napari_channelbias._qt.asymmetry_tables import fit_height, format_value, make_table, volume_cell


def test_values_have_four_significant_digits_and_nan_is_blank():
    assert format_value(6.42173) == "6.422"
    assert format_value(0.000123456) == "0.0001235"
    assert format_value(float("nan")) == "" and format_value(None) == ""


def test_volume_cell_is_pooled_over_mean_and_se():
    assert volume_cell(6.4217, 6.4183, 0.050451) == "6.422\n6.42 ± 0.05"
    assert volume_cell(0.5, 0.25, float("nan")) == "0.5\n0.25 ± n/a"
    assert volume_cell(0.5, None, None) == "0.5"


@pytest.mark.gui
def test_a_table_is_exactly_as_tall_as_its_rows(qtbot):
    table = make_table(3, 1, lines=2)
    qtbot.addWidget(table)
    fit_height(table)
    rows = sum(table.verticalHeader().sectionSize(r) for r in range(3))
    assert table.height() >= rows and table.height() - rows < 80
