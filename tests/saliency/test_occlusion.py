"""``occlusion`` against a hand computation, symmetry, batching and tiling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_channelbias.saliency.compute import compute_saliency
from saliency_models import POINTWISE_TERMS, SmallCNN, assert_float32_close, linear_1x1, random_window, sigmoid

W = np.array([0.8, -1.5, 0.3])
B = -0.2


def hand_occlusion(x: np.ndarray, patch: int) -> tuple[np.ndarray, np.ndarray]:
    """Each channel's patch set to the channel's slice mean; |change of the summed probability|.

    Also returns the magnitude for :func:`assert_float32_close`: pixels outside the patch give the same
    float32 probability clean and occluded (the same operations on the same values), so the rounding
    comes from the patch's pixels, each probability as large as it is times its logit's terms.
    """
    x = x.astype(np.float64)
    k, h, w = x.shape
    clean = sigmoid(np.tensordot(W, x, axes=1) + B)
    out, size = np.zeros_like(x), np.zeros_like(x)
    for c in range(k):
        for y0 in range(0, h, patch):
            for x0 in range(0, w, patch):
                occluded = x.copy()
                occluded[c, y0:y0 + patch, x0:x0 + patch] = x[c].mean()
                p = sigmoid(np.tensordot(W, occluded, axes=1) + B)
                out[c, y0:y0 + patch, x0:x0 + patch] = abs(clean.sum() - p.sum())
                rows, cols = slice(y0, y0 + patch), slice(x0, x0 + patch)
                logit_size = 1 + np.tensordot(np.abs(W), np.abs(occluded[:, rows, cols]), axes=1) + abs(B)
                size[c, rows, cols] = ((clean[rows, cols] + p[rows, cols]) * logit_size).sum()
    return out, size


@pytest.mark.parametrize(("shape", "patch"), [((32, 32), 16), ((40, 36), 16), ((32, 32), 8)])
def test_linear_model_matches_the_hand_computation(shape, patch) -> None:
    x = random_window(3, *shape, seed=1)
    got = compute_saliency(linear_1x1(list(W), B), x, "occlusion", patch=patch)
    assert got.dtype == np.float32 and got.shape == (3, *shape)
    assert_float32_close(got, *hand_occlusion(x, patch), POINTWISE_TERMS)


def test_maps_are_constant_on_each_patch() -> None:
    got = compute_saliency(SmallCNN(seed=2), random_window(seed=3), "occlusion", patch=16)
    for y0 in (0, 16):
        for x0 in (0, 16):
            block = got[:, y0:y0 + 16, x0:x0 + 16]
            assert np.all(block == block[:, :1, :1])


def test_an_ignored_channel_has_exactly_zero_saliency() -> None:
    model = SmallCNN(seed=1)
    with torch.no_grad():
        model[0].weight[:, 0] = 0.0
    got = compute_saliency(model, random_window(), "occlusion")
    assert not got[0].any() and got[1].any() and got[2].any()


def test_batch_size_does_not_change_the_result() -> None:
    model, x = SmallCNN(seed=2), random_window(seed=4)
    one = compute_saliency(model, x, "occlusion", batch_size=2)
    many = compute_saliency(model, x, "occlusion", batch_size=5)
    np.testing.assert_allclose(many, one, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model", [linear_1x1([0.7, -0.4, 0.7], 0.2), SmallCNN(symmetric=True, seed=5)])
def test_reversed_window_gives_reversed_maps_for_a_symmetric_model(model) -> None:
    x = random_window(seed=6)
    got = compute_saliency(model, x, "occlusion", patch=8)
    flipped = compute_saliency(model, x[::-1].copy(), "occlusion", patch=8)
    # Reversal changes the order of the channel sum inside the first conv: float32 rounding of ~1e-7 per
    # pixel, summed over the patch's receptive field.
    np.testing.assert_allclose(flipped, got[::-1], rtol=1e-5, atol=1e-5 * got.max())


def test_tiles_agree_with_the_whole_slice_when_the_receptive_field_fits() -> None:
    # Patches straddle the tile seams (tiles at 0 and 32 with a 16-pixel overlap ending mid-patch).
    x = random_window(3, 96, 96, seed=7)
    for model, kwargs in ((linear_1x1(list(W), B), {"tile": 64, "overlap": 20}),
                          (SmallCNN(seed=3), {"tile": 64, "overlap": 16})):
        whole = compute_saliency(model, x, "occlusion", patch=16)
        tiled = compute_saliency(model, x, "occlusion", patch=16, **kwargs)
        np.testing.assert_allclose(tiled, whole, rtol=1e-4, atol=1e-5 * whole.max())
