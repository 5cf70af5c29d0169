"""Review order, coverage curve and correlations on hand-made series."""

from __future__ import annotations

import math

import pytest

from napari_channelbias.quality.coverage import correlations, coverage_curve, ranks_of, review_order


def test_review_order_puts_missing_first_then_lowest_mu():
    order = review_order({0: 0.9, 1: None, 2: 0.2, 3: 0.5, 4: float("nan")}, {1: "B is empty"})
    assert [(i.rank, i.z) for i in order] == [(1, 1), (2, 4), (3, 2), (4, 3), (5, 0)]
    assert order[0].reason == "B is empty" and order[0].mu is None
    assert ranks_of(order, [0, 2]) == {0: 5, 2: 3}


def test_coverage_curve_by_hand():
    mu = {0: 0.9, 1: 0.1, 2: 0.5, 3: None}
    dice = {0: 0.8, 1: 0.2, 2: 0.6, 3: 0.4, 4: None}  # slice 4: undefined Dice, left out
    curve = coverage_curve(mu, dice)
    assert curve.n == 4 and curve.excluded == 1
    kept = [(p.kept, p.fraction) for p in curve.points]
    assert kept == [(4, 1.0), (3, 0.75), (2, 0.5), (1, 0.25)]
    # Reject the missing mu (slice 3) first, then slice 1 (mu 0.1), then slice 2.
    means = [p.dice_mean for p in curve.points]
    assert means == pytest.approx([0.5, (0.8 + 0.2 + 0.6) / 3, 0.7, 0.8])
    assert [p.oracle_mean for p in curve.points] == pytest.approx([0.5, (0.8 + 0.6 + 0.4) / 3, 0.7, 0.8])
    assert curve.points[2].dice_se == pytest.approx(0.1)  # std(0.8, 0.6) = 0.1414 (ddof 1), / sqrt 2
    assert math.isnan(curve.points[3].dice_se)
    assert curve.at(0.5).kept == 2 and curve.at(0.9).kept == 4 and curve.at(0.7).kept == 3


def test_correlations_by_hand():
    mu = {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0}
    assert correlations(mu, {0: 2.0, 1: 4.0, 2: 6.0, 3: 8.0}) == {"n": 4, "pearson": pytest.approx(1.0),
                                                                 "spearman": pytest.approx(1.0)}
    # Monotone but not linear: Spearman 1, Pearson below 1 (closed form for these values).
    r = correlations(mu, {0: 1.0, 1: 2.0, 2: 3.0, 3: 100.0})
    assert r["spearman"] == pytest.approx(1.0) and r["pearson"] < 0.9
    # Ties get average ranks: ranks of (1, 1, 2) are (1.5, 1.5, 3).
    r = correlations({0: 1.0, 1: 1.0, 2: 2.0}, {0: 3.0, 1: 2.0, 2: 1.0})
    assert r["spearman"] == pytest.approx(-math.sqrt(3) / 2)
    assert r["n"] == 3


def test_correlations_with_too_few_or_constant_values_are_nan():
    assert math.isnan(correlations({0: 0.5, 1: None}, {0: 0.5, 1: 0.4})["pearson"])
    assert math.isnan(correlations({0: 0.5, 1: 0.5, 2: 0.5}, {0: 0.1, 1: 0.2, 2: 0.3})["pearson"])
