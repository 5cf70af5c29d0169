"""Data section: layer choice follows the viewer, bad inputs are explained, the 2D+ preview is exact."""

from __future__ import annotations

import numpy as np
import pytest

from napari_channelbias._qt.data_section import (
    NO_LABELS,
    PREVIEW_LAYER_KEY,
    SALIENCY_LAYER_KEY,
    DataSection,
    preview_name,
)
from napari_channelbias.errors import VolumeError
from napari_channelbias.windowing import Normalizer, extract_window
from napari_channelbias.workspace import workspace_for
from qt_helpers import SCALE, TRANSLATE, messages

pytest_plugins = ["qt_helpers"]
pytestmark = pytest.mark.gui
WAIT_MS = 120_000  # generous for a loaded CI machine; waits return as soon as the condition holds


def test_preview_names_show_the_offsets_of_the_shown_channels():
    assert preview_name(3) == "2D+ input (z-1, z, z+1)"
    assert preview_name(5) == "2D+ input (z-2, z, z+2)"
    assert preview_name(1) == "2D+ input (z, z, z)"


def test_layer_lists_follow_the_viewer(em_viewer, qtbot):
    data = DataSection(em_viewer, workspace_for(em_viewer))
    qtbot.addWidget(data)
    assert data.image_combo.currentText() == "em"
    assert data.labels_combo.currentText() == "em labels"
    em_viewer.add_image(np.zeros((4, 8, 8)), name="other")
    assert [data.image_combo.itemText(i) for i in range(data.image_combo.count())] == ["em", "other"]
    em_viewer.layers["em"].name = "renamed"
    assert data.image_combo.findText("renamed") >= 0 and data.image_combo.currentText() == "renamed"
    em_viewer.layers.remove("em labels")
    assert data.labels_combo.currentText() == NO_LABELS


def test_own_display_layers_are_not_offered_as_images(em_viewer, qtbot):
    data = DataSection(em_viewer, workspace_for(em_viewer))
    qtbot.addWidget(data)
    em_viewer.add_image(np.zeros((8, 64, 64), np.float32), name="lite0 saliency z",
                        metadata={SALIENCY_LAYER_KEY: {"model": "lite0", "channel": 1}})
    em_viewer.add_image(np.zeros((8, 64, 64), np.float32), name="grey preview", metadata={PREVIEW_LAYER_KEY: True})
    em_viewer.add_image(np.zeros((8, 64, 64), np.float32), name="mine", metadata={"note": "a user's layer"})
    assert [data.image_combo.itemText(i) for i in range(data.image_combo.count())] == ["em", "mine"]


def test_selection_reports_what_is_missing(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    data = DataSection(viewer, workspace_for(viewer))
    qtbot.addWidget(data)
    with pytest.raises(VolumeError, match="no image layer is selected; open a 3-D stack"):
        data.selection()
    viewer.add_image(np.zeros((32, 32)), name="flat")
    with pytest.raises(VolumeError, match="2-D"):
        data.selection()
    viewer.layers.remove("flat")
    viewer.add_image(np.zeros((5, 32, 32), np.uint8), name="stack")
    with pytest.raises(VolumeError, match="training needs a labels layer"):
        data.selection(require_labels=True)
    viewer.add_labels(np.zeros((5, 16, 16), np.uint8), name="small labels")
    with pytest.raises(VolumeError, match=r"labels have shape \(5, 16, 16\) but the image has shape"):
        data.selection(require_labels=True)


def test_window_stays_odd(em_viewer, qtbot):
    data = DataSection(em_viewer, workspace_for(em_viewer))
    qtbot.addWidget(data)
    data.window_spin.setValue(4)
    assert data.window_spin.value() == 5


def test_preview_is_the_models_input_of_the_current_slice(widget, em_viewer, sample_volume, qtbot):
    data = widget.data
    em_viewer.dims.set_point(0, TRANSLATE[0] + 5 * SCALE[0])  # slice 5 in world coordinates
    data.preview_check.setChecked(True)
    data.update_preview()
    layer = em_viewer.layers[preview_name(3)]
    assert layer.rgb and layer.data.shape == (64, 64, 3)
    expected = extract_window(sample_volume[0], 5, 3, "mirror", 0, Normalizer.fit(sample_volume[0]))
    # red = slice 4 (z-1), green = slice 5, blue = slice 6, after the model's normalisation
    np.testing.assert_allclose(layer.data, np.clip(np.moveaxis(expected, 0, -1), 0, 1), atol=1e-6)
    assert tuple(layer.scale) == SCALE[1:] and tuple(layer.translate) == TRANSLATE[1:]

    # the slider moves the preview (through the debounce timer)
    em_viewer.dims.set_point(0, TRANSLATE[0])
    qtbot.waitUntil(lambda: data.current_slice() == 0, timeout=WAIT_MS)
    qtbot.wait(100)
    first = extract_window(sample_volume[0], 0, 3, "mirror", 0, Normalizer.fit(sample_volume[0]))
    np.testing.assert_allclose(layer.data[..., 0], np.clip(first[0], 0, 1), atol=1e-6)  # mirror: slice 1
    np.testing.assert_allclose(layer.data[..., 0], layer.data[..., 2], atol=1e-6)
    # the preview is not offered as an image to train on, and unchecking removes it
    assert data.image_combo.findText(preview_name(3)) == -1
    data.preview_check.setChecked(False)
    qtbot.waitUntil(lambda: preview_name(3) not in em_viewer.layers, timeout=WAIT_MS)


def test_preview_errors_become_notifications(make_napari_viewer, qtbot, notes):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((16, 16, 3), np.uint8), name="photo", rgb=True)
    viewer.add_image(np.zeros((4, 16, 16), np.float32), name="stack")
    data = DataSection(viewer, workspace_for(viewer))
    viewer.window.add_dock_widget(data)
    assert data.image_combo.findText("photo") == -1  # colour images are not offered at all
    viewer.layers.remove("stack")
    viewer.add_image(np.zeros((16, 16), np.float32), name="flat")
    data.preview_check.setChecked(True)
    qtbot.waitUntil(lambda: bool(messages(notes)), timeout=WAIT_MS)
    assert "2D+ preview" in messages(notes)[0] and "2-D" in messages(notes)[0]
