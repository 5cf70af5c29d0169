"""Tiled prediction: exact for pixel-wise models, aligned with the input, streamed atomically."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from napari_channelbias.errors import ConfigError, VolumeError
from napari_channelbias.io.read import open_volume
from napari_channelbias.segmentation.prediction import (
    PredictionResult,
    predict_events,
    predict_slice,
    predict_volume,
    probabilities_in_volume,
    probability_path,
)
from napari_channelbias.tiling import plan_tiles
from napari_channelbias.windowing import Normalizer

RAW = {"window": 3, "padding": "mirror", "axis": 0}  # no normalisation: the volume is already in [0, 1]


def pixelwise(weights: list[list[float]], bias: list[float]) -> nn.Module:
    """A 1x1 convolution: every output pixel depends on its own input pixel only."""
    conv = nn.Conv2d(len(weights[0]), len(weights), 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(weights).reshape(conv.weight.shape))
        conv.bias.copy_(torch.tensor(bias))
    return conv


def small_cnn() -> nn.Module:
    """Two 3x3 convolutions (receptive field radius 2), weights large enough for a varied output."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1))
    with torch.no_grad():
        for layer in (model[0], model[2]):
            layer.weight.normal_(0.0, 1.0)
            layer.bias.normal_(0.0, 0.5)
    return model.eval()


def volume(shape=(5, 70, 90), seed=0) -> np.ndarray:
    # Values on a 1/256 grid keep every 10 x - 5 well away from the 0.5 decision boundary's rounding.
    rng = np.random.default_rng(seed)
    return ((rng.integers(0, 256, shape) + 0.5) / 256).astype(np.float32)


# -- one slice -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("tile", "overlap"), [(32, 8), (64, 31), (33, 0), (512, 64)])
@pytest.mark.parametrize("shape", [(3, 70, 90), (3, 33, 97)])
def test_tiled_equals_whole_slice_exactly_for_a_pixelwise_model(tile: int, overlap: int, shape) -> None:
    # Dyadic weights and inputs make every product and sum exact in float32, so the convolution kernel's
    # summation order (which varies with the input size) cannot change a bit; blending must not either.
    model = pixelwise([[0.25, -1.5, 0.75]], [0.125]).eval()
    window = volume(shape)
    with torch.no_grad():
        whole = torch.sigmoid(model(torch.from_numpy(window)[None]))[0].numpy()
    tiled = predict_slice(model, window, tile=tile, overlap=overlap, batch_size=3, device="cpu")
    assert tiled.dtype == np.float32 and tiled.shape == (1, *shape[1:])
    assert np.array_equal(tiled, whole)


def test_tiled_cnn_matches_whole_slice_where_tiles_keep_their_context() -> None:
    model = small_cnn()
    window = volume((3, 96, 128), seed=3)
    with torch.no_grad():  # 96 x 128 is a multiple of 32: the whole slice needs no padding
        whole = torch.sigmoid(model(torch.from_numpy(window)[None]))[0].numpy()
    tile, overlap, radius = 32, 16, 2
    tiled = predict_slice(model, window, tile=tile, overlap=overlap, device="cpu")
    # A tile loses context within `radius` of its edges, except where that edge is the slice border
    # (the whole-slice run zero-pads there too). Pixels no covering tile has lost context at are exact.
    lost = np.zeros(whole.shape[1:], bool)
    for t in plan_tiles(96, 128, tile, overlap):
        inner = np.zeros_like(lost)
        inner[t.region] = True
        keep = np.zeros_like(lost)
        y0, y1 = (t.y0 + radius if t.y0 > 0 else 0), (t.y1 - radius if t.y1 < 96 else 96)
        x0, x1 = (t.x0 + radius if t.x0 > 0 else 0), (t.x1 - radius if t.x1 < 128 else 128)
        keep[y0:y1, x0:x1] = True
        lost |= inner & ~keep
    assert 0.2 < lost.mean() < 0.8
    np.testing.assert_allclose(tiled[:, ~lost], whole[:, ~lost], atol=1e-5)
    # Elsewhere the context-free tiles have a small blend weight: the error is a fraction of the signal.
    diff = np.abs(tiled - whole)
    assert whole.std() > 0.15
    assert diff.max() < 0.25 and diff.mean() < 0.01
    # one tile covering the whole slice is the whole-slice prediction
    np.testing.assert_allclose(predict_slice(model, window, tile=128, overlap=0, device="cpu"), whole,
                               atol=1e-5)


def test_tiles_batched_across_slices_give_the_same_result() -> None:
    model = small_cnn()
    vol = volume((4, 50, 70), seed=5)
    one = predict_volume(model, RAW, vol, tile=32, overlap=8, batch_size=1, device="cpu",
                         probabilities=True)
    many = predict_volume(model, RAW, vol, tile=32, overlap=8, batch_size=7, device="cpu",
                          probabilities=True)
    # same values up to float32 summation order, which oneDNN picks by batch size
    np.testing.assert_allclose(one.probabilities, many.probabilities, atol=1e-5)


# -- a volume: channel order, alignment, slices, axis -------------------------------------------------

def test_labels_are_aligned_with_the_input_voxel_for_voxel() -> None:
    vol = volume()
    centre = pixelwise([[0.0, 10.0, 0.0]], [-5.0])  # label = centre slice > 0.5
    events = []
    result = predict_volume(centre, RAW, vol, tile=32, overlap=8, device="cpu", on_event=events.append)
    assert result.labels.dtype == np.uint8 and result.labels.shape == vol.shape
    assert np.array_equal(result.labels, vol > 0.5)
    assert [e.z for e in events] == [0, 1, 2, 3, 4]
    assert [e.done for e in events] == [1, 2, 3, 4, 5] and events[-1].total == 5
    assert np.array_equal(events[2].result, vol[2] > 0.5)
    assert result.probabilities is None and result.labels_path is None


def test_channel_zero_is_the_lower_neighbour_mirrored_at_the_ends() -> None:
    vol = volume()
    lower = pixelwise([[10.0, 0.0, 0.0]], [-5.0])  # label = slice z - 1 > 0.5 (z = -1 mirrors to 1)
    labels = predict_volume(lower, RAW, vol, tile=64, overlap=8, device="cpu").labels
    expected = vol[[1, 0, 1, 2, 3]] > 0.5
    assert np.array_equal(labels, expected)


def test_slice_subset_and_other_axis() -> None:
    vol = volume()
    centre = pixelwise([[0.0, 10.0, 0.0]], [-5.0])
    sub = predict_volume(centre, RAW, vol, slices="1:3", tile=32, overlap=8, device="cpu")
    assert sub.slices == (1, 2)
    assert np.array_equal(sub.labels, vol[1:3] > 0.5)
    listed = predict_volume(centre, RAW, vol, slices=[4, 0], tile=32, overlap=8, device="cpu")
    assert np.array_equal(listed.labels, vol[[4, 0]] > 0.5)
    along_y = predict_volume(centre, {**RAW, "axis": 1}, vol, tile=32, overlap=8, device="cpu")
    assert along_y.labels.shape == vol.shape
    assert np.array_equal(along_y.labels, vol > 0.5)
    some_x = predict_volume(centre, {**RAW, "axis": 2}, vol, slices="10:13", tile=32, overlap=8,
                            device="cpu")
    assert np.array_equal(some_x.labels, vol[:, :, 10:13] > 0.5)


def test_normaliser_from_the_settings_is_applied() -> None:
    raw = (volume() * 200 + 20).astype(np.float32)  # intensities 20..220
    settings = {**RAW, "normalization": Normalizer(mode="minmax", lo=20.0, hi=220.0).to_dict()}
    centre = pixelwise([[0.0, 10.0, 0.0]], [-5.0])
    labels = predict_volume(centre, settings, raw, tile=32, overlap=8, device="cpu").labels
    assert np.array_equal(labels, (raw - 20) / 200 > 0.5)


def test_probabilities_binary_and_multiclass() -> None:
    vol = volume((3, 40, 50))
    binary = pixelwise([[1.0, 2.0, -1.0]], [0.25])
    res = predict_volume(binary, RAW, vol, probabilities=True, tile=32, overlap=8, device="cpu")
    logits = vol[[1, 0, 1]] * 1.0 + vol * 2.0 - vol[[1, 2, 1]] + 0.25
    np.testing.assert_allclose(res.probabilities, 1 / (1 + np.exp(-logits)), atol=1e-6)
    assert res.probabilities.shape == vol.shape

    three = pixelwise([[0, 1, 0], [0, -1, 0], [0, 0, 0]], [0.0, 0.0, 0.0])
    res = predict_volume(three, RAW, vol, probabilities=True, tile=32, overlap=8, device="cpu")
    assert res.probabilities.shape == (3, *vol.shape)
    np.testing.assert_allclose(res.probabilities.sum(axis=0), 1.0, atol=1e-6)
    expected = np.where(vol > 0, 0, 2)  # logits (x, -x, 0): class 0 wins for every x > 0
    assert np.array_equal(res.labels, expected)


# -- streaming to files ---------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
def test_streaming_round_trip(tmp_path: Path, suffix: str) -> None:
    vol = volume()
    model = small_cnn()
    memory = predict_volume(model, RAW, vol, probabilities=True, tile=32, overlap=8, device="cpu")
    out = tmp_path / f"pred{suffix}"
    result = predict_volume(model, RAW, vol, out=out, probabilities=True, tile=32, overlap=8, device="cpu")
    assert result.labels is None and result.probabilities is None
    assert result.labels_path == out and result.probabilities_path == probability_path(out)
    labels = np.asarray(open_volume(out)[:])
    probs = np.asarray(open_volume(result.probabilities_path)[:])
    assert labels.dtype == np.uint8 and np.array_equal(labels, memory.labels)
    assert probs.dtype == np.uint8
    assert np.array_equal(probs, np.rint(memory.probabilities * 255).astype(np.uint8))
    assert sorted(os.listdir(tmp_path)) == sorted([out.name, result.probabilities_path.name])


def test_float_probabilities_to_a_named_file_along_another_axis(tmp_path: Path) -> None:
    vol = volume()
    model = small_cnn()
    settings = {**RAW, "axis": 2}
    memory = predict_volume(model, settings, vol, probabilities=True, slices="3:9", tile=32, overlap=8,
                            device="cpu")
    res = predict_volume(model, settings, vol, out=tmp_path / "l.zarr", probabilities=tmp_path / "p.zarr",
                         probability_dtype="float32", slices="3:9", tile=32, overlap=8, device="cpu")
    assert np.array_equal(np.asarray(open_volume(res.probabilities_path)[:]), memory.probabilities)
    assert np.asarray(open_volume(res.labels_path)[:]).shape == (5, 70, 6)


@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
def test_cancel_leaves_no_output_and_keeps_an_old_one(tmp_path: Path, suffix: str) -> None:
    vol = volume()
    model = small_cnn()
    out = tmp_path / f"pred{suffix}"
    gen = predict_events(model, RAW, vol, out=out, probabilities=True, tile=32, overlap=8, device="cpu")
    next(gen)
    next(gen)
    gen.close()
    assert os.listdir(tmp_path) == []

    old = predict_volume(model, RAW, vol, out=out, tile=32, overlap=8, device="cpu").labels_path
    before = np.asarray(open_volume(old)[:])
    gen = predict_events(pixelwise([[0, 0, 0]], [5.0]), RAW, vol, out=out, tile=32, overlap=8, device="cpu")
    next(gen)
    gen.close()
    assert os.listdir(tmp_path) == [out.name]
    assert np.array_equal(np.asarray(open_volume(out)[:]), before)


# -- a real segmentation model and the errors ----------------------------------------------------------

def test_real_unet_on_an_odd_sized_volume() -> None:
    from napari_channelbias.models.factory import build_model
    from napari_channelbias.models.spec import ModelSpec

    model, _ = build_model(ModelSpec(init="random", window=3, classes=2))
    vol = (volume((3, 40, 50)) * 255).astype(np.uint8)
    card_like = {**RAW, "normalization": Normalizer.fit(vol).to_dict()}
    res = predict_volume(model, card_like, vol, probabilities=True, tile=64, overlap=16, device="cpu")
    assert res.labels.shape == vol.shape and res.probabilities.shape == (2, *vol.shape)
    assert np.isfinite(res.probabilities).all()


def test_bad_arguments_are_reported() -> None:
    vol = volume()
    model = pixelwise([[0, 1, 0]], [0.0])
    with pytest.raises(ConfigError, match="tile must be"):
        predict_volume(model, RAW, vol, tile=16, device="cpu")
    with pytest.raises(ConfigError, match="overlap must be"):
        predict_volume(model, RAW, vol, tile=32, overlap=32, device="cpu")
    with pytest.raises(ConfigError, match="out of range"):
        predict_volume(model, RAW, vol, slices=[7], device="cpu")
    with pytest.raises(ConfigError, match="probability_dtype"):
        predict_volume(model, RAW, vol, probability_dtype="float16", device="cpu")
    with pytest.raises(VolumeError):
        predict_volume(model, RAW, vol[0], device="cpu")
    with pytest.raises(VolumeError, match=r"\.tif/\.tiff file or a \.zarr folder"):
        predict_volume(model, RAW, vol, out="pred.png", device="cpu")


@pytest.mark.parametrize("length", [33, 100, 511, 512, 513, 700, 1024, 2000, 2048, 4096])
@pytest.mark.parametrize(("tile", "overlap"), [(512, 64), (256, 32), (64, 8)])
def test_fitted_tile_never_needs_more_tiles_and_keeps_the_overlap(length: int, tile: int, overlap: int) -> None:
    from napari_channelbias.segmentation.prediction import fitted_tile
    from napari_channelbias.tiling import tile_starts

    fitted = fitted_tile(length, length, tile, overlap)
    assert fitted <= tile and (fitted % 32 == 0 or fitted == tile)
    starts = tile_starts(length, fitted, overlap)
    assert len(starts) <= len(tile_starts(length, tile, overlap))
    assert starts[0] == 0 and starts[-1] + min(fitted, length) == length  # covers the whole length
    assert all(b - a <= fitted - overlap for a, b in zip(starts, starts[1:], strict=False))  # overlap kept
    if length == 1024 and (tile, overlap) == (512, 64):
        assert fitted == 384  # 3 tiles of 384 instead of 3 of 512


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_probabilities_land_at_their_slices_of_the_volume(axis):
    shape = (4, 5, 6)
    stacked = list(shape)
    stacked[axis] = 2
    probs = np.arange(np.prod(stacked), dtype=np.float32).reshape(stacked) + 1
    full = probabilities_in_volume(PredictionResult(slices=(3, 1), axis=axis, probabilities=probs), shape)
    assert full.shape == shape
    np.testing.assert_array_equal(np.take(full, 3, axis=axis), np.take(probs, 0, axis=axis))
    np.testing.assert_array_equal(np.take(full, 1, axis=axis), np.take(probs, 1, axis=axis))
    assert not np.take(full, [0, 2], axis=axis).any()  # the slices not predicted stay 0


def test_multiclass_probabilities_keep_their_class_axis():
    probs = np.random.default_rng(0).random((3, 1, 5, 6)).astype(np.float32)  # C=3, one slice
    full = probabilities_in_volume(PredictionResult(slices=(2,), axis=0, probabilities=probs), (4, 5, 6))
    assert full.shape == (3, 4, 5, 6)
    np.testing.assert_array_equal(full[:, 2], probs[:, 0])
    assert not full[:, [0, 1, 3]].any()


def test_probabilities_go_into_a_given_zero_array_of_the_right_shape():
    import zarr

    probs = np.random.default_rng(1).random((3, 1, 5, 6)).astype(np.float32)
    result = PredictionResult(slices=(2,), axis=0, probabilities=probs)
    target = zarr.create_array(store=zarr.storage.MemoryStore(), shape=(3, 4, 5, 6), chunks=(1, 1, 5, 6),
                               dtype="float32", fill_value=0)
    assert probabilities_in_volume(result, (4, 5, 6), out=target) is target
    np.testing.assert_array_equal(target[:, 2], probs[:, 0])
    assert not target[:, 3].any()
    with pytest.raises(ConfigError, match=r"out has shape \(4, 5, 6\), the probabilities need \(3, 4, 5, 6\)"):
        probabilities_in_volume(result, (4, 5, 6), out=np.zeros((4, 5, 6), np.float32))


def test_no_probabilities_in_memory_is_a_config_error():
    with pytest.raises(ConfigError, match="no probabilities in memory"):
        probabilities_in_volume(PredictionResult(slices=(0,), axis=0), (1, 2, 2))
