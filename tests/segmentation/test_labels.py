"""The foreground of a binary model: parsed once, applied the same way to numpy and torch labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_channelbias.errors import ConfigError, VolumeError
from napari_channelbias.models.checkpoints import ModelCard
from napari_channelbias.models.inputs import InputSettings
from napari_channelbias.segmentation.labels import (
    binary_target,
    card_foreground,
    check_labels,
    foreground_probability,
    output_labels,
    parse_foreground,
)

INSTANCES = np.array([[0, 1, 2], [3, 0, 7]], np.uint16)


@pytest.mark.parametrize(("value", "parsed"), [(None, None), ("any", "any"), (" ANY ", "any"), ("3", 3), (0, 0),
                                               (np.int64(7), 7)])
def test_parse_foreground_accepts_what_users_type(value, parsed):
    assert parse_foreground(value) == parsed


@pytest.mark.parametrize("value", ["all", "-1", -1, 1.5, True, "x3"])
def test_parse_foreground_refuses_anything_else_naming_the_choices(value):
    with pytest.raises(ConfigError, match="'any'.*a label value >= 0.*unset"):
        parse_foreground(value)


def test_binary_target_by_hand_for_numpy_and_torch():
    expected = {"any": [[0, 1, 1], [1, 0, 1]], 7: [[0, 0, 0], [0, 0, 1]], None: [[0, 1, 0], [0, 0, 0]]}
    for foreground, mask in expected.items():
        np.testing.assert_array_equal(binary_target(INSTANCES, foreground), np.array(mask, bool))
        got = binary_target(torch.from_numpy(INSTANCES.astype(np.int64)), foreground)
        assert got.dtype == torch.bool and got.tolist() == np.array(mask, bool).tolist()


def test_check_labels_refuses_instances_for_a_binary_model_and_ignores_the_setting_for_multiclass():
    labels = np.stack([INSTANCES] * 3)
    with pytest.raises(VolumeError, match="--foreground any"):
        check_labels(labels, labels.shape, 1, None)
    check_labels(labels, labels.shape, 1, "any")
    check_labels(labels, labels.shape, 1, "7")
    with pytest.raises(VolumeError, match="outside 0..2"):
        check_labels(labels, labels.shape, 3, "any")  # a multi-class model reads class indices
    check_labels(labels % 3, labels.shape, 3, "any")


def _card(training):
    return ModelCard(model={"arch": "unet", "encoder": "resnet18", "init": "random", "window": 3, "classes": 1},
                     normalization={"mode": "none"}, training=training)


def test_card_foreground_reads_the_training_setting_unless_overridden():
    assert card_foreground(_card({"foreground": "any"})) == "any"
    assert card_foreground(_card({"foreground": "3"})) == 3  # parsed, as a user would have typed it
    assert card_foreground(_card({"foreground": 3}), "any") == "any"  # labels encoded differently
    assert card_foreground(_card({})) is None  # trained on 0/1 labels
    assert card_foreground(InputSettings(window=3)) is None  # no card: nothing was chosen
    assert card_foreground({"window": 3}, "7") == 7
    with pytest.raises(ConfigError, match="'any'"):
        card_foreground(_card({"foreground": "all"}))


def test_output_labels_threshold_one_channel_at_one_half_and_take_the_argmax_of_several():
    binary = np.array([[[0.2, 0.5, 0.51]]], np.float32)  # (1, 1, 3); exactly 0.5 is background
    assert output_labels(binary).tolist() == [[0, 0, 1]] and output_labels(binary).dtype == np.int64
    multi = np.array([[[0.7, 0.1]], [[0.2, 0.3]], [[0.1, 0.6]]], np.float32)  # (3, 1, 2)
    assert output_labels(multi, np.uint8).tolist() == [[0, 2]] and output_labels(multi, np.uint8).dtype == np.uint8


def test_foreground_probability_sums_p_or_everything_but_the_background():
    assert foreground_probability(np.array([[[0.25, 0.5]]], np.float32)) == pytest.approx(0.75)
    multi = np.array([[[0.7, 0.1]], [[0.2, 0.3]], [[0.1, 0.6]]], np.float32)
    assert foreground_probability(multi) == pytest.approx(0.3 + 0.9)
