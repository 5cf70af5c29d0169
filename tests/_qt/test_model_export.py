"""Export... in the Model section: a package from the selected model in a real viewer, loaded back."""

from __future__ import annotations

import pytest
import torch

from qt_helpers import messages, wait_job

pytest_plugins = ["qt_helpers"]
pytestmark = pytest.mark.gui
pytest.importorskip("bioimageio.core", reason="the bioimageio extra is not installed")


def test_export_button_writes_a_package_that_loads_back(widget, qtbot, checkpoint_file, tmp_path, notes, monkeypatch):
    from qtpy.QtWidgets import QFileDialog

    section = widget.sections["Model"]
    assert not section.export_button.isEnabled()  # nothing to export yet
    wait_job(qtbot, section.load_checkpoint_file(checkpoint_file))
    assert section.export_button.isEnabled()
    out = tmp_path / "exported.zip"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))  # the modal dialog
    section.export_button.click()
    wait_job(qtbot, section.job)
    assert messages(notes) == []
    assert out.is_file()
    assert any("exported" in m and "SWd" in m for m in messages(notes, None))

    original = section.workspace.get(section.selected_name())
    wait_job(qtbot, section.load_checkpoint_file(out))  # Load... takes packages
    loaded = section.workspace.get(section.selected_name())
    assert loaded.name != original.name
    assert loaded.card.model == original.card.model
    for key, value in original.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key

    # exporting onto an existing file is a notification, and the file stays as it was
    before = out.read_bytes()
    section.export_button.click()
    wait_job(qtbot, section.job)
    assert any("already exists" in m for m in messages(notes))
    assert out.read_bytes() == before
