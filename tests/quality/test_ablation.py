"""Channel ablation with pointwise models whose drops are known exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from napari_channelbias.errors import ConfigError
from napari_channelbias.quality.ablation import ablate, channel_ablation

SETTINGS = {"window": 3}


def linear(weights, bias=0.0) -> nn.Module:
    conv = nn.Conv2d(3, 1, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(weights, dtype=torch.float32).view(1, 3, 1, 1))
        conv.bias.fill_(bias)
    return conv.eval()


def test_ablate_replaces_one_channel():
    w = np.arange(3 * 2 * 2, dtype=np.float32).reshape(3, 2, 2)
    m = ablate(w, 0, "mean")
    assert m[0].tolist() == [[1.5, 1.5], [1.5, 1.5]] and np.array_equal(m[1:], w[1:])
    c = ablate(w, 2, "centre")
    assert np.array_equal(c[2], w[1]) and np.array_equal(w[2], np.arange(8, 12).reshape(2, 2))
    with pytest.raises(ConfigError, match="mean, centre"):
        ablate(w, 0, "zero")


def test_a_channel_the_model_ignores_costs_nothing():
    rng = np.random.default_rng(0)
    volume = rng.normal(size=(4, 24, 24)).astype(np.float32)
    labels = (volume > 0).astype(np.uint8)
    model = linear([0.0, 4.0, 0.0])  # looks at the centre slice only
    result = channel_ablation(model, SETTINGS, volume, labels, device="cpu")
    s = result.summary()
    for c in (0, 2):
        for mode in ("mean", "centre"):
            assert s[mode][c]["prob_drop"]["mean"] == 0.0
            assert s[mode][c]["dice_drop"]["mean"] == 0.0
            assert s[mode][c]["change"]["mean"] == 0.0
    assert s["mean"][1]["dice_drop"]["mean"] > 0.3  # without its only input the model is lost
    assert s["mean"][1]["dice_drop"]["n"] == 4
    # The centre copy of the centre channel is the identity: missing, with the reason, never 0.
    row = next(r for r in result.rows if r["mode"] == "centre" and r["channel"] == 1)
    assert row["dice_drop"] is None and "unchanged" in row["reason"]
    assert math.isnan(s["centre"][1]["dice_drop"]["mean"])
    assert result.shares("mean", "dice_drop") == [0.0, 1.0, 0.0]


def test_mirror_symmetric_model_has_mirror_symmetric_drops_on_a_mirrored_volume():
    rng = np.random.default_rng(1)
    half = rng.normal(size=(24, 24)).astype(np.float32)
    other = rng.normal(size=(24, 24)).astype(np.float32)
    volume = np.stack([half, other, half])  # z-1 and z+1 of slice 1 are equal
    model = linear([1.0, 0.5, 1.0], bias=-0.2)
    result = channel_ablation(model, SETTINGS, volume, slices=[1], device="cpu")
    s = result.summary()
    # Equal in exact arithmetic; the convolution adds the three float32 terms in another order when the
    # other side is ablated, so sums of ~600 probabilities agree to float32 rounding (relative 1e-6).
    assert s["mean"][0]["prob_drop"]["mean"] == pytest.approx(s["mean"][2]["prob_drop"]["mean"], rel=1e-5)
    assert s["mean"][0]["change"]["mean"] == pytest.approx(s["mean"][2]["change"]["mean"], abs=1e-9)
    assert math.isnan(s["mean"][0]["dice_drop"]["mean"])  # no labels: no Dice drop, never a fake 0
