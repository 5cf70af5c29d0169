"""Widgets that let the plugin's docks work at about 360 px wide.

By default a combo box is as wide as its longest item ("deeplabv3plus-resnet34-uniform-green", an image
layer named after a long file), and in a form that width becomes the whole dock's minimum width: the
main dock then needs a horizontal scrollbar. :func:`compact_combo` lets a combo box shrink to a few
characters, eliding the shown text, while its popup still shows every item whole.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QComboBox

COMBO_CHARS = 10  # characters a compact combo box shows at least; longer texts are elided
POPUP_PADDING = 24  # room beside the longest item in the popup: frame, margins, a possible scrollbar


def compact_combo(combo: QComboBox, chars: int = COMBO_CHARS, tooltip_shows_text: bool = False) -> QComboBox:
    """Let ``combo`` shrink to ``chars`` characters; its popup stays as wide as its longest item.

    Parameters
    ----------
    combo
        The combo box (items may be added before or after).
    chars
        The fewest characters it shows before eliding.
    tooltip_shows_text
        Show the current text as the tooltip (for combos whose names are the information, not a setting
        explained by a fixed tooltip), so an elided name can still be read.

    Returns
    -------
    QComboBox
        ``combo`` itself, for chaining.
    """
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(chars)

    def fit_popup(*_: Any) -> None:
        view = combo.view()
        view.setMinimumWidth(view.sizeHintForColumn(0) + POPUP_PADDING if combo.count() else 0)

    model = combo.model()
    for signal in (model.rowsInserted, model.rowsRemoved, model.modelReset, model.dataChanged):
        signal.connect(fit_popup)
    fit_popup()
    if tooltip_shows_text:
        combo.currentTextChanged.connect(combo.setToolTip)
        combo.setToolTip(combo.currentText())
    return combo
