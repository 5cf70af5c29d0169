"""The foreground of a binary model: parsed once, applied the same way to numpy and torch labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_channelbias.errors import ConfigError, VolumeError
from napari_channelbias.segmentation.labels import binary_target, check_labels, parse_foreground

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
