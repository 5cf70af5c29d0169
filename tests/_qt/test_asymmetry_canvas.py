"""The panel's fast figure: slider moves over cached slices blit the same numbers a full redraw draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.backend_bases import ResizeEvent
from matplotlib.layout_engine import ConstrainedLayoutEngine, PlaceHolderLayoutEngine
from PIL import Image

from napari_channelbias._qt.asymmetry_canvas import CURRENT_SLICE
from napari_channelbias._qt.asymmetry_panel import DRAWN_CDF_POINTS, AsymmetryPanel
from napari_channelbias._qt.saliency_dock import ALL_MODELS, SaliencySection
from napari_channelbias._qt.saliency_results import saliency_results
from napari_channelbias.asymmetry.figures import CDF_POINTS
from napari_channelbias.asymmetry.metrics import cdf_pair, joint_scale
from napari_channelbias.models.checkpoints import ModelCard
from napari_channelbias.models.spec import ModelSpec
from napari_channelbias.sample_data import make_sample
from napari_channelbias.windowing import Normalizer
from napari_channelbias.workspace import Workspace

pytestmark = pytest.mark.gui
WAIT_MS = 120_000


@pytest.fixture
def setup(make_napari_viewer, qtbot):
    """Two tiny seeded conv models with saliency of slices 1 and 3 (both models)."""
    image = make_sample(shape=(5, 48, 48), seed=2)[0]
    spec = ModelSpec(arch="unet", encoder="efficientnet-lite0", init="random", window=3, classes=1)
    card = ModelCard(model=spec.to_dict(), normalization=Normalizer.fit(image).to_dict())
    viewer = make_napari_viewer()
    viewer.add_image(image, name="sample")
    workspace = Workspace()
    for seed, name in ((0, "a"), (1, "b")):
        torch.manual_seed(seed)
        workspace.add_model(name, torch.nn.Conv2d(3, 1, 3, padding=1).eval(), card)
    section = SaliencySection(viewer, workspace)
    panel = AsymmetryPanel(viewer, workspace)
    viewer.window.add_dock_widget(section, name="Saliency")
    viewer.window.add_dock_widget(panel, name="Asymmetry")
    section.model_combo.setCurrentText(ALL_MODELS)
    for z in (1, 3):
        viewer.dims.set_current_step(0, z)
        section.compute(whole_volume=False)
        qtbot.waitUntil(lambda: not section.busy and not panel.pending, timeout=WAIT_MS)
    return viewer, workspace, panel


def _move(qtbot, viewer, panel, z):
    viewer.dims.set_current_step(0, z)
    qtbot.waitUntil(lambda: all(v == z for v in panel.slice_z.values()) and not panel.pending, timeout=WAIT_MS)


def _drawn(panel):
    """Share heights and CDF curves as drawn now."""
    heights = [p.get_height() for p in panel.ax_shares.patches]
    lines = [(np.asarray(ln.get_xdata()), np.asarray(ln.get_ydata())) for ln in panel.ax_cdf.get_lines()]
    return heights, lines


def _expected(workspace, z, points):
    shares, curves = [], []
    for model in ("a", "b"):
        rec = saliency_results(workspace).get(model)
        maps = workspace.saliency.get(rec.request.key(z))
        shares.extend(rec.per_slice[z].shares)
        scaled = joint_scale(maps)
        x, f0, f1 = cdf_pair(scaled[0], scaled[-1], max_points=points)
        curves.extend([(x, f0), (x, f1)])
    return shares, curves


def _check(panel, workspace, z, points):
    heights, lines = _drawn(panel)
    shares, curves = _expected(workspace, z, points)
    assert heights == pytest.approx(shares)
    assert len(lines) == len(curves) == 4
    for (x, y), (ex, ey) in zip(lines, curves, strict=True):
        np.testing.assert_allclose(x, ex)
        np.testing.assert_allclose(y, ey)


def test_slider_moves_over_cached_slices_only_blit_the_core_numbers(setup, qtbot):
    viewer, workspace, panel = setup
    _move(qtbot, viewer, panel, 1)
    canvas = panel.canvas
    full, blits = canvas.full_draws, canvas.blits
    for z in (3, 1, 3):
        _move(qtbot, viewer, panel, z)
        _check(panel, workspace, z, DRAWN_CDF_POINTS)
        marker = panel.ax_z.get_lines()[-1]
        assert list(marker.get_xdata()) == [z, z] and marker.get_label() == CURRENT_SLICE
        assert panel.plot.figure.get_suptitle().startswith(f"Slice {z} of sample")
    assert canvas.full_draws == full and canvas.blits == blits + 3
    assert isinstance(panel.plot.figure.get_layout_engine(), PlaceHolderLayoutEngine)  # layout frozen

    # The old path draws the same numbers (its CDFs on the finer grid of the figure functions).
    panel.full_redraw = True
    panel.update_slice()
    _check(panel, workspace, 3, CDF_POINTS)
    assert canvas.full_draws == full + 1
    panel.full_redraw = False
    panel.update_slice()
    _check(panel, workspace, 3, DRAWN_CDF_POINTS)

    _move(qtbot, viewer, panel, 2)  # not computed: the frame changes (no bars, no curves): one full draw
    assert canvas.full_draws == full + 3 and len(panel.ax_shares.patches) == 0
    assert "slice 2 not computed" in panel.status.text()


def test_resize_theme_and_export_redraw_in_full_then_blit_again(setup, qtbot, tmp_path):
    viewer, workspace, panel = setup
    _move(qtbot, viewer, panel, 3)
    canvas, figure = panel.canvas, panel.plot.figure
    full = canvas.full_draws
    ResizeEvent("resize_event", panel.plot.canvas)._process()  # what the Qt canvas sends on a resize
    assert isinstance(figure.get_layout_engine(), ConstrainedLayoutEngine)  # the next draw lays out anew
    panel.plot.canvas.draw()
    assert isinstance(figure.get_layout_engine(), PlaceHolderLayoutEngine)
    _move(qtbot, viewer, panel, 1)
    _check(panel, workspace, 1, DRAWN_CDF_POINTS)

    viewer.theme = "light" if viewer.theme == "dark" else "dark"
    qtbot.waitUntil(lambda: not panel.pending, timeout=WAIT_MS)
    assert canvas.full_draws == full + 1

    out = panel.export_png(tmp_path / "fig.png")
    assert all(a.get_animated() for a in canvas._animated)  # the fast path is back after the export
    pixels = np.asarray(Image.open(out).convert("L"), dtype=float)
    title_strip = pixels[: pixels.shape[0] // 40]
    assert title_strip.std() > 0  # the title (animated on screen) is in the file
