"""The online ProtoSeg loss: a hand-computed value, gradients, and a training run that uses it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from napari_channelbias.quality.online import OnlineProtoSeg, soft_sa_loss


def test_soft_loss_by_hand_for_features_equal_to_the_truth():
    g = torch.zeros(1, 4, 4, dtype=torch.int64)
    g[0, :, :1] = 1  # 4 foreground pixels, 12 background
    f = g.float()[:, None]
    # Prototypes 1 and 0; softmax of -d^2 gives p_t = 1 / (1 + e^-1) on the foreground, 1 / (1 + e) elsewhere.
    pf, pb = 1 / (1 + math.exp(-1)), 1 / (1 + math.e)
    expected = 1 - 2 * 4 * pf / (4 * pf + 12 * pb + 4)
    assert float(soft_sa_loss(f, g)) == pytest.approx(expected, rel=1e-6)


def test_patches_without_two_classes_are_skipped():
    f = torch.randn(2, 3, 4, 4)
    assert soft_sa_loss(f, torch.zeros(2, 4, 4, dtype=torch.int64)) is None
    assert soft_sa_loss(f, torch.ones(2, 4, 4, dtype=torch.int64)) is None


def test_loss_reaches_the_weights_of_the_hooked_layers():
    from napari_channelbias.models.factory import build_model
    from napari_channelbias.models.spec import ModelSpec

    model, _ = build_model(ModelSpec(arch="unet", encoder="resnet18", init="random"))
    g = torch.from_numpy((np.random.default_rng(0).random((2, 64, 64)) > 0.5).astype(np.int64))
    with OnlineProtoSeg(model, "last2") as online:
        model(torch.randn(2, 3, 64, 64))
        loss = online.loss(g)
    loss.backward()
    assert 0 < float(loss.detach()) < 1
    assert model.decoder.blocks[-1].conv1[0].weight.grad.abs().sum() > 0
    assert model.segmentation_head[0].weight.grad is None  # the head is after the hooked layers


def test_training_with_the_protoseg_term_changes_the_loss(tmp_path):
    from napari_channelbias.events import TrainStep
    from napari_channelbias.models.spec import ModelSpec
    from napari_channelbias.sample_data import make_sample
    from napari_channelbias.segmentation.training import TrainConfig, train_events

    image, labels = make_sample((8, 64, 64), seed=0)
    labels = (labels == 1).astype(np.uint8)
    spec = ModelSpec(arch="unet", encoder="resnet18", init="random")
    first = {}
    for lam in (0.0, 1.0):
        config = TrainConfig(steps=1, batch_size=2, patch_size=64, val_slices="none", device="cpu",
                             protoseg_loss=lam)
        steps = [e for e in train_events(image, labels, spec, config, tmp_path / f"m{lam}.pt")
                 if isinstance(e, TrainStep)]
        first[lam] = steps[0].loss
    assert first[1.0] > first[0.0]  # the same batch and weights; the ProtoSeg term adds a positive loss
