"""rho on hand-made feature vectors, against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_channelbias.transfer.score import EPSILON, cosine_distance, robustness, triplet_losses


def test_identical_positives_orthogonal_negatives_give_one():
    q = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    neg = np.array([[0.0, 5.0], [1.0, 0.0], [1.0, -1.0]])
    r = robustness(q, q.copy(), neg)
    # d+ = 0, d- = 1: max(0, 0 - 1 + 0.5) = 0 for every window
    assert r.rho == 1.0 and r.se == 0.0 and r.n == 3
    assert r.mean_d_pos == 0.0 and r.mean_d_neg == pytest.approx(1.0)


def test_opposite_positive_and_identical_negative():
    q = np.array([[1.0, 0.0]])
    # d+ = 1 - cos(180 deg) = 2, d- = 0: loss 2 + 0.5 = 2.5, rho = -1.5 (the lower bound)
    r = robustness(q, -q, q.copy())
    assert r.rho == pytest.approx(-1.5)
    assert math.isnan(r.se)  # one window: no standard error


def test_mean_and_standard_error_over_windows():
    q = np.array([[1.0, 0.0], [1.0, 0.0]])
    pos = np.array([[2.0, 0.0], [0.0, 1.0]])  # d+ = 0, 1
    neg = np.array([[0.0, 1.0], [1.0, 0.0]])  # d- = 1, 0
    losses = triplet_losses(q, pos, neg)
    np.testing.assert_allclose(losses, [0.0, 1.5])
    r = robustness(q, pos, neg)
    assert r.rho == pytest.approx(1 - 0.75)
    assert r.se == pytest.approx(np.std([0.0, 1.5], ddof=1) / math.sqrt(2))  # = 0.75


def test_sixty_degrees_positive_with_margin():
    q = np.array([[1.0, 0.0]])
    pos = np.array([[0.5, math.sqrt(3) / 2]])  # cos 60 = 0.5: d+ = 0.5
    neg = np.array([[0.0, 1.0]])  # d- = 1
    assert triplet_losses(q, pos, neg, epsilon=0.5)[0] == pytest.approx(0.0)
    assert triplet_losses(q, pos, neg, epsilon=0.75)[0] == pytest.approx(0.25)
    assert EPSILON == 0.5


def test_scale_invariance_and_zero_vectors():
    rng = np.random.default_rng(0)
    q, pos, neg = (rng.normal(size=(6, 10)) for _ in range(3))
    a = robustness(q, pos, neg)
    b = robustness(3 * q, 0.5 * pos, 7 * neg)
    assert a.rho == pytest.approx(b.rho, abs=1e-12)
    d = cosine_distance(np.zeros((1, 3)), np.ones((1, 3)))
    assert d[0] == 1.0  # a zero vector is at distance 1, not NaN


def test_feature_maps_are_flattened():
    rng = np.random.default_rng(1)
    q, pos, neg = (rng.normal(size=(4, 2, 3, 3)) for _ in range(3))
    assert robustness(q, pos, neg).rho == robustness(q.reshape(4, -1), pos.reshape(4, -1), neg.reshape(4, -1)).rho


def test_bad_shapes():
    with pytest.raises(ValueError, match="differ"):
        cosine_distance(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="at least one"):
        robustness(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 3)))


def test_paired_difference_hand_computed():
    from napari_channelbias.transfer.score import paired_difference

    a = np.array([0.2, 0.4, 0.6])  # rho_a = 0.6
    b = np.array([0.3, 0.6, 0.6])  # rho_b = 0.5
    delta, se = paired_difference(a, b)
    assert delta == pytest.approx(0.1)  # rho_a - rho_b = mean(b - a)
    assert se == pytest.approx(np.std([0.1, 0.2, 0.0], ddof=1) / math.sqrt(3))  # = 0.0577
    assert robustness(np.eye(2), np.eye(2), np.eye(2)[::-1]).losses == (0.0, 0.0)
    with pytest.raises(ValueError, match="equal 1-D"):
        paired_difference(a, b[:2])
