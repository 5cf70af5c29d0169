"""mu per slice, per-layer and input scores, streamed over a volume; missing where B is empty."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from napari_channelbias.errors import VolumeError
from napari_channelbias.events import SliceDone
from napari_channelbias.models.checkpoints import ModelCard
from napari_channelbias.models.factory import build_model
from napari_channelbias.models.spec import ModelSpec
from napari_channelbias.quality.layers import LayerSpec, layer_catalog
from napari_channelbias.quality.slice_quality import quality_events, slice_quality

SETTINGS = {"window": 3}  # no normalisation: the windows are the raw values


class CentreThreshold(nn.Module):
    """logit = 8 (x_centre - 0.5), passing x_centre through a named identity: B = [x_centre > 0.5]."""

    def __init__(self) -> None:
        super().__init__()
        self.centre = nn.Identity()
        self.copy = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.copy(self.centre(x[:, 1:2]))
        return 8.0 * (c - 0.5)


def _threshold_catalog(model):
    return layer_catalog(model, [LayerSpec("centre", "centre"), LayerSpec("copy", "copy")])


def test_features_that_are_the_mask_give_mu_one_and_an_empty_slice_is_missing():
    rng = np.random.default_rng(0)
    volume = (rng.random((4, 32, 32)) > 0.5).astype(np.float32)
    volume[2] = 0.0  # nothing to segment: B is empty there
    labels = volume.astype(np.uint8)
    model = CentreThreshold()
    events = []
    gen = quality_events(model, SETTINGS, volume, labels, layers="all", catalog=_threshold_catalog(model),
                         device="cpu")
    try:
        while True:
            events.append(next(gen))
    except StopIteration as stop:
        result = stop.value
    assert [e.z for e in events] == [0, 1, 2, 3] and all(isinstance(e, SliceDone) for e in events)
    assert [e.done for e in events] == [1, 2, 3, 4] and events[0].task == "quality"
    by_z = {s.z: s for s in result.slices}
    for z in (0, 1, 3):
        s = by_z[z]
        assert s.mu == 1.0 and s.reason is None and s.units == 2
        assert s.dice == 1.0
        assert s.layers["centre"]["truth"]["whole"] == 1.0
        assert s.inputs["c1"]["output"]["whole"] == 1.0  # the centre input channel is the mask itself
    empty = by_z[2]
    assert empty.mu is None and "empty" in empty.reason
    assert empty.layers["centre"]["output"]["whole"] is None
    assert result.mu()[2] is None


def test_real_unet_scores_every_layer_and_input_channel():
    from napari_channelbias.sample_data import make_sample

    image, labels = make_sample((3, 64, 64), seed=0)
    model, _ = build_model(ModelSpec(arch="unet", encoder="resnet18", init="random"))
    result = slice_quality(model, SETTINGS, image.astype(np.float32) / 255.0, (labels == 1).astype(np.uint8),
                           layers="all", sam_layers=["decoder.block5", "input"], device="cpu")
    assert result.last_two == ("decoder.block5.conv1", "decoder.block5")
    s = result.slices[0]
    assert set(s.layers) == set(result.layers) and len(result.layers) == 11
    assert set(s.inputs) == {"c0", "c1", "c2", "joint"}
    if s.reason is None:
        assert 0.0 <= s.mu <= 1.0 and s.units == 32
        assert s.sams["decoder.block5"].shape == (64, 64) and s.sams["input"].dtype == np.uint8
    else:  # an untrained model may predict nothing: then the score is missing, never 0 or 1
        assert s.mu is None and s.sams == {}


def test_the_truth_follows_the_foreground_the_card_was_trained_with_or_the_override():
    volume = np.zeros((3, 16, 16), np.float32)
    volume[:, 4:12, 4:12] = 1.0  # B = the centre square on every slice
    labels = np.zeros((3, 16, 16), np.uint8)
    labels[:, 4:12, 4:12] = 2  # the square is class 2; class 5 marks a stripe the model does not predict
    labels[:, 0, :] = 5
    model = CentreThreshold()
    card = ModelCard(model={"arch": "unet", "encoder": "resnet18", "init": "random", "window": 3, "classes": 1},
                     normalization={"mode": "none"}, training={"foreground": 2})
    run = {"catalog": _threshold_catalog(model), "inputs": False, "device": "cpu"}
    as_trained = slice_quality(model, card, volume, labels, **run)
    assert [s.dice for s in as_trained.slices] == [1.0, 1.0, 1.0]  # truth = labels == 2: the square
    every = slice_quality(model, card, volume, labels, foreground="any", **run)
    assert every.slices[0].dice == pytest.approx(2 * 64 / (64 + 64 + 16))  # truth = square + stripe
    with pytest.raises(VolumeError, match="--foreground"):  # bare settings: 0/1 labels required, as in training
        slice_quality(model, SETTINGS, volume, labels, **run)
    with pytest.raises(VolumeError, match="no voxel of the labels has the foreground value 7"):
        slice_quality(model, card, volume, labels, foreground=7, **run)


def test_labels_of_another_shape_are_refused():
    model = CentreThreshold()
    gen = quality_events(model, SETTINGS, np.zeros((3, 16, 16), np.float32), np.zeros((3, 8, 8), np.uint8),
                         catalog=_threshold_catalog(model), device="cpu")
    with pytest.raises(VolumeError):
        next(gen)


class CentreClasses(nn.Module):
    """Three outputs: logit_k = -8 (x_centre - k)^2, so the argmax is the centre value 0, 1 or 2."""

    def __init__(self) -> None:
        super().__init__()
        self.centre = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.centre(x[:, 1:2])
        return torch.cat([-8.0 * (c - k) ** 2 for k in range(3)], dim=1)


def test_a_multiclass_model_reads_the_labels_as_class_indices():
    volume = np.zeros((3, 16, 16), np.float32)
    volume[:, :8, :8] = 1.0
    volume[:, 8:, 8:] = 2.0
    labels = volume.astype(np.uint8)
    labels[:, 8:, 8:12] = 0  # half of class 2 is background in the truth
    model = CentreClasses()
    catalog = layer_catalog(model, [LayerSpec("centre", "centre"), LayerSpec("copy", "centre")])
    result = slice_quality(model, SETTINGS, volume, labels, catalog=catalog, inputs=False, device="cpu",
                           foreground="any")  # ignored: the model has classes
    # Dice per class (1: 1.0; 2: 2 * 32 / (64 + 32)), averaged over the classes present.
    assert result.slices[0].dice == pytest.approx((1.0 + 64 / 96) / 2)
    assert result.slices[0].foreground == pytest.approx(128 / 256)
    with pytest.raises(VolumeError, match="outside 0..2"):
        slice_quality(model, SETTINGS, volume, labels + 1, catalog=catalog, inputs=False, device="cpu")
