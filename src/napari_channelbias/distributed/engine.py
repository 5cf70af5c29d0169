"""Client-side drivers of the distributed engine, as event generators like the single-process ones.

Each driver loads the checkpoint once in the client (to create the store's images with the exact
settings the workers will find, so workers never create anything), registers a
:class:`~.plugin.ModelPlugin`, submits one task per block of slices and yields a
:class:`~napari_channelbias.events.Progress` as blocks finish; closing the generator cancels the tasks
still queued (finished slices stay in the store, marked done). Partial statistics merge exactly:
slice sets and per-slice rows are disjoint unions, the pooled asymmetry histograms are integer counts
(:meth:`~napari_channelbias.asymmetry.volume.VolumeAsymmetry.merge`).

A worker killed mid-task loses only its unfinished slices (no done mark, chunks written whole); the
scheduler resubmits the task elsewhere, and the resubmitted task computes only what is still missing.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..asymmetry.volume import VolumeAsymmetry
from ..errors import ChannelBiasError
from ..events import Progress
from ..io.checks import select_slices
from ..io.read import open_volume
from ..models.factory import load_checkpoint
from ..models.inputs import InputSettings
from ..segmentation.metrics import summarise
from ..segmentation.prediction import TiledPredictor
from ..store.layout import model_name_from
from ..store.sinks import prediction_sink, saliency_sink, store_for_image
from ..windowing import n_slices_along
from .blocks import default_block_size, plan_blocks
from .plugin import ModelPlugin, has_model
from .tasks import evaluate_block, predict_block, saliency_block


def _workers(client: Any) -> int:
    return max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))


def _prepare(client: Any, checkpoint: str | Path, device: str, torch_threads: int) -> tuple[str, Any, Any]:
    """Register the worker plugin; load the model here too (CPU) for the store's settings."""

    plugin = ModelPlugin(checkpoint, device=device, torch_threads=torch_threads)
    loaded = client.run(has_model, plugin.name)
    if not loaded or not all(loaded.values()):  # registered once; later runs reuse the workers' models
        client.register_plugin(plugin)
    model, card = load_checkpoint(checkpoint, device="cpu")
    return plugin.name, model, card


def _run_blocks(client: Any, task: str, fn: Callable[..., Any], blocks: list[tuple[int, ...]],
                args: Callable[[tuple[int, ...]], tuple[Any, ...]]) -> Generator[Progress, None, list[Any]]:
    """Submit ``fn(*args(block))`` per block; yield progress in slices; results in block order."""
    # the `distributed` extra: imported only when a cluster is asked for
    from distributed import as_completed

    total = sum(len(b) for b in blocks)
    futures = [client.submit(fn, *args(b), pure=False) for b in blocks]
    index = {f.key: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(blocks)
    done = 0
    try:
        yield Progress(task, 0, total)
        for future in as_completed(futures):
            results[index[future.key]] = future.result()  # a task's error is raised here
            done += len(blocks[index[future.key]])
            yield Progress(task, done, total)
    finally:
        client.cancel([f for f in futures if not f.done()])
    return results


def _selection(volume: Any, card: Any, slices: Any) -> tuple[int, ...]:
    axis = InputSettings.from_any(card).axis
    return select_slices(slices, n_slices_along(volume, axis), axis)


def predict_distributed(
    client: Any, checkpoint: str | Path, image: str | Path, store: str | Path, *, model_name: str | None = None,
    slices: str | Iterable[int] | None = None, block_size: int | None = None, device: str = "auto",
    torch_threads: int = 1, probability_dtype: str = "uint8", tile: int = 512, overlap: int = 64,
    batch_size: int | None = None, amp: bool | str = True,
) -> Generator[Progress, None, Path]:
    """Predict ``image`` into the results store ``store`` on the cluster of ``client``; returns the store.

    Arguments as for :func:`~napari_channelbias.segmentation.prediction.predict_events`; ``image`` is a
    path every worker can open (a shared filesystem); only slices not yet done in the store are run.
    """

    name = model_name or model_name_from(str(checkpoint))
    plugin, model, card = _prepare(client, checkpoint, device, torch_threads)
    volume = open_volume(image)
    settings = InputSettings.from_any(card)
    classes = TiledPredictor(model, tile=tile, overlap=overlap, device="cpu").output_channels(settings.window)
    label_dtype = np.dtype(np.uint8 if classes <= 256 else np.uint16)  # as predict_events chooses
    options = {"tile": tile, "overlap": overlap, "amp": amp}
    sink = prediction_sink(store_for_image(store, image, volume), name, model, card, settings, volume, classes=classes,
                           probability_dtype=probability_dtype, label_dtype=label_dtype, **options)
    todo = sink.todo(_selection(volume, card, slices))
    blocks = plan_blocks(todo, block_size or default_block_size(len(todo), _workers(client)))
    task_options = {**options, "probability_dtype": probability_dtype, "batch_size": batch_size}
    yield from _run_blocks(client, "predict", predict_block, blocks,
                           lambda b: (plugin, str(image), str(sink.store.path), name, b, task_options))
    sink.store.record_run({"kind": "predict", "model": name, "checkpoint": str(checkpoint), "slices": todo,
                           "engine": "dask", "settings": sink.probs.settings})
    return sink.store.path


def saliency_distributed(
    client: Any, checkpoint: str | Path, image: str | Path, method: str, *, store: str | Path | None = None,
    model_name: str | None = None, slices: str | Iterable[int] | None = None,
    asymmetry: Mapping[str, Any] | None = None, block_size: int | None = None, device: str = "auto",
    torch_threads: int = 1, **params: Any,
) -> Generator[Progress, None, tuple[Path | None, VolumeAsymmetry | None]]:
    """Saliency of ``image`` on the cluster: into ``store`` and/or pooled into an asymmetry accumulator.

    ``asymmetry`` (``{"scaling": ..., "percentile": ..., "bins": ...}``, ``{}`` for the defaults) asks
    for the whole-volume :class:`VolumeAsymmetry` of every selected slice (slices already in the store
    are read back, not recomputed); the blocks' accumulators are merged in the client.
    """
    if store is None and asymmetry is None:
        raise ChannelBiasError("distributed saliency needs a results store or asymmetry to keep its maps")
    name = model_name or model_name_from(str(checkpoint))
    plugin, model, card = _prepare(client, checkpoint, device, torch_threads)
    volume = open_volume(image)
    chosen = _selection(volume, card, slices)
    run, store_path = list(chosen), None
    if store is not None:
        sink = saliency_sink(store_for_image(store, image, volume), name, model, card, InputSettings.from_any(card),
                             volume, method, params)
        store_path = sink.store.path
        if asymmetry is None:
            run = sink.todo(chosen)
    blocks = plan_blocks(run, block_size or default_block_size(len(run), _workers(client)))
    partials = yield from _run_blocks(
        client, f"saliency ({method})", saliency_block, blocks,
        lambda b: (plugin, str(image), None if store_path is None else str(store_path), name, method, b,
                   params, None if asymmetry is None else dict(asymmetry)))
    acc = None
    if asymmetry is not None and partials:
        acc = partials[0]
        for part in partials[1:]:
            acc.merge(part)
    if store is not None:
        sink.store.record_run({"kind": "saliency", "model": name, "method": method, "slices": run,
                               "checkpoint": str(checkpoint), "engine": "dask", "settings": sink.image.settings})
    return store_path, acc


def evaluate_distributed(
    client: Any, checkpoint: str | Path, image: str | Path, labels: str | Path, *,
    slices: str | Iterable[int] | None = None, block_size: int | None = None, device: str = "auto",
    torch_threads: int = 1, **options: Any,
) -> Generator[Progress, None, dict[str, Any]]:
    """:func:`~napari_channelbias.segmentation.evaluation.evaluate_events` on the cluster; same result."""

    plugin, _, card = _prepare(client, checkpoint, device, torch_threads)
    chosen = _selection(open_volume(image), card, slices)
    blocks = plan_blocks(list(chosen), block_size or default_block_size(len(chosen), _workers(client)))
    parts = yield from _run_blocks(client, "evaluate", evaluate_block, blocks,
                                   lambda b: (plugin, str(image), str(labels), b, options))
    per_slice: dict[int, dict[str, float]] = {}
    for part in parts:
        per_slice.update(part)
    per_slice = {z: per_slice[z] for z in chosen}  # the order the single-process path reports
    return {"per_slice": per_slice, "summary": summarise(list(per_slice.values()))}
