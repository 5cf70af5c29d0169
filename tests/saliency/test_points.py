"""The ``-points`` methods: replicated batches against explicit per-point loops and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_channelbias.saliency.base import SaliencyWarning
from napari_channelbias.saliency.compute import compute_saliency
from napari_channelbias.saliency.points import default_chunk, draw_points
from saliency_models import (
    POINTWISE_TERMS,
    SmallCNN,
    TinyEncoderDecoder,
    assert_float32_close,
    assert_mirror_close,
    linear_1x1,
    random_window,
    sigmoid,
)

W = np.array([0.8, -1.5, 0.3])


def test_draw_points_is_seeded_distinct_and_uses_the_whole_small_pool() -> None:
    pool = np.arange(1000)
    a, b = draw_points(pool, 50, seed=3), draw_points(pool, 50, seed=3)
    assert np.array_equal(a, b) and len(np.unique(a)) == 50
    assert not np.array_equal(a, draw_points(pool, 50, seed=4))
    small = np.array([7, 3, 11])
    assert np.array_equal(draw_points(small, 50, seed=0), [3, 7, 11])
    assert draw_points(np.array([], np.int64), 5, seed=0).size == 0


def test_default_chunk_is_sequential_on_cpu_and_batched_on_gpus() -> None:
    assert default_chunk(torch.device("cpu")) == 1
    assert default_chunk(torch.device("cuda", 0)) == 8


def explicit_loop(model: torch.nn.Module, x: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """mean_n |d p(h_n, w_n) / dx| with one plain backward pass per point (the reference)."""
    model.eval()
    xt = torch.tensor(x[None]).requires_grad_(True)
    p = torch.sigmoid(model(xt))[0, 0]
    total = torch.zeros_like(xt[0])
    for f in flat:
        (g,) = torch.autograd.grad(p[f // x.shape[2], f % x.shape[2]], xt, retain_graph=True)
        total += g[0].abs()
    return (total / len(flat)).numpy()


@pytest.mark.parametrize("chunk", [None, 1, 3, 16])  # None: the device default
def test_chunked_points_equal_one_backward_pass_per_point(chunk) -> None:
    model = TinyEncoderDecoder(seed=2)
    x = random_window(seed=1)
    got = compute_saliency(model, x, "full-output-points", points=7, seed=5, chunk=chunk)
    flat = draw_points(np.arange(32 * 32), 7, seed=5)
    np.testing.assert_allclose(got, explicit_loop(model, x, flat), rtol=1e-5, atol=1e-9)


def test_all_pixels_of_a_linear_model_give_the_closed_form_over_the_pixel_count() -> None:
    x = random_window(3, 32, 32, seed=2)
    model = linear_1x1(list(W), -0.2)
    logit = np.tensordot(W, x.astype(np.float64), axes=1) - 0.2
    expected = np.abs(W[:, None, None]) * sigmoid(logit) * (1 - sigmoid(logit)) / x[0].size
    size = expected * (1 + np.tensordot(np.abs(W), x.astype(np.float64), axes=1) + 0.2)
    for n in (32 * 32, 5000):  # more points than pixels: every pixel once
        got = compute_saliency(model, x, "full-output-points", points=n, chunk=256)
        assert_float32_close(got, expected, size, POINTWISE_TERMS)


def test_foreground_points_are_drawn_from_the_mask_and_all_used_when_fewer_than_n() -> None:
    x = random_window(3, 32, 32, seed=3)
    model = linear_1x1(list(W), -0.6)
    logit = np.tensordot(W, x.astype(np.float64), axes=1) - 0.6
    mask = sigmoid(logit) > 0.5
    assert 0 < mask.sum() < 300
    expected = np.abs(W[:, None, None]) * sigmoid(logit) * (1 - sigmoid(logit)) * mask / mask.sum()
    size = expected * (1 + np.tensordot(np.abs(W), x.astype(np.float64), axes=1) + 0.6)
    got = compute_saliency(model, x, "foreground-points", points=300, chunk=64)
    assert_float32_close(got, expected, size, POINTWISE_TERMS)
    few = compute_saliency(model, x, "foreground-points", points=10, seed=1)
    assert (few[0] > 0).sum() == 10 and not few[:, ~mask].any()


def test_empty_foreground_gives_zeros_and_a_warning() -> None:
    with pytest.warns(SaliencyWarning, match="no foreground"):
        got = compute_saliency(linear_1x1([0.1, 0.1, 0.1], -40.0), random_window(), "foreground-points")
    assert got.shape == (3, 32, 32) and not got.any()


@pytest.mark.parametrize("method", ["full-output-points", "foreground-points"])
def test_reversed_window_gives_reversed_maps_for_a_symmetric_model(method) -> None:
    model = SmallCNN(symmetric=True, seed=4)
    with torch.no_grad():
        model[2].bias.fill_(0.2)
    x = random_window(seed=8)
    got = compute_saliency(model, x, method, points=20, seed=2)
    flipped = compute_saliency(model, x[::-1].copy(), method, points=20, seed=2)
    assert got.any()
    assert_mirror_close(flipped, got, model)


def test_an_ignored_channel_has_exactly_zero_saliency() -> None:
    model = SmallCNN(seed=1)
    with torch.no_grad():
        model[0].weight[:, 2] = 0.0
    got = compute_saliency(model, random_window(), "full-output-points", points=12)
    assert not got[2].any() and got[0].any()


@pytest.mark.parametrize("method", ["full-output-points", "foreground-points"])
def test_tiles_draw_the_same_points_and_agree_for_a_pointwise_and_a_small_cnn(method) -> None:
    x = random_window(3, 96, 96, seed=9)
    for model, kwargs in ((linear_1x1(list(W), 0.1), {"tile": 32, "overlap": 8}),
                          (SmallCNN(seed=1), {"tile": 64, "overlap": 16})):
        with torch.no_grad():
            list(model.parameters())[-1].fill_(0.1)
        whole = compute_saliency(model, x, method, points=40, seed=1)
        tiled = compute_saliency(model, x, method, points=40, seed=1, **kwargs)
        assert whole.any()
        np.testing.assert_allclose(tiled, whole, rtol=1e-5, atol=1e-6 * whole.max())
