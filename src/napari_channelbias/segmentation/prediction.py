"""Tiled sliding-window inference over a volume, streamed slice by slice.

Each slice's 2D+ window (K neighbouring slices, normalised and padded at the volume ends exactly as at
training time, from the checkpoint's card) is cut into overlapping square tiles (:mod:`tiling`). Tiles
are run through the model in batches, possibly mixing tiles of consecutive slices, and their
probabilities are blended with a weight that falls off towards each tile's border. Memory is bounded by
one batch of tiles plus the few slices in flight, never by the volume: outputs go straight to a
:class:`~napari_channelbias.volume_io.VolumeWriter` when an output path is given.

Blending accumulates in float64 so that, where every tile agrees (a model without spatial context, or
a slice that fits in one tile), the blended value is bit-for-bit the tile's value.

Outputs
-------
Labels are uint8 (uint16 above 255 classes): ``p > 0.5`` for a binary model, the argmax otherwise.
Probabilities are float32 in memory. On disk they are uint8 scaled to 0..255 by default
(``round(255 p)``, a quarter of the size, resolution 1/255 is far below any model's calibration) or
float32 with ``probability_dtype="float32"``. A binary model's probability volume has the image's
shape; a multi-class one has a leading class axis ``(C, ...)``.

The selected slices are stacked along the slicing axis: predicting all slices gives arrays (and files)
with exactly the input volume's shape, voxel-aligned with it; a subset ``A:B`` along axis 0 gives
``(B - A, Y, X)``, whose slice ``i`` is input slice ``A + i``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Generator, Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..devices import resolve_device
from ..errors import ConfigError
from ..events import SliceDone, run_to_end
from ..io.checks import select_slices, validate_image
from ..io.write import VolumeWriter
from ..models.checkpoints import ModelCard
from ..models.inputs import InputSettings
from ..tiling import Tile, blend_weight, crop_to, pad_to_multiple, plan_tiles
from ..windowing import n_slices_along, plane_index
from .fast_path import autocast, autocast_dtype, prepare_input, prepare_model, unwrap
from .labels import output_labels

PROBABILITY_DTYPES = ("uint8", "float32")


@dataclass
class PredictionResult:
    """What :func:`predict_events` returns.

    ``labels`` / ``probabilities`` hold the arrays when no output path was given (else None);
    ``labels_path`` / ``probabilities_path`` name the files written otherwise.
    """

    slices: tuple[int, ...]
    axis: int
    labels: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    labels_path: Path | None = None
    probabilities_path: Path | None = None
    seconds: float = 0.0
    store_path: Path | None = None  # the results store written (``store=``), else None


# ---------------------------------------------------------------------------------------- the engine
def _check_tiling(tile: int, overlap: int, batch_size: int | None) -> None:
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < 32:
        raise ConfigError(f"tile must be an int >= 32 pixels (a multiple of 32 wastes nothing), got {tile!r}")
    if not isinstance(overlap, int) or not 0 <= overlap < tile:
        raise ConfigError(f"overlap must be an int in 0..{tile - 1} (less than the tile), got {overlap!r}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ConfigError(f"batch_size must be an int >= 1 (or None: automatic), got {batch_size!r}")


def auto_batch_size(device: torch.device) -> int:
    """Tiles per forward pass when none is given: 1 on the CPU, 4 on an accelerator.

    On the CPU a batch brings no speed (the convolutions already fill the cores) but multiplies the
    activation memory; benchmarks/bench_prediction.py measured batch 4 at 1.4x the time and 3x the extra
    memory of batch 1 on 512-pixel tiles. GPUs need batches to be busy.
    """
    return 1 if device.type == "cpu" else 4


def fitted_tile(height: int, width: int, tile: int, overlap: int) -> int:
    """The smallest tile (a multiple of 32, at most ``tile``) that needs no more tiles than ``tile`` does.

    With a fixed tile the last tile of a row is aligned with the slice end and may overlap its neighbour
    by almost a whole tile (a 1024-pixel slice in 512-pixel tiles with 64 overlap needs 3 tiles, the
    third nearly redundant). Spreading the same number of tiles evenly lets them shrink: 3 tiles of 384
    pixels, 44 % fewer pixels through the network, with at least ``overlap`` pixels shared everywhere.
    """
    def fit(length: int) -> int:
        if length <= tile:
            return 32
        n = -(-(length - overlap) // (tile - overlap))
        need = -(-(length + (n - 1) * overlap) // n)
        return min(tile, -(-need // 32) * 32)

    if height <= tile and width <= tile:
        return tile
    return max(fit(height), fit(width))  # > overlap: n tiles of `need` pixels cover length > overlap


def _activate(logits: torch.Tensor) -> torch.Tensor:
    """Probabilities from logits ``(B, C, H, W)``: sigmoid for one channel, softmax for several."""
    logits = logits.float()
    return torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, dim=1)


class _SliceAccumulator:
    """Blended probabilities of one slice while its tiles come back from the model."""

    def __init__(self, key: Any, window: np.ndarray, n_tiles: int) -> None:
        self.key = key
        self.window = window
        self.tiles_left = n_tiles
        self.shape = window.shape[1:]
        self.acc: np.ndarray | None = None  # (C, H, W) float64, allocated once C is known
        self.weight = np.zeros(self.shape, np.float64)

    def add(self, tile: Tile, probs: np.ndarray, weight: np.ndarray) -> None:
        if self.acc is None:
            self.acc = np.zeros((probs.shape[0], *self.shape), np.float64)
        self.acc[(slice(None), *tile.region)] += probs * weight
        self.weight[tile.region] += weight
        self.tiles_left -= 1

    def result(self) -> np.ndarray:
        assert self.acc is not None
        return (self.acc / self.weight).astype(np.float32)


class TiledPredictor:
    """Runs windows through a model tile by tile, in batches that may span consecutive slices.

    Feed windows with :meth:`push`; it returns the slices completed so far, in input order, as
    ``(key, probabilities (C, H, W) float32)``. Call :meth:`flush` after the last window.
    """

    def __init__(
        self, model: torch.nn.Module, *, tile: int = 512, overlap: int = 64, batch_size: int | None = None,
        device: str | torch.device = "auto", amp: bool | str = True, compile: bool = False,
    ) -> None:
        _check_tiling(tile, overlap, batch_size)
        self.device = resolve_device(device)
        autocast_dtype(self.device, amp)  # refuse an impossible precision before any work
        # The fastest exact layout for the device, maybe compiled (fast_path); `module` stays eager.
        self.model = prepare_model(model.eval(), self.device, compile=compile)
        self.module = unwrap(self.model)
        self.batch_size = batch_size if batch_size is not None else auto_batch_size(self.device)
        self.tile, self.overlap, self.amp = tile, overlap, amp
        self._pending: deque[_SliceAccumulator] = deque()
        self._batch: list[tuple[_SliceAccumulator, Tile]] = []
        self._weights: dict[tuple[int, int], np.ndarray] = {}

    def _weight(self, h: int, w: int) -> np.ndarray:
        if (h, w) not in self._weights:
            self._weights[(h, w)] = blend_weight(h, w, self.overlap).astype(np.float64)
        return self._weights[(h, w)]

    @torch.inference_mode()
    def output_channels(self, window: int) -> int:
        """Number of output channels C, from one forward pass on a small blank input."""
        x = torch.zeros(1, window, 64, 64, device=self.device)
        return int(self.module(x).shape[1])  # eager: a compiled model would compile this shape too

    def push(self, key: Any, window: np.ndarray) -> list[tuple[Any, np.ndarray]]:
        if window.ndim != 3:
            raise ValueError(f"a window must be (K, H, W), got shape {window.shape}")
        h, w = window.shape[1:]
        tiles = plan_tiles(h, w, fitted_tile(h, w, self.tile, self.overlap), self.overlap)
        state = _SliceAccumulator(key, window, len(tiles))
        self._pending.append(state)
        done: list[tuple[Any, np.ndarray]] = []
        for t in tiles:
            self._batch.append((state, t))
            if len(self._batch) == self.batch_size:
                self._run_batch()
                done += self._collect()
        return done

    def flush(self) -> list[tuple[Any, np.ndarray]]:
        if self._batch:
            self._run_batch()
        return self._collect()

    def _collect(self) -> list[tuple[Any, np.ndarray]]:
        done = []
        while self._pending and self._pending[0].tiles_left == 0:
            state = self._pending.popleft()
            done.append((state.key, state.result()))
        return done

    @torch.inference_mode()
    def _run_batch(self) -> None:
        batch, self._batch = self._batch, []
        # All tiles of one slice size share one shape; slices of a volume share one size.
        arrays = np.stack([s.window[(slice(None), *t.region)] for s, t in batch])  # np.stack copies once
        x = torch.from_numpy(arrays).to(self.device, non_blocking=True)
        x, size = pad_to_multiple(x)
        with autocast(self.device, self.amp):
            logits = self.model(prepare_input(x))
        probs = crop_to(_activate(logits), size).cpu().numpy()
        for (state, t), p in zip(batch, probs, strict=True):
            state.add(t, p, self._weight(t.y1 - t.y0, t.x1 - t.x0))


def predict_slice(
    model: torch.nn.Module, window: np.ndarray, *, tile: int = 512, overlap: int = 64,
    batch_size: int | None = None,
    device: str | torch.device = "auto", amp: bool | str = True, compile: bool = False,
) -> np.ndarray:
    """Probabilities ``(C, H, W)`` float32 of one normalised window ``(K, H, W)``, tiled and blended.

    Tiles are padded (reflection) to multiples of 32 and cropped back, so the output is aligned with
    the input pixel for pixel; a window smaller than ``tile`` is predicted whole.
    """
    predictor = TiledPredictor(model, tile=tile, overlap=overlap, batch_size=batch_size, device=device,
                               amp=amp, compile=compile)
    done = predictor.push(0, np.asarray(window, dtype=np.float32)) + predictor.flush()
    return done[0][1]


# ----------------------------------------------------------------------------------- volume driver
def _out_shape(volume_shape: tuple[int, ...], axis: int, n: int) -> tuple[int, ...]:
    shape = list(volume_shape)
    shape[axis] = n
    return tuple(shape)


def _chunks(shape: tuple[int, ...], axis: int, lead: int = 0) -> tuple[int, ...]:
    """One slice thick along the prediction axis, at most 1024 wide in-plane, one class per chunk."""
    out = [1] * lead + [1 if a == axis else min(s, 1024) for a, s in enumerate(shape[lead:])]
    return tuple(out)


def probability_path(out: str | Path) -> Path:
    """Default probability file beside a label file: ``pred.tif`` -> ``pred.prob.tif``."""
    out = Path(out)
    name = out.name
    for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".zarr"):
        if name.lower().endswith(suffix):
            return out.with_name(name[: -len(suffix)] + ".prob" + name[-len(suffix):])
    return out.with_name(name + ".prob")


def predict_events(
    model: torch.nn.Module,
    card_or_settings: ModelCard | dict[str, Any] | InputSettings,
    volume: Any,
    *,
    slices: str | Iterable[int] | None = None,
    out: str | Path | None = None,
    probabilities: bool | str | Path = False,
    probability_dtype: str = "uint8",
    tile: int = 512,
    overlap: int = 64,
    batch_size: int | None = None,
    device: str | torch.device = "auto",
    amp: bool | str = True,
    compile: bool = False,
    store: Any = None,
    model_name: str | None = None,
) -> Generator[SliceDone, None, PredictionResult]:
    """Predict a (possibly lazy, possibly huge) volume slice by slice; yield :class:`SliceDone` each.

    Parameters
    ----------
    model
        A trained model ``(B, K, H, W) -> logits (B, C, H, W)``; moved to ``device``, put in eval mode.
    card_or_settings
        The checkpoint's :class:`ModelCard` (or card dict): window, padding, axis and the fitted
        normaliser come from it, so inputs are prepared exactly as in training.
    volume
        ``(Z, Y, X)`` array-like, read one slice at a time.
    slices
        ``None`` (all), ``"A:B"`` or indices along the model's axis (:func:`~..io.checks.select_slices`).
    out
        A ``.tif``/``.tiff``/``.zarr`` path to stream labels into (atomically: nothing appears under
        the name unless every slice finished). Without it the arrays are returned.
    probabilities
        Also produce probabilities; with ``out``, True writes them to :func:`probability_path` and a
        path writes them there.
    probability_dtype
        On-disk probability type: ``"uint8"`` (``round(255 p)``) or ``"float32"``.
    tile, overlap, batch_size
        Tile size and overlap in pixels; tiles per forward pass (memory is proportional to it; None: 1
        on the CPU, 4 on a GPU, see :func:`auto_batch_size`).
    device, amp
        Where to run; ``amp=True`` uses bfloat16/float16 autocast on CUDA and float32 on the CPU
        (``"bf16"`` asks for CPU bfloat16, refused without native support; see :mod:`.fast_path`).
    compile
        Run the model through ``torch.compile`` (slow first call per tile shape, cached across runs).
    store, model_name
        A results store (:class:`~napari_channelbias.store.ResultsStore` or its path, created for this
        volume if absent) to write labels and probabilities into, under ``model_name`` (default: the
        card's name, else ``"model"``). Only slices not yet done there are computed (all of them when
        ``out`` is given too); without ``out`` nothing is kept in memory.

    Yields
    ------
    SliceDone
        ``task="predict"``, ``z`` the slice index, ``result`` the slice's label plane.

    Returns
    -------
    PredictionResult
    """
    settings = InputSettings.from_any(card_or_settings)
    if probability_dtype not in PROBABILITY_DTYPES:
        raise ConfigError(
            f"probability_dtype must be one of {', '.join(PROBABILITY_DTYPES)}, got {probability_dtype!r}"
        )
    _check_tiling(tile, overlap, batch_size)
    validate_image(volume, window=1, name="image", check_values=False)  # mirror padding needs no minimum
    axis = settings.axis
    n = n_slices_along(volume, axis)
    chosen = select_slices(slices, n, axis)
    shape = _out_shape(tuple(int(s) for s in volume.shape), axis, len(chosen))
    position = {z: i for i, z in enumerate(chosen)}
    predictor = TiledPredictor(
        model, tile=tile, overlap=overlap, batch_size=batch_size, device=device, amp=amp,
        compile=compile,
    )
    start = time.perf_counter()
    result = PredictionResult(slices=chosen, axis=axis)

    classes = predictor.output_channels(settings.window)
    lead = 0 if classes == 1 else 1  # multi-class probabilities get a leading class axis
    label_dtype = np.dtype(np.uint8 if classes <= 256 else np.uint16)
    prob_shape = shape if classes == 1 else (classes, *shape)
    label_array = prob_array = None
    sink, run = None, chosen
    if store is not None:
        from ..store.sinks import prediction_sink  # the store is optional: no zarr/ome-zarr import otherwise

        sink = prediction_sink(store, model_name, model, card_or_settings, settings, volume, classes=classes,
                               probability_dtype=probability_dtype, label_dtype=label_dtype,
                               tile=tile, overlap=overlap, amp=amp)
        result.store_path = sink.store.path
        run = chosen if out is not None else tuple(sink.todo(chosen))  # a rerun resumes
        pending = set(sink.todo(chosen))
    with ExitStack() as stack:
        label_writer = prob_writer = None
        if out is not None:
            label_writer = stack.enter_context(
                VolumeWriter(out, shape, label_dtype, chunks=_chunks(shape, axis)))
            if probabilities is not False:
                target = probability_path(out) if probabilities is True else Path(probabilities)
                prob_chunks = _chunks(prob_shape, axis, lead)
                prob_writer = stack.enter_context(
                    VolumeWriter(target, prob_shape, probability_dtype, chunks=prob_chunks))
        elif sink is None:
            label_array = np.zeros(shape, label_dtype)
            if probabilities is not False:
                prob_array = np.zeros(prob_shape, np.float32)
        labels_out = label_writer if label_writer is not None else label_array
        probs_out = prob_writer if prob_writer is not None else prob_array

        def finish(z: int, probs: np.ndarray, done: int) -> SliceDone:
            labels = output_labels(probs, label_dtype)
            if sink is not None and z in pending:
                sink.write(z, labels, probs)
            if labels_out is None:
                return SliceDone("predict", z, done, len(run), result=labels)
            labels_out[plane_index(axis, position[z])] = labels
            if probs_out is not None:
                plane = probs[0] if classes == 1 else probs
                if prob_writer is not None and probability_dtype == "uint8":
                    plane = np.rint(plane * 255.0).astype(np.uint8)
                probs_out[plane_index(axis, position[z], lead)] = plane
            return SliceDone("predict", z, done, len(run), result=labels)

        done = 0
        windows = settings.windows(volume, run)
        for z, window in windows:
            for key, probs in predictor.push(z, window):
                done += 1
                yield finish(key, probs, done)
        for key, probs in predictor.flush():
            done += 1
            yield finish(key, probs, done)
        # Leaving the ExitStack normally commits the writers; close() or an error aborts them.
    if label_writer is not None:
        result.labels_path = label_writer.path
    if prob_writer is not None:
        result.probabilities_path = prob_writer.path
    result.labels, result.probabilities = label_array, prob_array
    result.seconds = time.perf_counter() - start
    return result


def predict_volume(*args: Any, on_event: Any = None, **kwargs: Any) -> PredictionResult:
    """:func:`predict_events` run to the end (same arguments); ``on_event`` receives every event."""
    return run_to_end(predict_events(*args, **kwargs), on_event)


def probabilities_in_volume(
    result: PredictionResult, volume_shape: tuple[int, ...], out: Any = None
) -> Any:
    """The probabilities of ``result`` (in memory) placed at their slices of a zero volume of the image.

    A prediction of some slices returns them stacked along its axis in the order of ``result.slices``;
    a viewer layer that sits on the image needs them at their own slice positions. Multi-class
    probabilities keep their leading class axis: ``(C, *volume_shape)``; binary ones are ``volume_shape``.
    ``out``: a zero array of that shape to write into (any array that takes numpy slice assignment, e.g.
    the GUI's in-memory zarr volumes); by default a new ``np.zeros`` float32 array.
    """
    if result.probabilities is None:
        raise ConfigError("this prediction has no probabilities in memory (ask for them, without an output file)")
    probs = np.asarray(result.probabilities, dtype=np.float32)
    lead = probs.ndim - 3
    shape = (*probs.shape[:lead], *(int(s) for s in volume_shape))
    full = np.zeros(shape, dtype=np.float32) if out is None else out
    if tuple(full.shape) != shape:
        raise ConfigError(f"out has shape {tuple(full.shape)}, the probabilities need {shape}")
    for i, z in enumerate(result.slices):
        full[plane_index(result.axis, z, lead)] = probs[plane_index(result.axis, i, lead)]
    return full
