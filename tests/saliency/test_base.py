"""Shared saliency parts: model state, target probability, the tile crop and the foreground mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_channelbias.errors import ConfigError
from napari_channelbias.saliency.base import (
    as_input,
    channel_means,
    forward_probability,
    frozen_eval,
    resolve_target,
    target_probability,
)
from saliency_models import SmallCNN, TinyEncoderDecoder


def test_frozen_eval_restores_mixed_training_flags_and_requires_grad() -> None:
    model = TinyEncoderDecoder()
    model.train()
    model.decoder[1].eval()  # a frozen batch-norm inside a training model
    model.head.weight.requires_grad_(False)
    before_modes = [m.training for m in model.modules()]
    before_grads = [p.requires_grad for p in model.parameters()]
    with frozen_eval(model):
        assert not any(m.training for m in model.modules())
        assert not any(p.requires_grad for p in model.parameters())
    assert [m.training for m in model.modules()] == before_modes
    assert [p.requires_grad for p in model.parameters()] == before_grads


def test_frozen_eval_restores_state_after_an_error() -> None:
    model = SmallCNN()
    with pytest.raises(RuntimeError), frozen_eval(model):
        raise RuntimeError("boom")
    assert model.training and all(p.requires_grad for p in model.parameters())


def test_default_targets_and_invalid_targets() -> None:
    assert resolve_target(1, None) == 0
    assert resolve_target(3, None) == 1
    assert resolve_target(3, 2) == 2
    with pytest.raises(ConfigError, match="valid targets: 0..2"):
        resolve_target(3, 3)
    with pytest.raises(ConfigError, match="single output channel"):
        resolve_target(1, 1)


def test_target_probability_is_sigmoid_for_one_channel_and_softmax_otherwise() -> None:
    logits = torch.tensor([[[[0.0, 2.0]]]])
    assert torch.allclose(target_probability(logits, None), torch.sigmoid(logits[:, 0]))
    multi = torch.tensor([[[[1.0]], [[2.0]], [[0.5]]]])
    expected = torch.exp(multi[:, 2]) / torch.exp(multi).sum(dim=1)
    assert torch.allclose(target_probability(multi, 2), expected)


def test_forward_probability_crops_the_padding() -> None:
    x = as_input(np.zeros((3, 40, 50), np.float32), torch.device("cpu"))
    assert x.shape == (1, 3, 40, 50)
    with torch.no_grad():
        assert forward_probability(SmallCNN().eval(), x, None).shape == (1, 40, 50)


def test_as_input_takes_reversed_views_and_other_dtypes() -> None:
    window = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4)
    x = as_input(window[::-1], torch.device("cpu"))
    assert x.dtype == torch.float32 and torch.equal(x[0], torch.from_numpy(window[::-1].copy()).float())


def test_as_input_rejects_wrong_rank() -> None:
    with pytest.raises(ValueError, match=r"\(K, H, W\)"):
        as_input(np.zeros((1, 3, 8, 8), np.float32), torch.device("cpu"))


def test_channel_means() -> None:
    x = torch.arange(2 * 2 * 2, dtype=torch.float32).view(1, 2, 2, 2)
    assert torch.equal(channel_means(x), torch.tensor([1.5, 5.5]))


