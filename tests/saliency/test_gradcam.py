"""Channel-occluded ``gradcam`` / ``gradcam++`` against a hand-rolled computation, layer choice, symmetry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from napari_channelbias.errors import ConfigError
from napari_channelbias.saliency.compute import compute_saliency
from saliency_models import SmallCNN, TinyEncoderDecoder, assert_mirror_close, random_window, sigmoid


class PatchEncoder(nn.Module):
    """smp-like encoder with one stage: a 2x2 stride-2 convolution, no activation."""

    def __init__(self, in_channels: int, features: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, features, 2, stride=2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x, self.conv(x)]


class CamNet(nn.Module):
    """logit(h, w) = w2 . A(h // 2, w // 2) + b2 with A the encoder's stride-2 feature map."""

    def __init__(self, in_channels: int = 3, features: int = 4, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.encoder = PatchEncoder(in_channels, features)
        self.head = nn.Conv2d(features, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.encoder(x)[-1]
        return F.interpolate(self.head(a), scale_factor=2, mode="nearest")


def hand_cam(net: CamNet, x: np.ndarray, plus_plus: bool) -> np.ndarray:
    """CAM of a (K, H, W) window in float64 numpy, from the closed-form score gradient."""
    w1 = net.encoder.conv.weight.detach().double().numpy()
    b1 = net.encoder.conv.bias.detach().double().numpy()
    w2 = net.head.weight.detach().double().numpy()[0, :, 0, 0]
    b2 = float(net.head.bias.detach())
    k, h, w = x.shape
    patches = x.astype(np.float64).reshape(k, h // 2, 2, w // 2, 2)  # c, i, a, j, b
    act = np.einsum("fcab,ciajb->fij", w1, patches) + b1[:, None, None]
    s = sigmoid(np.einsum("f,fij->ij", w2, act) + b2)
    grad = 4.0 * w2[:, None, None] * (s * (1 - s))[None]  # each A(i, j) feeds a 2 x 2 output block
    if plus_plus:
        g2, g3 = grad**2, grad**3
        denom = 2 * g2 + act.sum(axis=(1, 2), keepdims=True) * g3
        alpha = np.where((grad != 0) & (denom != 0), g2 / np.where(denom != 0, denom, 1), 0)
        weights = (alpha * np.maximum(grad, 0)).sum(axis=(1, 2))
    else:
        weights = grad.mean(axis=(1, 2))
    cam = np.maximum(np.einsum("f,fij->ij", weights, act), 0)
    up = F.interpolate(torch.from_numpy(cam)[None, None], size=(h, w), mode="bilinear", align_corners=False)
    return up[0, 0].numpy()


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_matches_the_hand_rolled_cam_differences(method) -> None:
    net = CamNet(seed=3)
    x = random_window(3, 32, 32, seed=1)
    clean = hand_cam(net, x, method == "gradcam++")
    expected = np.empty_like(x, dtype=np.float64)
    for c in range(3):
        occluded = x.copy()
        occluded[c] = x[c].mean()
        expected[c] = np.abs(hand_cam(net, occluded, method == "gradcam++") - clean)
    got = compute_saliency(net, x, method)
    assert got.dtype == np.float32 and got.shape == x.shape and got.max() > 0
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6 * expected.max())


def test_default_layer_is_the_encoder_and_names_or_modules_select_the_same() -> None:
    net = TinyEncoderDecoder(seed=2)
    x = random_window(seed=2)
    default = compute_saliency(net, x, "gradcam")
    np.testing.assert_array_equal(compute_saliency(net, x, "gradcam", target_layer="encoder"), default)
    np.testing.assert_array_equal(compute_saliency(net, x, "gradcam", target_layer=net.encoder), default)
    # the encoder's output list ends with stage 2, so naming that stage is the same layer
    np.testing.assert_allclose(compute_saliency(net, x, "gradcam", target_layer="encoder.stage2"), default,
                               rtol=1e-6)
    shallow = compute_saliency(net, x, "gradcam", target_layer="encoder.stage1.0")
    assert shallow.shape == x.shape and (shallow >= 0).all() and not np.allclose(shallow, default)


def test_layer_followed_by_an_inplace_activation_works() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(4, 1, 3, padding=1))
    got = compute_saliency(net, random_window(seed=3), "gradcam++", target_layer="0")
    assert got.shape == (3, 32, 32) and np.isfinite(got).all()


def test_missing_or_unknown_layers_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"target_layer=.*0, 2"):
        compute_saliency(SmallCNN(), random_window(), "gradcam")
    with pytest.raises(ConfigError, match="no module named 'decoder.9'"):
        compute_saliency(TinyEncoderDecoder(), random_window(), "gradcam", target_layer="decoder.9")
    with pytest.raises(ConfigError, match="batch_size >= 2"):
        compute_saliency(TinyEncoderDecoder(), random_window(), "gradcam", batch_size=1)


def test_hooks_are_removed_and_model_state_restored() -> None:
    net = TinyEncoderDecoder()
    net.train()
    compute_saliency(net, random_window(), "gradcam++")
    assert not any(m._forward_hooks for m in net.modules())
    assert net.training and all(p.requires_grad for p in net.parameters())


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_an_ignored_channel_has_exactly_zero_saliency(method) -> None:
    net = TinyEncoderDecoder(seed=4)
    with torch.no_grad():
        net.encoder.stage1[0].weight[:, 1] = 0.0
    got = compute_saliency(net, random_window(seed=4), method)
    assert not got[1].any() and got[0].any() and got[2].any()


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_reversed_window_gives_reversed_maps_for_a_symmetric_model(method) -> None:
    net = TinyEncoderDecoder(symmetric=True, seed=5)
    x = random_window(seed=5)
    got = compute_saliency(net, x, method)
    flipped = compute_saliency(net, x[::-1].copy(), method)
    assert got.max() > 0
    assert_mirror_close(flipped, got, net)


def test_batch_size_does_not_change_the_result() -> None:
    net, x = TinyEncoderDecoder(seed=6), random_window(seed=6)
    np.testing.assert_allclose(compute_saliency(net, x, "gradcam", batch_size=2),
                               compute_saliency(net, x, "gradcam", batch_size=8), rtol=1e-5, atol=1e-7)
