"""Spearman correlation and the transferability indicator score, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_channelbias.transfer.agreement import average_ranks, spearman, transferability_indicator_score


def test_average_ranks_with_ties():
    np.testing.assert_array_equal(average_ranks([10, 30, 20, 30]), [1, 3.5, 2, 3.5])
    np.testing.assert_array_equal(average_ranks([5, 5, 5]), [2, 2, 2])


def test_spearman_hand_computed():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks x = 1 2 3 4, y = 2 1 4 3: d = -1 1 -1 1, sum d^2 = 4: 1 - 6*4 / (4 * 15) = 0.6
    assert spearman([0.1, 0.2, 0.3, 0.4], [2.0, 1.0, 4.0, 3.0]) == pytest.approx(0.6)
    # invariant to monotone transforms
    assert spearman([1, 5, 2, 9], [3, 1, 2, 8]) == pytest.approx(spearman(np.log([1, 5, 2, 9]), [3, 1, 2, 8]))


def test_spearman_undefined_cases():
    assert math.isnan(spearman([1, 2], [1, 2]))
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="paired"):
        spearman([1, 2, 3], [1, 2])


def test_tis():
    rho = {"imagenet": 0.52, "uniform-green": 0.58, "mirror": 0.50}
    dice = {"imagenet": 0.80, "uniform-green": 0.76, "mirror": 0.79}
    assert transferability_indicator_score(rho, dice) == pytest.approx(0.76 / 0.80)
    assert transferability_indicator_score({"a": 1.0, "b": 1.0}, {"a": 0.5, "b": 1.0}) == pytest.approx(0.5)
    assert transferability_indicator_score({"x": 1.0, "a": 0.0}, {"a": 0.7}) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no common"):
        transferability_indicator_score({"a": 1.0}, {"b": 1.0})
