"""Validation during training: the scored slices and region are bounded, small volumes are scored whole."""

from __future__ import annotations

import numpy as np
import torch

from napari_channelbias.io.synthetic import CountingVolume
from napari_channelbias.segmentation.training import TrainConfig
from napari_channelbias.segmentation.validation import VAL_MAX_PIXELS, ValidationPlan, validate, validation_plan
from napari_channelbias.windowing import Normalizer


def test_small_blocks_are_validated_whole() -> None:
    plan = validation_plan(list(range(25, 30)), (512, 512))
    assert plan == ValidationPlan([25, 26, 27, 28, 29], None)
    assert plan.describe() == {"val_region": None}
    assert validation_plan([], (512, 512)).slices == []


def test_a_long_block_keeps_evenly_spaced_slices_within_the_budget() -> None:
    block = list(range(1000, 1750))  # 15 % of a 5000-slice stack of 1024 x 1024
    plan = validation_plan(block, (1024, 1024))
    assert len(plan.slices) == VAL_MAX_PIXELS // (1024 * 1024) == 32
    assert plan.slices[0] == 1000 and plan.slices[-1] == 1749 and plan.region is None
    gaps = np.diff(plan.slices)
    assert gaps.min() >= 24 and gaps.max() <= 25  # 749 / 31 = 24.2


def test_huge_slices_get_one_slice_and_a_centred_region() -> None:
    plan = validation_plan(list(range(100)), (16384, 16384), max_pixels=1 << 24)
    assert plan.slices == [0]
    (ys, xs) = plan.region
    assert (ys.stop - ys.start, xs.stop - xs.start) == (4096, 4096)
    assert (ys.start, xs.start) == (6144, 6144)  # centred: (16384 - 4096) / 2
    assert plan.describe() == {"val_region": [[6144, 10240], [6144, 10240]]}
    # A thin slice keeps its full (small) height and a width that fills the budget.
    (ys, xs) = validation_plan([0], (100, 1_000_000), max_pixels=10_000).region
    assert (ys.stop - ys.start, xs.stop - xs.start) == (100, 100)


def test_validate_reads_only_the_planned_region() -> None:
    image = CountingVolume((5, 4096, 4096))
    labels = CountingVolume((5, 4096, 4096), values=lambda z, y, x: (x > 2048) + 0 * (y + z))
    plan = validation_plan([3, 4], (4096, 4096), max_pixels=64 * 64)
    model = torch.nn.Conv2d(3, 1, 1)
    cfg = TrainConfig(val_tile=64, device="cpu")
    summary = validate(model, image, labels, plan, cfg, 3, Normalizer(mode="none"), 1, torch.device("cpu"))
    assert plan.slices == [3] and summary["dice"]["n"] == 1
    assert {pixels for _, pixels in image.reads + labels.reads} == {64 * 64}
    assert {z for z, _ in image.reads} == {2, 3, 4} and {z for z, _ in labels.reads} == {3}
