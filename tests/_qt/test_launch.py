"""``channelbias gui``: the plugin docked on a volume (with labels and checkpoints) or on the sample."""

from __future__ import annotations

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
    [widget] = [d.widget() for d in viewer.window._dock_widgets.values()
                if isinstance(d.widget(), ChannelBiasWidget)]
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
