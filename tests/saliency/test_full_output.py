"""``full-output`` and ``foreground`` against closed forms, symmetry and tiling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_channelbias.errors import ConfigError
from napari_channelbias.saliency.base import SaliencyWarning
from napari_channelbias.saliency.compute import compute_saliency
from saliency_models import (
    POINTWISE_TERMS,
    SmallCNN,
    assert_float32_close,
    assert_mirror_close,
    linear_1x1,
    linear_1x1_multi,
    random_window,
    sigmoid,
)

W = np.array([0.8, -1.5, 0.3])
B = -0.2


def linear_expectation(x: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """|w_c sigmoid'(l)| per pixel, times M for foreground: the exact input gradient of sum sigmoid.

    Also returns the magnitude for :func:`assert_float32_close`: the gradient's size times that of the
    logit's terms (an error in the logit moves sigmoid' by at most that error times sigmoid').
    """
    logit = np.tensordot(W, x.astype(np.float64), axes=1) + B
    s = sigmoid(logit)
    local = s * (1 - s) if mask is None else s * (1 - s) * mask
    logit_size = 1 + np.tensordot(np.abs(W), np.abs(x.astype(np.float64)), axes=1) + abs(B)
    return np.abs(W[:, None, None] * local), np.abs(W[:, None, None] * local) * logit_size


@pytest.mark.parametrize("shape", [(32, 32), (40, 50)])  # 40 x 50 is padded to 64 x 64 inside
def test_full_output_of_a_linear_model_is_the_closed_form(shape) -> None:
    x = random_window(3, *shape)
    got = compute_saliency(linear_1x1(list(W), B), x, "full-output")
    assert got.dtype == np.float32 and got.shape == (3, *shape)
    # Padded output pixels are cropped before the sum: otherwise reflected pixels would get extra gradient.
    assert_float32_close(got, *linear_expectation(x), POINTWISE_TERMS)


def test_foreground_of_a_linear_model_is_the_masked_closed_form() -> None:
    x = random_window(3, 32, 32, seed=1)
    model = linear_1x1(list(W), 0.1)
    logit = np.tensordot(W, x.astype(np.float64), axes=1) + 0.1
    mask = sigmoid(logit) > 0.5
    assert 0 < mask.sum() < mask.size
    expected = np.abs(W[:, None, None]) * (sigmoid(logit) * (1 - sigmoid(logit))) * mask
    size = expected * (1 + np.tensordot(np.abs(W), x.astype(np.float64), axes=1) + 0.1)
    assert_float32_close(compute_saliency(model, x, "foreground"), expected, size, POINTWISE_TERMS)


def test_foreground_without_foreground_is_zero_and_warns() -> None:
    model = linear_1x1([0.1, 0.1, 0.1], -50.0)
    with pytest.warns(SaliencyWarning, match="no foreground"):
        got = compute_saliency(model, random_window(), "foreground")
    assert not got.any()


@pytest.mark.parametrize("method", ["full-output", "foreground"])
def test_an_ignored_channel_has_exactly_zero_saliency(method) -> None:
    model = SmallCNN(seed=3)
    with torch.no_grad():
        model[0].weight[:, 1] = 0.0
        model[2].bias.fill_(2.0)  # plenty of foreground
    got = compute_saliency(model, random_window(), method)
    assert not got[1].any() and got[0].any() and got[2].any()


@pytest.mark.parametrize("method", ["full-output", "foreground"])
@pytest.mark.parametrize("model", [linear_1x1([0.7, -0.4, 0.7], 0.2), SmallCNN(symmetric=True)])
def test_reversed_window_gives_reversed_maps_for_a_symmetric_model(method, model) -> None:
    x = random_window(seed=5)
    got = compute_saliency(model, x, method)
    flipped = compute_saliency(model, x[::-1].copy(), method)
    assert_mirror_close(flipped, got, model)


def test_multiclass_target_selection_matches_the_softmax_closed_form() -> None:
    weights = np.array([[0.5, -0.2, 0.1], [-0.3, 0.9, 0.4], [0.2, 0.2, -0.8]])
    bias = np.array([0.1, -0.1, 0.0])
    model = linear_1x1_multi(weights, bias)
    x = random_window(seed=2)
    z = np.einsum("jk,khw->jhw", weights, x.astype(np.float64)) + bias[:, None, None]
    p = np.exp(z) / np.exp(z).sum(axis=0)
    # The exact gradient p_t (w_tc - sum_j p_j w_jc) is a difference of terms of size
    # p_t (|w_tc| + sum_j p_j |w_jc|), each carrying the rounding of the logits (sizes 1 + sum |w x| + |b|).
    logit_size = 1 + np.einsum("jk,khw->jhw", np.abs(weights), x.astype(np.float64)) + np.abs(bias)[:, None, None]
    for target, expected_t in ((None, 1), (0, 0), (2, 2)):
        mean_w = np.einsum("jhw,jc->chw", p, weights)
        expected = np.abs(p[expected_t] * (weights[expected_t][:, None, None] - mean_w))
        terms_size = p[expected_t] * (np.abs(weights[expected_t])[:, None, None]
                                      + np.einsum("jhw,jc->chw", p, np.abs(weights)))
        got = compute_saliency(model, x, "full-output", target=target)
        assert_float32_close(got, expected, terms_size * logit_size.max(axis=0), POINTWISE_TERMS)
    with pytest.raises(ConfigError, match="valid targets: 0..2"):
        compute_saliency(model, x, "full-output", target=3)


@pytest.mark.parametrize("method", ["full-output", "foreground"])
def test_tiles_agree_exactly_with_the_whole_slice_for_a_pointwise_model(method) -> None:
    x = random_window(3, 96, 80, seed=4)
    model = linear_1x1(list(W), 0.1)
    whole = compute_saliency(model, x, method)
    tiled = compute_saliency(model, x, method, tile=32, overlap=8)
    np.testing.assert_allclose(tiled, whole, rtol=1e-6, atol=0)


@pytest.mark.parametrize("method", ["full-output", "foreground"])
def test_tiles_agree_with_the_whole_slice_when_the_receptive_field_fits_in_the_overlap(method) -> None:
    # Receptive-field radius 2 <= overlap / 2 and slice sides multiples of 32 (no padding anywhere).
    x = random_window(3, 96, 96, seed=6)
    model = SmallCNN(seed=1)
    with torch.no_grad():
        model[2].bias.fill_(0.3)
    whole = compute_saliency(model, x, method)
    tiled = compute_saliency(model, x, method, tile=64, overlap=16)
    np.testing.assert_allclose(tiled, whole, rtol=1e-5, atol=1e-6 * whole.max())


def test_tiles_with_too_little_overlap_agree_only_away_from_the_seams() -> None:
    # 126 = tiles at 0 and 62 (overlap 2 < twice the receptive-field radius 2): pixels at the seam lose
    # context, the tile interiors do not.
    x = random_window(3, 126, 126, seed=6)
    model = SmallCNN(seed=1)
    whole = compute_saliency(model, x, "full-output")
    rough = compute_saliency(model, x, "full-output", tile=64, overlap=2)
    tol = {"rtol": 1e-5, "atol": 1e-6 * float(whole.max())}
    np.testing.assert_allclose(rough[:, :56, :56], whole[:, :56, :56], **tol)
    assert not np.allclose(rough[:, 58:68], whole[:, 58:68], **tol)
