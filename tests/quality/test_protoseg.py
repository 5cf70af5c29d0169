"""ProtoSeg on tiny arrays: hand-computed prototypes and probabilities, exact properties, missing cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from napari_channelbias.quality import protoseg
from napari_channelbias.quality.protoseg import (
    class_weights,
    dice,
    layer_scores,
    mask_problem,
    prototypes,
    sam,
    slice_probabilities,
    unit_dice,
)


def t(x, dtype=torch.float32):
    return torch.as_tensor(np.asarray(x), dtype=dtype)


def test_prototypes_and_probability_by_hand():
    f = t([[[0.0, 1.0], [2.0, 3.0]]])  # one channel, 2 x 2
    b = t([[0, 0], [1, 1]], torch.int64)
    w = class_weights(b, 2, (2, 2))
    protos = prototypes(f, w)
    assert protos[:, 0].tolist() == [0.5, 2.5]  # c_b = mean(0, 1), c_t = mean(2, 3)
    p = slice_probabilities(f, b)
    # position of value 1: d_b^2 = 0.25, d_t^2 = 2.25 -> p_t = e^-2.25 / (e^-0.25 + e^-2.25) = 1 / (1 + e^2)
    assert float(p[1, 0, 1]) == pytest.approx(1 / (1 + math.e**2), rel=1e-6)
    assert float(p[0, 0, 1] + p[1, 0, 1]) == pytest.approx(1.0)
    assert sam(f, b).tolist() == [[0, 0], [1, 1]]


def test_soft_mask_at_lower_resolution_weighs_by_area():
    b = t([[1, 1, 0, 0], [1, 0, 0, 0]], torch.int64)  # left 2x2 block has 3 of 4 foreground pixels
    w = class_weights(b, 2, (1, 2))
    assert w[1].tolist() == [[0.75, 0.0]]
    assert w[0].tolist() == [[0.25, 1.0]]
    f = t([[[4.0, 8.0]]])
    protos = prototypes(f, w)
    assert float(protos[1, 0]) == pytest.approx(4.0)  # only the left feature pixel carries foreground
    assert float(protos[0, 0]) == pytest.approx((0.25 * 4 + 8) / 1.25)


def test_feature_equal_to_the_mask_gives_the_mask_and_dice_one():
    rng = np.random.default_rng(0)
    b = t(rng.random((16, 20)) > 0.6, torch.int64)
    f = b.float()[None].repeat(3, 1, 1)
    assert torch.equal(sam(f, b), b)
    scores = layer_scores(f, b, {"output": b})["output"]
    assert scores.whole == 1.0 and scores.reason is None
    assert scores.units.tolist() == [1.0, 1.0, 1.0]


def test_block_mask_survives_downsampling_exactly():
    b = torch.zeros(8, 8, dtype=torch.int64)
    b[2:6, 4:8] = 1  # aligned with 2 x 2 blocks
    f = torch.nn.functional.avg_pool2d(b.float()[None, None], 2)[0]
    assert torch.equal(sam(f, b), b)


def test_swapping_foreground_and_background_swaps_the_sam():
    rng = np.random.default_rng(1)
    f = t(rng.normal(size=(4, 12, 12)))
    b = t(rng.random((12, 12)) > 0.5, torch.int64)
    assert torch.equal(sam(f, 1 - b), 1 - sam(f, b))


def test_translation_and_scaling_of_features_do_not_change_the_sam():
    rng = np.random.default_rng(2)
    f = t(rng.normal(size=(5, 10, 10)))
    b = t(rng.random((10, 10)) > 0.4, torch.int64)
    # Exact in real numbers; the softmax of scaled distances may round a near-tie differently, so the
    # features are scaled by a power of two (exact in floating point) and shifted by a representable value.
    assert torch.equal(sam(4.0 * f + 0.5, b), sam(f, b))


@pytest.mark.parametrize("mask, word", [(np.zeros((6, 6)), "empty"), (np.ones((6, 6)), "full")])
def test_empty_or_full_mask_is_missing_with_a_reason(mask, word):
    b = t(mask, torch.int64)
    f = t(np.random.default_rng(0).normal(size=(2, 6, 6)))
    assert word in mask_problem(b)
    scores = layer_scores(f, b, {"output": b, "truth": b})
    for s in scores.values():
        assert s.whole is None and s.units is None and word in s.reason
    with pytest.raises(ValueError, match=word):
        sam(f, b)


def test_dice_is_missing_when_both_are_empty():
    z = torch.zeros(3, 3, dtype=torch.int64)
    assert dice(z, z) is None
    one = z.clone()
    one[0, 0] = 1
    assert dice(one, z) == 0.0 and dice(one, one) == 1.0


def test_multiclass_one_prototype_per_class():
    labels = t([[0, 0, 1, 1], [0, 2, 2, 1], [2, 2, 0, 0]], torch.int64)
    f = torch.nn.functional.one_hot(labels, 3).permute(2, 0, 1).float()
    assert torch.equal(sam(f, labels, classes=3), labels)
    assert dice(labels, labels, classes=3) == 1.0
    assert "one class" in mask_problem(torch.ones(3, 3, dtype=torch.int64), classes=3)


def test_per_unit_scores_by_hand_and_chunking(monkeypatch):
    b = t([[0, 1, 1, 0]], torch.int64)
    f = t([[[0.0, 1.0, 1.0, 0.0]],    # separates B exactly
           [[5.0, 5.0, 5.0, 5.0]],    # constant: both prototypes equal, every tie goes to background
           [[1.0, 0.0, 0.0, 1.0]]])   # the inverse: still separates (prototypes swap places)
    whole = unit_dice(f, b, [b])[0]
    assert whole.tolist() == [1.0, 0.0, 1.0]
    monkeypatch.setattr(protoseg, "_CHUNK_VALUES", 1)  # one unit per chunk
    assert unit_dice(f, b, [b])[0].tolist() == whole.tolist()


def test_gradients_flow_through_the_probability_map():
    f = torch.randn(3, 6, 6, requires_grad=True)
    b = (torch.arange(36).reshape(6, 6) % 3 == 0).long()
    p = slice_probabilities(f, b)
    p[1].sum().backward()
    assert f.grad is not None and float(f.grad.abs().sum()) > 0


@pytest.mark.slow
def test_isbi_intensities_separate_their_own_membranes_better_than_a_neighbours(isbi_dir):
    """Input separableness on real EM: slice z's intensities segment z's membranes (ProtoSeg on the
    intensities, prototypes from the truth) better than the next slice's intensities do (~50 nm away,
    the membranes have moved)."""
    from napari_channelbias.io.read import open_volume

    image = np.asarray(open_volume(isbi_dir / "train-volume.tif"))[20:24].astype(np.float32) / 255.0
    truth = np.asarray(open_volume(isbi_dir / "train-membranes.tif"))[20:24]
    for z in (1, 2):
        g = t(truth[z], torch.int64)
        own = layer_scores(t(image[z])[None], g, {"truth": g}, per_unit=False)["truth"].whole
        nxt = layer_scores(t(image[z + 1])[None], g, {"truth": g}, per_unit=False)["truth"].whole
        assert own > nxt + 0.1, (z, own, nxt)
