"""``channelbias gui``: the plugin docked on a volume (with labels and checkpoints) or on the sample."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_channelbias._qt import bridge
from napari_channelbias._qt.launch import launch
from napari_channelbias._qt.main_widget import ChannelBiasWidget
from napari_channelbias.errors import CheckpointError, VolumeError
from qt_helpers import SCALE, wait_job

pytest_plugins = ["qt_helpers"]
pytestmark = pytest.mark.gui


def dock_of(viewer) -> ChannelBiasWidget:
    [widget] = [w for w in viewer.window.dock_widgets.values() if isinstance(w, ChannelBiasWidget)]
    return widget


def test_launch_on_a_volume_with_labels_and_a_checkpoint(make_napari_viewer, qtbot, tmp_path,
                                                        sample_volume, checkpoint_file):
    image, labels = sample_volume
    tifffile.imwrite(tmp_path / "em.tif", image, imagej=True, resolution=(1 / SCALE[1], 1 / SCALE[2]),
                     metadata={"spacing": SCALE[0], "unit": "nm"})
    tifffile.imwrite(tmp_path / "em-labels.tif", labels, photometric="minisblack")
    viewer = launch(tmp_path / "em.tif", labels=tmp_path / "em-labels.tif", checkpoints=[checkpoint_file],
                    viewer=make_napari_viewer(), run=False)
    assert [layer.name for layer in viewer.layers] == ["em", "em-labels"]
    np.testing.assert_allclose(viewer.layers["em"].scale, SCALE)
    np.testing.assert_allclose(viewer.layers["em-labels"].scale, SCALE)
    widget = dock_of(viewer)
    assert widget.data.image_combo.currentText() == "em"
    assert widget.data.labels_combo.currentText() == "em-labels"
    model = widget.sections["Model"]
    if model.job is not None:
        wait_job(qtbot, model.job)
    assert widget.workspace.names() == ["lite0-random"]


def test_launch_on_the_sample(make_napari_viewer):
    viewer = launch(viewer=make_napari_viewer(), run=False)
    assert [layer.name for layer in viewer.layers] == ["sample EM", "sample labels"]
    assert dock_of(viewer).data.labels_combo.currentText() == "sample labels"


def test_bad_paths_fail_before_a_window_opens(tmp_path, sample_volume):
    with pytest.raises(VolumeError, match="no file or folder"):
        launch(tmp_path / "missing.tif", run=False)
    tifffile.imwrite(tmp_path / "em.tif", sample_volume[0], photometric="minisblack")
    tifffile.imwrite(tmp_path / "small.tif", sample_volume[1][:, :32], photometric="minisblack")
    with pytest.raises(VolumeError, match="must match voxel for voxel"):
        launch(tmp_path / "em.tif", labels=tmp_path / "small.tif", run=False)
    with pytest.raises(CheckpointError, match="not found"):
        launch(tmp_path / "em.tif", checkpoints=[tmp_path / "none.pt"], run=False)
    with pytest.raises(VolumeError, match="--labels needs the image"):
        launch(labels=tmp_path / "small.tif", run=False)
    assert bridge.all_jobs() == []


# What `channelbias gui` does at start, in a fresh process (napari shows its PyQt5 deprecation notice once
# per process, when the first window is shown): the binding qtpy chose, and every notification and warning.
_START_SCRIPT = """
import json, warnings
from napari.utils.notifications import notification_manager
notes = []
notification_manager.notification_ready.connect(lambda n: notes.append(str(n.message)))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    from napari_channelbias._qt.launch import launch
    viewer = launch(run=False)
    from qtpy.QtWidgets import QApplication
    for _ in range(20):
        QApplication.processEvents()
    import qtpy
    print(json.dumps({"api": qtpy.API_NAME, "qt": qtpy.QT_VERSION, "notes": notes,
                      "warnings": [str(w.message) for w in caught]}))
    viewer.close()
"""


def test_napari_starts_on_qt6_without_a_deprecation_notice(tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env.pop("QT_API", None)  # the binding qtpy finds installed, as for a user
    out = subprocess.run([sys.executable, "-c", _START_SCRIPT], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["api"] in ("PyQt6", "PySide6") and report["qt"].startswith("6."), report
    assert not [n for n in report["notes"] if "deprecat" in n.lower() or "PyQt5" in n], report["notes"]
    assert not [w for w in report["warnings"] if "PyQt5" in w or "Qt5" in w], report["warnings"]
