"""Segmentation metrics on hand-counted confusion matrices, the empty cases, and the summary over slices."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_channelbias.errors import ConfigError, VolumeError
from napari_channelbias.segmentation.metrics import (
    METRIC_NAMES,
    confusion_matrix,
    format_table,
    slice_metrics,
    summarise,
)

# TP at (0,0) and (1,1); FP at (0,1); FN at (1,0); TN at (0,2) and (1,2).
PRED = np.array([[1, 1, 0], [0, 1, 0]], dtype=bool)
TRUTH = np.array([[1, 0, 0], [1, 1, 0]], dtype=bool)


def test_binary_hand_counted():
    m = slice_metrics(PRED, TRUTH)
    assert list(m) == list(METRIC_NAMES)
    assert m == pytest.approx({"dice": 4 / 6, "iou": 2 / 4, "precision": 2 / 3, "recall": 2 / 3,
                               "accuracy": 4 / 6}, rel=1e-12)


def test_binary_integer_labels_equal_boolean_masks():
    assert slice_metrics(PRED.astype(np.uint8), TRUTH.astype(np.int64)) == slice_metrics(PRED, TRUTH)


def test_swapping_prediction_and_truth_swaps_precision_and_recall():
    pred = np.array([[1, 1, 1, 0]], dtype=bool)
    truth = np.array([[1, 0, 0, 0]], dtype=bool)
    a, b = slice_metrics(pred, truth), slice_metrics(truth, pred)
    assert (a["precision"], a["recall"]) == pytest.approx((1 / 3, 1.0))
    assert (b["precision"], b["recall"]) == pytest.approx((1.0, 1 / 3))
    assert a["dice"] == b["dice"] == pytest.approx(0.5) and a["iou"] == pytest.approx(1 / 3)


def test_both_empty_is_perfect():
    empty = np.zeros((4, 4), dtype=bool)
    assert slice_metrics(empty, empty) == dict.fromkeys(METRIC_NAMES, 1.0)


def test_one_side_empty():
    empty, one = np.zeros((2, 2), dtype=bool), np.zeros((2, 2), dtype=bool)
    one[0, 0] = True
    missed = slice_metrics(empty, one)  # nothing predicted, one pixel of truth
    assert missed == {"dice": 0.0, "iou": 0.0, "precision": 0.0, "recall": 0.0, "accuracy": 0.75}
    spurious = slice_metrics(one, empty)  # one pixel predicted, empty truth
    assert spurious == {"dice": 0.0, "iou": 0.0, "precision": 0.0, "recall": 0.0, "accuracy": 0.75}


def test_multiclass_hand_counted_average_over_foreground_classes():
    pred = np.array([[0, 1, 2], [2, 2, 0]])
    truth = np.array([[0, 1, 1], [2, 0, 0]])
    np.testing.assert_array_equal(confusion_matrix(pred, truth, 3), [[2, 0, 1], [0, 1, 1], [0, 0, 1]])
    # class 1: TP 1, FP 0, FN 1; class 2: TP 1, FP 2, FN 0
    expected = {
        "dice": (2 / 3 + 2 / 4) / 2,
        "iou": (1 / 2 + 1 / 3) / 2,
        "precision": (1 + 1 / 3) / 2,
        "recall": (1 / 2 + 1) / 2,
        "accuracy": 4 / 6,
    }
    assert slice_metrics(pred, truth) == pytest.approx(expected, rel=1e-12)
    # a class absent from both images does not enter the average
    assert slice_metrics(pred, truth, num_classes=5) == pytest.approx(expected, rel=1e-12)


def test_multiclass_slice_without_foreground_is_perfect():
    zeros = np.zeros((3, 3), dtype=np.uint8)
    assert slice_metrics(zeros, zeros, num_classes=4) == dict.fromkeys(METRIC_NAMES, 1.0)


@pytest.mark.parametrize(
    ("pred", "truth", "kwargs", "error", "match"),
    [
        (np.zeros((2, 2), bool), np.zeros((2, 3), bool), {}, VolumeError, "shape"),
        (np.zeros((2, 2), np.float32), np.zeros((2, 2), bool), {}, VolumeError, "threshold"),
        (np.full((2, 2), -1), np.zeros((2, 2), int), {}, VolumeError, "negative"),
        (np.full((2, 2), 3), np.zeros((2, 2), int), {"num_classes": 2}, VolumeError, "num_classes"),
        (np.zeros((2, 2), bool), np.zeros((2, 2), bool), {"num_classes": 1}, ConfigError, "at least 2"),
    ],
)
def test_bad_inputs_raise_clear_errors(pred, truth, kwargs, error, match):
    with pytest.raises(error, match=match):
        slice_metrics(pred, truth, **kwargs)


def test_summarise_mean_and_standard_error():
    rows = [{"dice": 0.5, "iou": 0.1}, {"dice": 0.7, "iou": 0.2}, {"dice": 0.9, "iou": 0.3}]
    s = summarise(rows)
    assert s["dice"]["mean"] == pytest.approx(0.7)
    assert s["dice"]["se"] == pytest.approx(0.2 / math.sqrt(3))  # std (ddof=1) is 0.2
    assert s["iou"]["se"] == pytest.approx(0.1 / math.sqrt(3)) and s["iou"]["n"] == 3


def test_summarise_single_slice_and_errors():
    s = summarise([slice_metrics(PRED, TRUTH)])
    assert math.isnan(s["dice"]["se"]) and s["dice"]["n"] == 1
    with pytest.raises(ValueError, match="at least one"):
        summarise([])
    with pytest.raises(ValueError, match="missing"):
        summarise([{"dice": 1.0}, {"iou": 1.0}])


def test_format_table():
    table = format_table(summarise([slice_metrics(PRED, TRUTH), slice_metrics(TRUTH, TRUTH)]))
    lines = table.splitlines()
    assert lines[0].split() == ["metric", "mean", "se", "n"]
    assert lines[1].split() == ["dice", "0.8333", "0.1667", "2"]
    assert len(lines) == 1 + len(METRIC_NAMES)
    assert "n/a" in format_table(summarise([slice_metrics(PRED, TRUTH)]))
