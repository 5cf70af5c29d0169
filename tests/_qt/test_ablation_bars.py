"""Ablation bars in the asymmetry panel, end to end in a real viewer, on a model that reads channel 0 only.

The model is a 1x1 convolution with weight 2 on channel 0 (z-1) and 0 on the others, bias 0.5, so its
probability is sigmoid(2 x0 + 0.5): removing z or z+1 changes nothing, exactly; removing z-1 changes
the summed probability by an amount computed here by hand from the normalised window.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from napari_channelbias._qt.ablation_bars import NO_LABELS
from napari_channelbias._qt.asymmetry_panel import AsymmetryPanel
from napari_channelbias._qt.saliency_dock import SaliencySection
from napari_channelbias.asymmetry.figures import MODEL_COLORS
from napari_channelbias.models.checkpoints import ModelCard
from napari_channelbias.models.inputs import InputSettings
from napari_channelbias.models.spec import ModelSpec
from napari_channelbias.sample_data import make_sample
from napari_channelbias.windowing import Normalizer, iter_windows
from napari_channelbias.workspace import Workspace, image_token
from qt_helpers import messages, wait_job

pytest_plugins = ["qt_helpers"]
pytestmark = pytest.mark.gui
WAIT_MS = 120_000
Z = 2


class Channel0(torch.nn.Module):
    """logit = 2 * channel 0 + 0.5: a model that only looks at the slice below."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[0, 0] = 2.0
            self.conv.bias.fill_(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return make_sample(shape=(4, 48, 48), seed=3)[0]


def _panel_on(make_napari_viewer, qtbot, image: np.ndarray, data) -> tuple:
    """A viewer showing ``data`` (the image, or a pyramid of it), the saliency of its slice Z, and the panel."""
    spec = ModelSpec(arch="unet", encoder="efficientnet-lite0", init="random", window=3, classes=1)
    card = ModelCard(model=spec.to_dict(), normalization=Normalizer.fit(image).to_dict())
    viewer = make_napari_viewer()
    viewer.add_image(data, name="sample", multiscale=isinstance(data, list))
    workspace = Workspace()
    workspace.add_model("chan0", Channel0().eval(), card)
    section = SaliencySection(viewer, workspace)
    panel = AsymmetryPanel(viewer, workspace)
    viewer.window.add_dock_widget(section, name="Saliency")
    viewer.window.add_dock_widget(panel, name="Asymmetry")
    viewer.dims.set_current_step(0, Z)
    section.compute(whole_volume=False)
    qtbot.waitUntil(lambda: not section.busy and not panel.pending, timeout=WAIT_MS)
    return viewer, workspace, panel, card


@pytest.fixture
def setup(make_napari_viewer, image, qtbot):
    return _panel_on(make_napari_viewer, qtbot, image, image)


def _run(qtbot, panel, whole_volume=False):
    job = panel.ablation.run(whole_volume=whole_volume)
    if job is not None:
        wait_job(qtbot, job)
    qtbot.waitUntil(lambda: not panel.pending, timeout=WAIT_MS)
    return job


def _window(image, card, z):
    settings = InputSettings.from_any(card)
    [(_, window)] = list(iter_windows(image, [z], 3, settings.padding, settings.axis, settings.normalizer))
    return window.astype(np.float64)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _expected_drop(clean_input, ablated_input):
    clean = _sigmoid(2.0 * clean_input + 0.5).sum()
    return (clean - _sigmoid(2.0 * ablated_input + 0.5).sum()) / clean


def _bars(panel):
    """(height or None when hidden, 'n/a' mark shown) per channel, from the drawn ablation axes."""
    return [(p.get_height() if p.get_visible() else None, t.get_visible())
            for p, t in zip(panel.ax_drops.patches, panel.ax_drops.texts, strict=True)]


def test_ablation_of_the_current_slice_matches_the_hand_computed_drops(setup, qtbot, image, tmp_path):
    viewer, workspace, panel, card = setup
    window = _window(image, card, Z)
    assert panel.ablation.labels_combo.currentText() == NO_LABELS and panel.ablation.measure == "prob_drop"

    panel.ablation.mode_combo.setCurrentText("centre")
    _run(qtbot, panel)
    centre = _expected_drop(window[0], window[1])  # z-1 replaced by a copy of z
    bars = _bars(panel)
    assert bars[0][0] == pytest.approx(centre, rel=1e-4) and not bars[0][1]
    assert bars[1] == (None, True)  # the centre replaced by itself: missing, shown as n/a, not 0
    assert bars[2] == (0.0, False)  # the model never reads z+1: exactly no drop
    assert panel.ax_drops.patches[0].get_facecolor()[:3] == pytest.approx(
        tuple(int(MODEL_COLORS[0][i:i + 2], 16) / 255 for i in (1, 3, 5)))

    panel.ablation.mode_combo.setCurrentText("mean")
    qtbot.waitUntil(lambda: not panel.pending, timeout=WAIT_MS)
    assert "not run yet" in panel.ax_drops.texts[0].get_text()  # nothing cached for this mode
    _run(qtbot, panel)
    mean = _expected_drop(window[0], np.full_like(window[0], window[0].mean()))
    bars = _bars(panel)
    assert bars[0][0] == pytest.approx(mean, rel=1e-4)
    assert bars[1] == (0.0, False) and bars[2] == (0.0, False)

    # The CSV export has both modes' numbers, blank where missing.
    rows = [r for r in csv.DictReader(panel.export_csv(tmp_path / "a.csv").open()) if r["scope"] == "ablation"]
    by_mode = {r["ablation_mode"]: r for r in rows}
    assert set(by_mode) == {"centre", "mean"} and {r["z"] for r in rows} == {str(Z)}
    assert float(by_mode["centre"]["ablation_prob_drop_-1"]) == pytest.approx(centre, rel=1e-4)
    assert by_mode["centre"]["ablation_prob_drop_+0"] == ""
    assert float(by_mode["mean"]["ablation_prob_drop_+1"]) == 0.0
    assert float(by_mode["mean"]["ablation_change_+1"]) == 0.0


def test_whole_volume_fills_the_cache_and_follows_the_slider(setup, qtbot, image, notes):
    viewer, workspace, panel, card = setup
    panel.ablation.mode_combo.setCurrentText("mean")
    _run(qtbot, panel)  # slice Z first: the volume run must not redo it
    job = _run(qtbot, panel, whole_volume=True)
    assert job.result == 3  # slices 0, 1, 3
    assert sorted(k[4] for k in panel.ablation.cache) == [0, 1, 2, 3]
    assert _run(qtbot, panel) is None and "already computed" in panel.ablation.status.text()
    for z in (0, 3):
        viewer.dims.set_current_step(0, z)
        qtbot.waitUntil(lambda z=z: panel.slice_z.get("chan0") == z and not panel.pending, timeout=WAIT_MS)
        window = _window(image, card, z)
        assert _bars(panel)[0][0] == pytest.approx(
            _expected_drop(window[0], np.full_like(window[0], window[0].mean())), rel=1e-4)
    assert not messages(notes)


def test_labels_give_dice_drop_and_errors_are_notifications(setup, qtbot, image, notes):
    viewer, workspace, panel, card = setup
    truth = (np.asarray(image) > np.median(image)).astype(np.uint8)
    viewer.add_labels(truth, name="truth")
    panel.ablation.labels_combo.setCurrentText("truth")
    assert panel.ablation.measure == "dice_drop"
    panel.ablation.mode_combo.setCurrentText("mean")
    _run(qtbot, panel)
    bars = _bars(panel)
    assert bars[1] == (0.0, False) and bars[2] == (0.0, False)  # unread channels: Dice unchanged
    assert bars[0][0] is not None and panel.ax_drops.get_ylabel() == "dice_drop, mean"

    viewer.add_labels(truth[:, :40, :40], name="cropped")  # another shape: the core refuses, in the worker
    panel.ablation.labels_combo.setCurrentText("cropped")
    _run(qtbot, panel)
    assert any("Ablation" in m and "shape" in m for m in messages(notes)), messages(notes, None)
    assert "failed" in panel.ablation.status.text()

    workspace.remove("chan0")  # its saliency record goes with it: the button explains instead of raising
    panel.ablation.slice_button.click()
    assert any("compute saliency first" in m for m in messages(notes))


def test_the_whole_volume_job_gives_the_cores_rows_and_checks_the_labels_once(image):
    from napari_channelbias._qt.ablation_bars import AblationRun, ablation_slices_events
    from napari_channelbias.io.synthetic import CountingVolume
    from napari_channelbias.quality.ablation import channel_ablation

    spec = ModelSpec(arch="unet", encoder="efficientnet-lite0", init="random", window=3, classes=1)
    card = ModelCard(model=spec.to_dict(), normalization=Normalizer.fit(image).to_dict())
    model = Channel0().eval()
    run = AblationRun("m", model, card, image, None, (0, 3), "img", None)
    events = list(ablation_slices_events([run], "centre"))
    assert [(e.z, e.done, e.total) for e in events] == [(0, 1, 2), (3, 2, 2)]
    core = channel_ablation(model, card, image, slices=[0, 3], modes=("centre",)).rows
    assert [row for e in events for row in e.result[2]] == core
    # With labels, every slice of a small volume is checked once for the run (not once per slice), and
    # each ablated slice reads its own truth: (4 + 3) slices of 48 x 48 for three slices.
    labels = CountingVolume(image.shape, values=lambda z, y, x: (y // 8 + x // 8) % 2 + 0 * z)
    run = AblationRun("m", model, card, image, labels, (0, 1, 3), "img", "lab")
    events = list(ablation_slices_events([run], "centre"))
    assert len(events) == 3 and all(row["dice_drop"] is not None for row in events[0].result[2] if row["channel"] != 1)
    assert labels.voxels_read == (4 + 3) * 48 * 48


def test_ablation_reads_level_0_of_a_multiscale_image(make_napari_viewer, image, qtbot):
    # A pyramid (a large OME-Zarr opens as one): the job reads full resolution, as the other sections do.
    viewer, workspace, panel, card = _panel_on(make_napari_viewer, qtbot, image, [image, image[:, ::2, ::2]])
    panel.ablation.mode_combo.setCurrentText("centre")
    _run(qtbot, panel)
    window = _window(image, card, Z)
    assert _bars(panel)[0][0] == pytest.approx(_expected_drop(window[0], window[1]), rel=1e-4)


def test_a_model_removed_and_its_name_reused_leaves_nothing_cached(setup, qtbot):
    viewer, workspace, panel, card = setup
    _run(qtbot, panel)
    assert any(key[0] == "chan0" for key in panel.ablation.cache)
    assert any(key[0].model == "chan0" for key in panel._curves)
    workspace.remove("chan0")
    assert workspace.add_model("chan0", Channel0().eval(), card) == "chan0"  # the freed name, given again
    assert not any(key[0] == "chan0" for key in panel.ablation.cache)
    assert not any(key[0].model == "chan0" for key in panel._curves)


# ------------------------------------------------------------------------------ labels edited after a run
def _point_where(truth, value):
    """A (Z, y, x) point of slice Z whose label is ``value`` (painting the other value changes it)."""
    ys, xs = np.nonzero(truth[Z] == value)
    return (Z, int(ys[0]), int(xs[0]))


def test_painting_the_labels_drops_their_dice_drops_and_the_bars_say_not_run(setup, qtbot, image):
    viewer, workspace, panel, card = setup
    truth = (np.asarray(image) > np.median(image)).astype(np.uint8)
    panel.ablation.mode_combo.setCurrentText("mean")
    _run(qtbot, panel)  # label-free prob_drop: painting labels must leave it alone
    labels = viewer.add_labels(truth, name="truth")
    other = viewer.add_labels(truth.copy(), name="other")
    for name in ("other", "truth"):
        panel.ablation.labels_combo.setCurrentText(name)
        _run(qtbot, panel)
    tokens = {name: image_token(viewer.layers[name].data, name) for name in ("truth", "other")}
    assert {key[2] for key in panel.ablation.cache} == {None, *tokens.values()}
    assert _bars(panel)[0][0] is not None and panel.ax_drops.get_ylabel() == "dice_drop, mean"

    labels.paint(_point_where(truth, 0), 1)  # a brush dab into slice Z: napari's paint event
    qtbot.waitUntil(lambda: not panel.pending, timeout=WAIT_MS)
    assert {key[2] for key in panel.ablation.cache} == {None, tokens["other"]}  # only that layer's results
    assert "not run yet" in panel.ax_drops.texts[0].get_text()
    assert "'truth' changed" in panel.ablation.status.text()
    _run(qtbot, panel)  # measured again against the painted labels
    assert _bars(panel)[0][0] is not None

    panel.ablation.labels_combo.setCurrentText("other")
    qtbot.waitUntil(lambda: not panel.pending, timeout=WAIT_MS)
    assert _bars(panel)[0][0] is not None  # not painted: still shown
    other.data = 1 - truth  # the data replaced (a new array: a new token), napari's data event
    qtbot.waitUntil(lambda: not panel.pending, timeout=WAIT_MS)
    assert tokens["other"] not in {key[2] for key in panel.ablation.cache}
    assert "not run yet" in panel.ax_drops.texts[0].get_text()
    panel.ablation.labels_combo.setCurrentText(NO_LABELS)
    qtbot.waitUntil(lambda: not panel.pending, timeout=WAIT_MS)
    assert _bars(panel)[0][0] is not None and panel.ax_drops.get_ylabel() == "prob_drop, mean"


@pytest.mark.parametrize("worker_done_first", [False, True], ids=["stopped", "results-still-queued"])
def test_painting_the_labels_during_a_run_keeps_nothing_of_it(setup, qtbot, image, worker_done_first):
    viewer, workspace, panel, card = setup
    truth = (np.asarray(image) > np.median(image)).astype(np.uint8)
    labels = viewer.add_labels(truth, name="truth")
    controls = panel.ablation
    controls.labels_combo.setCurrentText("truth")
    controls.mode_combo.setCurrentText("mean")
    cache_result, painted = controls._event, []

    def paint_after_the_first_slice(event):  # the user paints while the run is going on
        cache_result(event)
        if not painted:
            painted.append(event.z)
            if worker_done_first:  # every slice computed, their results still on their way to the GUI
                assert controls.job.wait(60)
            labels.paint(_point_where(truth, 0), 1)

    controls._event = paint_after_the_first_slice  # start_job takes the callback from the instance
    job = controls.run(whole_volume=True)
    wait_job(qtbot, job)
    qtbot.waitUntil(lambda: not panel.pending, timeout=WAIT_MS)
    assert painted and controls.cache == {}  # neither the slice before the paint nor any after it
    assert job.cancelled is not worker_done_first  # stopped at once, or there was nothing left to stop
    assert "changed during the run: nothing of it is kept" in controls.status.text()
    assert controls.slice_button.isEnabled() and not controls.cancel_button.isEnabled()
    assert "not run yet" in panel.ax_drops.texts[0].get_text()
