"""A task run in this process (its plugin set up here) writes only its block and returns exact partials."""

from __future__ import annotations

import numpy as np

from napari_channelbias.distributed.plugin import ModelPlugin
from napari_channelbias.distributed.tasks import predict_block, saliency_block
from napari_channelbias.events import run_to_end
from napari_channelbias.io.read import open_volume
from napari_channelbias.saliency.volume import saliency_events
from napari_channelbias.store import ResultsStore, labels_key, saliency_key
from napari_channelbias.store.sinks import prediction_sink, saliency_sink


def test_blocks_write_their_own_slices_and_accumulate_theirs(tiny_job, tmp_path):
    _, ckpt, image, _ = tiny_job
    plugin = ModelPlugin(ckpt, device="cpu")
    plugin.setup()
    try:
        from napari_channelbias.distributed.plugin import worker_model
        from napari_channelbias.models.inputs import InputSettings

        model, card = worker_model(plugin.name)
        volume = open_volume(image)
        settings = InputSettings.from_any(card)
        prediction_sink(tmp_path / "r.ome.zarr", "m", model, card, settings, volume, classes=1,
                        probability_dtype="uint8", label_dtype=np.uint8, tile=64, overlap=16, amp=True)
        assert predict_block(plugin.name, str(image), str(tmp_path / "r.ome.zarr"), "m", (2, 3),
                             {"tile": 64, "overlap": 16, "amp": True}) == (2, 3)
        done = ResultsStore.open(tmp_path / "r.ome.zarr").get(labels_key("m")).done_mask()
        assert done.tolist() == [0, 0, 1, 1, 0, 0, 0, 0]
        saliency_sink(tmp_path / "r.ome.zarr", "m", model, card, settings, volume, "full-output", {})
        acc = saliency_block(plugin.name, str(image), str(tmp_path / "r.ome.zarr"), "m", "full-output", (5, 6),
                             {}, {})
        assert len(acc) == 2
        maps = run_to_end(saliency_events(model, card, volume, "full-output", slices=[5, 6], device="cpu"))
        stored = ResultsStore.open(tmp_path / "r.ome.zarr").get(saliency_key("m", "full-output"))
        np.testing.assert_array_equal(stored.read_slice(6), maps[1])
    finally:
        plugin.teardown()
