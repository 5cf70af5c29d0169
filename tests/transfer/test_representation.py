"""Candidate encoders and their features f: the second-to-last level, pooled or not, frozen, seeded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_channelbias.models.checkpoints import ModelCard, save_checkpoint
from napari_channelbias.models.factory import build_model
from napari_channelbias.models.spec import ModelSpec
from napari_channelbias.transfer.representation import LEVEL, build_encoder, candidate_spec, encoder_features


@pytest.fixture(scope="module")
def green():
    return build_encoder(ModelSpec(init="uniform-green"))


def _windows(n: int = 3, size: int = 64) -> np.ndarray:
    return np.random.default_rng(0).random((n, 3, size, size), dtype=np.float32)


def test_features_come_from_the_second_to_last_level(green):
    encoder, provenance = green
    w = _windows()
    with torch.no_grad():
        levels = encoder(torch.from_numpy(w))
    expected = levels[LEVEL]
    assert LEVEL == -2 and len(levels) == 6  # input, strides 2, 4, 8, 16, 32
    assert tuple(expected.shape) == (3, 112, 4, 4)  # EfficientNet-Lite0 at stride 16 on 64 px
    unpooled = encoder_features(encoder, w, pooled=False, batch_size=2)
    pooled = encoder_features(encoder, w, pooled=True, batch_size=2)
    assert unpooled.shape == (3, 112 * 16) and pooled.shape == (3, 112)
    # Another batch size may take another conv blocking: float32 rounding through ~20 layers, relative to
    # the features' scale, not bit equality.
    scale = float(expected.abs().max())
    np.testing.assert_allclose(unpooled, expected.flatten(1).numpy(), rtol=0, atol=1e-4 * scale)
    np.testing.assert_allclose(pooled, unpooled.reshape(3, 112, 16).mean(axis=2), rtol=0, atol=1e-5 * scale)
    assert "ImageNet" in provenance["weights_source"]


def test_encoder_is_frozen_in_eval_mode(green):
    encoder, _ = green
    assert not encoder.training
    assert not any(p.requires_grad for p in encoder.parameters())


def test_symmetric_init_features_ignore_z_reversal(green):
    # An untrained uniform-green model is exactly symmetric under z-reversal of its input (DESIGN 2);
    # float sums in another channel order differ by rounding only.
    encoder, _ = green
    w = _windows(2)
    a = encoder_features(encoder, w)
    b = encoder_features(encoder, np.ascontiguousarray(w[:, ::-1]))
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-4 * float(np.abs(a).max()))
    assert not np.allclose(a, encoder_features(encoder, _windows(2)[:, :, ::-1].copy()), atol=1e-2)


def test_random_candidate_is_seeded_and_leaves_the_global_rng_alone():
    spec = ModelSpec(init="random")
    state = torch.get_rng_state()
    a, _ = build_encoder(spec, seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    b, _ = build_encoder(spec, seed=4)
    c, _ = build_encoder(spec, seed=5)
    first = next(iter(a.state_dict()))
    assert torch.equal(a.state_dict()[first], b.state_dict()[first])
    assert not torch.equal(a.state_dict()[first], c.state_dict()[first])


def test_checkpoint_candidate_keeps_its_own_architecture(tmp_path):
    model, provenance = build_model(ModelSpec(arch="deeplabv3plus", encoder="resnet18", init="random", classes=2))
    path = save_checkpoint(tmp_path / "other.pt", model, ModelCard(
        model=provenance["spec"], normalization={"mode": "percentile", "low": 0.5, "high": 99.5, "lo": 0, "hi": 1}))
    spec = candidate_spec(f"checkpoint:{path}", "unet", "efficientnet-lite0", 3)
    assert (spec.arch, spec.encoder, spec.classes, spec.window) == ("deeplabv3plus", "resnet18", 2, 3)
    encoder, prov = build_encoder(spec)
    assert prov["spec"]["init"] == f"checkpoint:{path}"
    trained = model.encoder.state_dict()
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, trained[key])  # the checkpoint's weights, unchanged
    assert candidate_spec("Uniform_Green", "unet", "efficientnet-lite0", 5).init == "uniform-green"
