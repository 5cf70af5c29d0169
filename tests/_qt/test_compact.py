"""Compact combo boxes: narrow in the dock, whole names in the popup."""

from __future__ import annotations

import pytest
from qtpy.QtWidgets import QComboBox

from napari_channelbias._qt.compact import compact_combo

pytestmark = pytest.mark.gui
LONG = "deeplabv3plus-resnet34-uniform-green, trained on a long file name"


def test_a_long_item_does_not_widen_the_combo_but_fits_the_popup(qtbot):
    plain, compact = QComboBox(), compact_combo(QComboBox())
    for combo in (plain, compact):
        qtbot.addWidget(combo)
        combo.addItems(["unet", LONG])
    assert compact.minimumSizeHint().width() < plain.minimumSizeHint().width() / 2
    text_width = compact.view().sizeHintForColumn(0)
    assert compact.view().minimumWidth() > text_width  # items added after the call are measured too
    compact.clear()
    assert compact.view().minimumWidth() == 0


def test_tooltip_can_show_the_current_text(qtbot):
    combo = compact_combo(QComboBox(), tooltip_shows_text=True)
    qtbot.addWidget(combo)
    combo.addItems(["short", LONG])
    combo.setCurrentText(LONG)
    assert combo.toolTip() == LONG
