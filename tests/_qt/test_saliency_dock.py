"""The saliency section in a real napari viewer, with real (random-init) lite0 U-Nets on a tiny stack."""

from __future__ import annotations

import numpy as np
import pytest
from napari.utils.notifications import notification_manager

from napari_channelbias._qt.data_section import DataSection
from napari_channelbias._qt.saliency_dock import (
    ALL_MODELS,
    JOINT_SCALING_TIP,
    SaliencySection,
    channel_colormaps,
    saliency_layer_name,
)
from napari_channelbias._qt.saliency_results import saliency_results
from napari_channelbias.asymmetry.metrics import slice_asymmetry
from napari_channelbias.llvm_guard import avoid_triton_llvm_clash
from napari_channelbias.models.checkpoints import ModelCard
from napari_channelbias.models.factory import build_model
from napari_channelbias.models.spec import ModelSpec
from napari_channelbias.sample_data import make_sample
from napari_channelbias.windowing import Normalizer
from napari_channelbias.workspace import Workspace

pytestmark = pytest.mark.gui
WAIT_MS = 120_000


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return make_sample(shape=(5, 64, 64), seed=0)[0]


@pytest.fixture(scope="module")
def models(image):
    """Two untrained lite0 U-Nets (different seeds) with cards: built once for the module."""
    import torch

    avoid_triton_llvm_clash()  # building imports torch._dynamo; an earlier test's viewer may hold Mesa's LLVM
    spec = ModelSpec(arch="unet", encoder="efficientnet-lite0", init="random", window=3, classes=1)
    card = ModelCard(model=spec.to_dict(), normalization=Normalizer.fit(image).to_dict())
    out = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        out.append((build_model(spec)[0].eval(), card))
    return out


@pytest.fixture
def setup(make_napari_viewer, qtbot, image, models):
    viewer = make_napari_viewer()
    viewer.add_image(image, name="sample", scale=(2.0, 1.0, 1.0), translate=(10.0, 0.0, 0.0))
    workspace = Workspace()
    section = SaliencySection(viewer, workspace)
    viewer.window.add_dock_widget(section, name="Saliency")
    return viewer, workspace, section


def _wait(qtbot, section):
    qtbot.waitUntil(lambda: not section.busy, timeout=WAIT_MS)


def _errors_since(n: int) -> list[str]:
    return [str(r.message) for r in notification_manager.records[n:]]


def test_colormaps_add_up_to_grey():
    assert channel_colormaps(3) == ["red", "green", "blue"]
    five = channel_colormaps(5)
    total = sum(np.asarray(cm.colors[-1][:3]) for cm in five)
    assert total == pytest.approx(np.full(3, total[0]), abs=1e-6)  # equal R, G and B: grey


def test_current_slice_gives_k_aligned_additive_layers_with_one_contrast_limit(setup, qtbot, models):
    viewer, workspace, section = setup
    data = DataSection(viewer, workspace)
    qtbot.addWidget(data)
    workspace.add_model("lite0-a", *models[0])
    viewer.dims.set_current_step(0, 2)
    section.compute(whole_volume=False)
    _wait(qtbot, section)
    # The maps are displays, not images to train on or explain: the Data section does not list them.
    assert [data.image_combo.itemText(i) for i in range(data.image_combo.count())] == ["sample"]

    names = [saliency_layer_name("lite0-a", s) for s in ("z-1", "z", "z+1")]
    assert names == ["lite0-a saliency z-1", "lite0-a saliency z", "lite0-a saliency z+1"]
    layers = [viewer.layers[n] for n in names]
    assert [ly.colormap.name for ly in layers] == ["red", "green", "blue"]
    assert {ly.blending for ly in layers} == {"additive"}
    image = viewer.layers["sample"]
    for ly in layers:
        assert ly.data.shape == image.data.shape
        np.testing.assert_array_equal(ly.scale, image.scale)
        np.testing.assert_array_equal(ly.translate, image.translate)
    limits = {tuple(ly.contrast_limits) for ly in layers}
    assert len(limits) == 1 and limits.pop()[1] > 0

    record = saliency_results(workspace).get("lite0-a")
    cached = workspace.saliency.get(record.request.key(2))
    assert cached is not None and cached.shape == (3, 64, 64)
    for c, ly in enumerate(layers):
        np.testing.assert_array_equal(ly.data[2], cached[c])
        assert not ly.data[[0, 1, 3, 4]].any()  # not computed: zero
    assert record.computed == {2}
    assert record.per_slice[2] == slice_asymmetry(cached)

    # Joint scaling: dragging one layer's limits moves the others too; the GUI says why.
    layers[0].contrast_limits = (0.0, 0.5 * layers[0].contrast_limits[1])
    assert len({tuple(ly.contrast_limits) for ly in layers}) == 1
    assert "ONE contrast limit" in JOINT_SCALING_TIP
    assert any("joint" in w.toolTip() for w in section.findChildren(type(section.status)))


def test_asking_again_for_a_cached_slice_starts_no_job(setup, qtbot, models):
    viewer, workspace, section = setup
    workspace.add_model("lite0-a", *models[0])
    viewer.dims.set_current_step(0, 1)
    section.compute()
    _wait(qtbot, section)
    job = section.job
    hits = workspace.saliency.hits
    section.compute()
    _wait(qtbot, section)
    assert section.job is job  # nothing new ran
    # A new section (e.g. after the layers were deleted) takes the maps from the cache, not the model.
    for name in [ly.name for ly in viewer.layers if "saliency" in ly.name]:
        viewer.layers.remove(name)
    section.compute()
    _wait(qtbot, section)
    assert workspace.saliency.hits > hits
    assert viewer.layers["lite0-a saliency z"].data[1].any()


def test_whole_volume_fills_every_slice_and_gives_volume_figures(setup, qtbot, models):
    viewer, workspace, section = setup
    workspace.add_model("lite0-a", *models[0])
    section.compute(whole_volume=True)
    _wait(qtbot, section)
    record = saliency_results(workspace).get("lite0-a")
    assert record.computed == set(range(5))
    assert record.volume is not None and record.volume.n_slices == 5
    for z in range(5):
        maps = workspace.saliency.get(record.request.key(z))
        assert record.per_slice[z] == slice_asymmetry(maps)
        np.testing.assert_array_equal(viewer.layers["lite0-a saliency z+1"].data[z], maps[2])
    assert "5 of 5 slices" in section.status.text()


def test_all_models_runs_each_model_in_turn(setup, qtbot, models):
    viewer, workspace, section = setup
    workspace.add_model("lite0-a", *models[0])
    workspace.add_model("lite0-b", *models[1])
    section.model_combo.setCurrentText(ALL_MODELS)
    section.compute()
    _wait(qtbot, section)
    for model in ("lite0-a", "lite0-b"):
        assert all(saliency_layer_name(model, s) in viewer.layers for s in ("z-1", "z", "z+1"))
    a = saliency_results(workspace).get("lite0-a")
    b = saliency_results(workspace).get("lite0-b")
    z = next(iter(a.computed))
    assert not np.array_equal(a.maps(workspace.saliency, z), b.maps(workspace.saliency, z))
    section.grid_check.setChecked(True)
    grid = viewer.canvas.grid if hasattr(viewer, "canvas") else viewer.grid
    assert grid.enabled and grid.stride == -3


def test_the_form_is_the_options_widget_under_the_names_other_docks_use(setup):
    _, _, section = setup
    opts = section.options
    assert (section.model_combo, section.method_combo, section.patch_spin, section.store_edit) == (
        opts.model_combo, opts.method_combo, opts.patch_spin, opts.store_edit)
    assert "store" in opts.rows and not opts.rows["image"][1].isHidden()  # no Data section: its own rows


def test_bad_states_become_notifications_not_exceptions(setup, qtbot, models):
    viewer, workspace, section = setup
    n = len(notification_manager.records)
    section.slice_button.click()  # no model loaded
    assert any("no model loaded" in m for m in _errors_since(n))

    workspace.add_model("lite0-a", *models[0])
    viewer.layers.remove("sample")
    n = len(notification_manager.records)
    section.volume_button.click()  # no image
    assert any("no image layer" in m for m in _errors_since(n))
    assert not section.busy

    viewer.add_image(np.zeros((64, 64), np.uint8), name="flat")  # a 2-D image cannot feed a 2D+ model
    n = len(notification_manager.records)
    section.slice_button.click()
    assert any("2-D" in m for m in _errors_since(n))


# ------------------------------------------------------------------------------------ into a results store
def test_whole_volume_into_a_store_gives_store_backed_layers_the_table_and_the_summary(setup, qtbot, models,
                                                                                         tmp_path):
    from napari_channelbias._qt.store_layers import ChannelView
    from napari_channelbias.saliency.volume import saliency_events
    from napari_channelbias.store import ResultsStore, saliency_key
    from napari_channelbias.store.asymmetry import stored_asymmetry

    viewer, workspace, section = setup
    workspace.add_model("lite0-a", *models[0])
    path = tmp_path / "sample.ome.zarr"
    section.store_edit.setText(str(path))
    section.compute(whole_volume=True)
    _wait(qtbot, section)
    record = saliency_results(workspace).get("lite0-a")
    layers = [viewer.layers[saliency_layer_name("lite0-a", s)] for s in ("z-1", "z", "z+1")]
    assert all(isinstance(ly.data, ChannelView) for ly in layers)  # read from the store, nothing held
    assert record.layers == layers and record.computed == set(range(5))
    assert workspace.saliency.get(record.request.key(2)) is None  # a whole volume stays on disk
    store = ResultsStore.open(path)
    assert store.scale == (2.0, 1.0, 1.0) and store.translation == (10.0, 0.0, 0.0)  # the image's
    stored = store.get(saliency_key("lite0-a", "full-output"))
    model, card = models[0]
    expected = [ev.result for ev in saliency_events(model, card, viewer.layers["sample"].data, "full-output",
                                                     collect=False)]
    for z in range(5):
        np.testing.assert_allclose(stored.read_slice(z), expected[z], rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(np.asarray(layers[1].data[z]), stored.read_slice(z)[1])
        np.testing.assert_array_equal(record.maps(workspace.saliency, z), stored.read_slice(z))
        assert record.per_slice[z] == slice_asymmetry(stored.read_slice(z))
    kept = stored_asymmetry(store, "lite0-a", "full-output")
    assert kept.per_slice == record.per_slice  # one row per slice, every field
    assert kept.volume == record.volume and record.volume.n_slices == 5  # the summary
    assert "(store sample.ome.zarr)" in section.status.text()


def test_cancel_keeps_finished_slices_and_a_rerun_computes_only_the_rest(make_napari_viewer, qtbot, models,
                                                                         tmp_path):
    from napari_channelbias.store import ResultsStore, saliency_key

    viewer = make_napari_viewer()
    viewer.add_image(make_sample(shape=(12, 64, 64), seed=1)[0], name="tall")
    workspace = Workspace()
    section = SaliencySection(viewer, workspace)
    viewer.window.add_dock_widget(section, name="Saliency")
    workspace.add_model("lite0-a", *models[0])
    section.store_edit.setText(str(tmp_path / "tall.ome.zarr"))
    results = saliency_results(workspace)
    results.changed.connect(lambda _: section.cancel() if len(results.get("lite0-a").computed) >= 2 else None)
    section.compute(whole_volume=True)
    _wait(qtbot, section)
    stored = ResultsStore.open(tmp_path / "tall.ome.zarr").get(saliency_key("lite0-a", "full-output"))
    first = set(np.flatnonzero(stored.done_mask()).tolist())
    assert 2 <= len(first) < 12 and results.get("lite0-a").volume is None  # cancelled: no summary
    kept = {z: stored.read_slice(z) for z in first}
    level = tmp_path / "tall.ome.zarr" / "saliency" / "lite0-a" / "full-output" / "0"
    written = {f.name: f.stat().st_mtime_ns for f in level.iterdir() if not f.name.startswith(".")}
    results.changed.disconnect()
    section.compute(whole_volume=True)  # the same settings: the store resumes
    _wait(qtbot, section)
    assert stored.done_mask().all()
    for z, maps in kept.items():
        np.testing.assert_array_equal(stored.read_slice(z), maps)
    assert written and all((level / name).stat().st_mtime_ns == t for name, t in written.items())  # not rewritten
    record = results.get("lite0-a")
    assert record.volume is not None and record.volume.n_slices == 12  # every slice, old and new


def test_a_whole_volume_beyond_the_memory_budget_is_refused_with_the_fix(make_napari_viewer, models, tmp_path):
    import zarr

    from napari_channelbias._qt.sparse_volume import memory_budget

    viewer = make_napari_viewer()
    # An unwritten zarr volume (every chunk reads as its fill value): 4 GiB of uint8, 48 GiB of layers.
    big = zarr.open_array(str(tmp_path / "big.zarr"), mode="w", shape=(4096, 1024, 1024), chunks=(1, 1024, 1024),
                          dtype="uint8", fill_value=100)
    assert 3 * big.size * 4 > memory_budget()
    viewer.add_image(big, name="big", contrast_limits=(0, 255))
    workspace = Workspace()
    section = SaliencySection(viewer, workspace)
    workspace.add_model("lite0-a", *models[0])
    n = len(notification_manager.records)
    section.volume_button.click()
    assert any("type a results store path" in m for m in _errors_since(n))
    assert not section.busy and saliency_results(workspace).get("lite0-a") is None  # no layers made
