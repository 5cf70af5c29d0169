"""Evaluation = prediction + per-slice metrics; checked with a model whose output is known exactly."""

import numpy as np
import pytest
import torch

from napari_channelbias.errors import VolumeError
from napari_channelbias.events import run_to_end
from napari_channelbias.models.checkpoints import ModelCard
from napari_channelbias.segmentation.evaluation import evaluate_events


def threshold_model() -> torch.nn.Module:
    """logits = 100 * (centre channel - 0.5): predicts foreground exactly where the centre slice is 1."""
    conv = torch.nn.Conv2d(3, 1, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([0.0, 100.0, 0.0]).view(1, 3, 1, 1))
        conv.bias.fill_(-50.0)
    return conv


def card() -> ModelCard:
    spec = {"arch": "unet", "encoder": "resnet18", "init": "random", "window": 3, "classes": 1}
    return ModelCard(model=spec, normalization={"mode": "none"})


@pytest.fixture
def volume():
    rng = np.random.default_rng(1)
    return (rng.random((5, 40, 48)) > 0.7).astype(np.uint8)


def test_perfect_and_inverted_labels(volume):
    perfect = run_to_end(evaluate_events(threshold_model(), card(), volume, volume, device="cpu"))
    assert set(perfect["per_slice"]) == set(range(5))
    assert perfect["summary"]["dice"]["mean"] == pytest.approx(1.0)
    assert perfect["summary"]["accuracy"]["mean"] == pytest.approx(1.0)
    inverted = run_to_end(evaluate_events(threshold_model(), card(), volume, 1 - volume, device="cpu"))
    assert inverted["summary"]["dice"]["mean"] == pytest.approx(0.0)
    assert inverted["summary"]["accuracy"]["mean"] == pytest.approx(0.0)


def test_hand_counted_slice_and_slice_range(volume):
    labels = volume.copy()
    labels[2, :10] = 0  # remove some true foreground on slice 2: those become false positives
    fp = int(volume[2, :10].sum())
    tp = int(volume[2].sum()) - fp
    out = run_to_end(evaluate_events(threshold_model(), card(), volume, labels, slices="1:3", device="cpu"))
    assert sorted(out["per_slice"]) == [1, 2]
    assert out["per_slice"][2]["dice"] == pytest.approx(2 * tp / (2 * tp + fp))
    assert out["per_slice"][2]["precision"] == pytest.approx(tp / (tp + fp))
    assert out["per_slice"][1]["dice"] == pytest.approx(1.0)


def test_label_shape_mismatch_is_a_clear_error(volume):
    with pytest.raises(VolumeError, match="shape"):
        run_to_end(evaluate_events(threshold_model(), card(), volume, volume[:, :20], device="cpu"))
