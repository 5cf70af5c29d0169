"""The distributed engine on a real LocalCluster of 2 processes equals the single-process path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_channelbias.asymmetry.volume import VolumeAsymmetry
from napari_channelbias.distributed.engine import evaluate_distributed, predict_distributed, saliency_distributed
from napari_channelbias.events import run_to_end
from napari_channelbias.io.read import open_volume
from napari_channelbias.models.factory import load_checkpoint
from napari_channelbias.saliency.volume import saliency_events
from napari_channelbias.segmentation.evaluation import evaluate_events
from napari_channelbias.segmentation.prediction import predict_events
from napari_channelbias.store import ResultsStore, labels_key, prediction_key, saliency_key

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers' thread count: same kernels, same rounding
    yield
    torch.set_num_threads(before)


def _level0(path, key):
    image = ResultsStore.open(path).get(key)
    assert image.done_mask().all()
    return np.asarray(image.levels[0][:])


def test_prediction_equals_the_single_process_store(client, tiny_job, tmp_path, one_thread):
    _, ckpt, image, _ = tiny_job
    events = []
    out = run_to_end(predict_distributed(client, ckpt, image, tmp_path / "d.ome.zarr", model_name="m",
                                         block_size=3, tile=64, overlap=16), events.append)
    assert out == tmp_path / "d.ome.zarr" and events[-1].done == events[-1].total == 8
    model, card = load_checkpoint(ckpt)
    run_to_end(predict_events(model, card, open_volume(image), store=tmp_path / "s.ome.zarr", model_name="m",
                              tile=64, overlap=16, device="cpu"))
    for key in (labels_key("m"), prediction_key("m")):
        np.testing.assert_array_equal(_level0(tmp_path / "d.ome.zarr", key), _level0(tmp_path / "s.ome.zarr", key))
    assert ResultsStore.open(tmp_path / "d.ome.zarr").runs()[-1]["engine"] == "dask"
    # each worker loaded the checkpoint once, whatever the number of tasks it ran
    from napari_channelbias.distributed import plugin

    loads = client.run(lambda: dict(plugin.LOADS))
    assert len(loads) == 2 and all(set(v.values()) == {1} for v in loads.values())


def test_saliency_and_pooled_asymmetry_equal_the_single_process_path(client, tiny_job, tmp_path, one_thread):
    _, ckpt, image, _ = tiny_job
    path, acc = run_to_end(saliency_distributed(client, ckpt, image, "full-output", store=tmp_path / "d.ome.zarr",
                                                model_name="m", asymmetry={}, block_size=3))
    model, card = load_checkpoint(ckpt)
    serial = VolumeAsymmetry(card.window)
    run_to_end(saliency_events(model, card, open_volume(image), "full-output", store=tmp_path / "s.ome.zarr",
                               model_name="m"), lambda e: serial.add(e.z, e.result))
    a, b = _level0(path, saliency_key("m", "full-output")), _level0(tmp_path / "s.ome.zarr",
                                                                     saliency_key("m", "full-output"))
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=0)
    # the merged histograms are the serial ones (integer counts add up exactly)
    np.testing.assert_array_equal(acc._fine, serial._fine)
    np.testing.assert_array_equal(acc._hists, serial._hists)
    ra, rb = acc.result(), serial.result()
    assert [z for z, _ in ra.series] == list(range(8))
    for key, value in rb.pooled.scalars().items():
        assert ra.pooled.scalars()[key] == pytest.approx(value, rel=1e-6, abs=1e-12), key
    for key, value in rb.slice_mean.items():
        assert ra.slice_mean[key] == pytest.approx(value, rel=1e-6, abs=1e-12), key


def test_evaluation_equals_the_single_process_path(client, tiny_job, one_thread):
    _, ckpt, image, labels = tiny_job
    dist = run_to_end(evaluate_distributed(client, ckpt, image, labels, slices="1:7", block_size=2, tile=64, overlap=16,
                                           batch_size=1))
    model, card = load_checkpoint(ckpt)
    serial = run_to_end(evaluate_events(model, card, open_volume(image), open_volume(labels), slices="1:7",
                                        tile=64, overlap=16, batch_size=1, device="cpu"))
    assert list(dist["per_slice"]) == list(serial["per_slice"]) == [1, 2, 3, 4, 5, 6]
    for z, metrics in serial["per_slice"].items():
        for name, value in metrics.items():
            assert dist["per_slice"][z][name] == pytest.approx(value, rel=1e-6, nan_ok=True)


def test_a_worker_killed_mid_run_leaves_a_sound_store_and_the_result_of_a_clean_run(tiny_job, tmp_path, one_thread):
    import os
    import signal
    import threading
    import time

    _, ckpt, image, _ = tiny_job
    store = tmp_path / "d.ome.zarr"
    key = saliency_key("m", "occlusion")  # the slowest method: a kill lands inside a running task
    killed: list[int] = []
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None)
    try:
        with distributed.Client(cluster) as c:
            pids = list(c.run(os.getpid).values())

            def kill_after_first_slice() -> None:
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline:
                    try:
                        if ResultsStore.open(store).get(key).done_mask().any():
                            os.kill(pids[0], signal.SIGKILL)
                            killed.append(pids[0])
                            return
                    except Exception:  # the store or the image is not created yet
                        pass
                    time.sleep(0.05)

            killer = threading.Thread(target=kill_after_first_slice, daemon=True)
            killer.start()
            gen = saliency_distributed(c, ckpt, image, "occlusion", store=store, model_name="m", block_size=1,
                                       slices="0:4", patch=32)
            try:
                run_to_end(gen)
            except distributed.KilledWorker:  # the scheduler gave up on a task: a rerun completes it
                run_to_end(saliency_distributed(c, ckpt, image, "occlusion", store=store, model_name="m",
                                                block_size=1, slices="0:4", patch=32))
            killer.join()
            assert killed and killed[0] not in c.run(os.getpid).values()  # the nanny started a new process
    finally:
        cluster.close()
    model, card = load_checkpoint(ckpt)
    run_to_end(saliency_events(model, card, open_volume(image), "occlusion", store=tmp_path / "s.ome.zarr",
                               model_name="m", slices="0:4", patch=32))
    done = ResultsStore.open(store).get(key).done_mask()
    np.testing.assert_array_equal(done, [1, 1, 1, 1, 0, 0, 0, 0])
    a, b = (np.asarray(ResultsStore.open(p).get(key).levels[0][:, :4]) for p in (store, tmp_path / "s.ome.zarr"))
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=0)
