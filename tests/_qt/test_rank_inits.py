"""The Model section's "Rank initialisations on this image" panel, in a real viewer."""

from __future__ import annotations

import pytest
from qtpy.QtWidgets import QAbstractItemView

from napari_channelbias.transfer.ranking import RankConfig, rank_inits
from qt_helpers import messages, wait_job

pytest_plugins = ["qt_helpers"]
pytestmark = pytest.mark.gui


def test_rank_shows_the_table_and_a_chosen_row_fills_the_init(widget, qtbot, sample_volume):
    model = widget.sections["Model"]
    panel = model.rank_inits
    panel.candidates_edit.setText("imagenet,mirror,random")
    panel.windows_spin.setValue(4)
    assert panel.table.selectionBehavior() == QAbstractItemView.SelectionBehavior.SelectRows
    wait_job(qtbot, panel.start())
    result = panel.result
    assert result is not None and panel.rank_button.isEnabled()

    # The GUI hands the core the same job a script would run: same image, same settings, same scores.
    core = rank_inits(sample_volume[0], RankConfig(inits=["imagenet", "mirror", "random"], windows=4,
                                                   patch_size=64))
    assert [(s.init, s.rho) for s in result.scores] == [(s.init, s.rho) for s in core.scores]

    table = panel.table
    assert table.rowCount() == 3
    shown = [table.item(r, 1).text() for r in range(3)]
    assert shown == [s.init for s in result.pretrained] + ["random"]
    assert table.item(2, 0).text() == "apart"
    best_row = shown.index(result.best)
    assert best_row == 0 and table.item(0, 1).font().bold() and not table.item(1, 1).font().bold()
    assert f"best pretrained: {result.best}" in panel.note.text() and "never ranked best" in panel.note.text()

    other = shown[1]
    table.selectRow(1)
    assert model.init_combo.currentText() == other
    table.selectRow(0)
    assert model.init_combo.currentText() == result.best
    assert model.spec().init == result.best  # the next training starts from the chosen init


def test_checkpoint_candidate_fills_the_path(widget, qtbot, checkpoint_file):
    model = widget.sections["Model"]
    panel = model.rank_inits
    panel.candidates_edit.setText(f"checkpoint:{checkpoint_file}")
    panel.windows_spin.setValue(3)
    wait_job(qtbot, panel.start())
    assert panel.table.rowCount() == 1 and panel.result.best == f"checkpoint:{checkpoint_file}"
    panel.table.selectRow(0)
    assert model.init_combo.currentText() == "checkpoint" and model.init_path.text() == str(checkpoint_file)


def test_bad_candidate_is_a_notification_not_a_crash(widget, qtbot, notes):
    panel = widget.sections["Model"].rank_inits
    panel.candidates_edit.setText("imagenet,vgg16")
    panel.rank_button.click()
    qtbot.waitUntil(lambda: bool(messages(notes)), timeout=30_000)
    assert any("unknown init 'vgg16'" in m for m in messages(notes))
    assert panel.job is None and panel.rank_button.isEnabled()
