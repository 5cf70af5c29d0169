"""Quality section in a real viewer: mu over z and the review list, jump to a slice, SAM layer, SA bars,
two models side by side, cancel; the numbers equal the core's."""

from __future__ import annotations

import numpy as np
import pytest

from napari_channelbias._qt.quality_section import Z_ROLE
from napari_channelbias.models.factory import load_checkpoint
from napari_channelbias.quality.slice_quality import slice_quality
from qt_helpers import SCALE, SHAPE, TRANSLATE, messages, wait_job

pytest_plugins = ["qt_helpers"]
pytestmark = pytest.mark.gui


@pytest.fixture
def quality(widget, qtbot, checkpoint_file):
    wait_job(qtbot, widget.sections["Model"].load_checkpoint_file(checkpoint_file))
    section = widget.sections["Quality"]
    section.device_combo.setCurrentText("cpu")
    return section


def test_volume_scores_equal_the_core_and_the_list_jumps(quality, em_viewer, qtbot, checkpoint_file,
                                                          sample_volume, notes):
    widget_data = quality.data
    widget_data.labels_combo.setCurrentIndex(0)  # label-free: no labels layer chosen
    wait_job(qtbot, quality.score_volume())
    assert messages(notes) == []
    name = quality.model_combo.currentText()
    model, card = load_checkpoint(checkpoint_file)
    expected = slice_quality(model, card, sample_volume[0], device="cpu")
    got = {z: q.mu for z, q in quality.scores[name].items()}
    assert set(got) == set(expected.mu())
    for z, mu in expected.mu().items():  # the worker may use fewer threads: float sums in another order
        assert got[z] is None if mu is None else got[z] == pytest.approx(mu, abs=1e-6)
    assert quality.review_list.count() == SHAPE[0]
    first = quality.review_list.item(0)
    order = quality.review_order()
    assert first.text().startswith(f"1. z={order[0].z} ")
    assert sum(q.mu is not None for q in quality.scores[name].values()) > 0  # not all missing
    # mu is drawn with the current slice marked; clicking an item moves the viewer to that slice.
    ax = quality.mu_plot.figure.axes[0]
    assert len(ax.lines) >= 2  # the mu curve and the current-slice marker
    target = quality.review_list.item(quality.review_list.count() - 1)
    quality._jump(target)
    z = int(target.data(Z_ROLE))
    assert em_viewer.dims.point[0] == pytest.approx(TRANSLATE[0] + z * SCALE[0])
    assert quality.data.current_slice() == z


def test_slice_sam_layer_and_per_layer_bars_with_labels(quality, em_viewer, qtbot):
    em_viewer.dims.set_point(0, TRANSLATE[0] + 3 * SCALE[0])
    quality.data.labels_combo.setCurrentText("em labels")
    quality.layer_combo.setCurrentText("decoder.block5")
    wait_job(qtbot, quality.score_slice())
    name = quality.model_combo.currentText()
    q = quality.slice_scores[name]
    assert q.z == 3 and set(q.layers) >= {"encoder.stage1", "decoder.block5"}
    title = f"{name} SAM decoder.block5"
    if q.reason is None:
        layer = em_viewer.layers[title]
        assert layer.data.shape == (1, SHAPE[1], SHAPE[2])  # one slice thick, sitting on slice 3
        assert tuple(layer.translate) == pytest.approx((TRANSLATE[0] + 3 * SCALE[0], *TRANSLATE[1:]))
        assert np.array_equal(layer.data[0], q.sams["decoder.block5"])
        bars = quality.layer_plot.figure.axes[0].patches
        assert len(bars) == len(q.layers)
    else:  # an untrained model may predict nothing on the slice: no SAM, the reason is shown
        assert title not in em_viewer.layers and q.reason in quality.status.text()


def test_two_models_side_by_side_and_cancel(quality, widget, em_viewer, qtbot, checkpoint_file):
    wait_job(qtbot, widget.sections["Model"].load_checkpoint_file(checkpoint_file))  # a second copy
    names = quality.workspace.names()
    assert len(names) == 2
    quality.model_combo.setCurrentText(names[0])
    quality.compare_combo.setCurrentText(names[1])
    wait_job(qtbot, quality.score_volume())
    assert set(quality.scores) == set(names)
    assert all(len(v) == SHAPE[0] for v in quality.scores.values())
    assert " | " in quality.review_list.item(0).text()  # the second model's mu beside the first's
    # Identical weights give identical mu.
    assert [q.mu for q in quality.scores[names[0]].values()] == [q.mu for q in quality.scores[names[1]].values()]
    job = quality.score_volume()
    job.cancel()
    wait_job(qtbot, job)
    assert quality.job is None and quality.volume_button.isEnabled() and not quality.cancel_button.isEnabled()
    assert quality.status.text() == "cancelled; the slices scored so far are shown"
