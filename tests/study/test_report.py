"""The study report: tables from hand-made arm results (one seed and several), files and figures."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from napari_channelbias.asymmetry.volume import VolumeAsymmetry
from napari_channelbias.study.report import asymmetry_rows, fmt, mean_se, segmentation_rows, write_report
from napari_channelbias.study.run import ArmResult

METRICS = ("dice", "iou", "precision", "recall", "accuracy")


def seg(dice_mean, dice_se=0.01):
    return {"summary": {m: {"mean": dice_mean if m == "dice" else 0.9, "se": dice_se, "n": 3} for m in METRICS}}


def asym(seed, scale):
    """A real accumulator over two slices whose channel 2 is ``scale`` times channel 0."""
    rng = np.random.default_rng(seed)
    acc = VolumeAsymmetry(window=3)
    for z in (0, 1):
        base = rng.random((16, 16)).astype(np.float32)
        acc.add(z, np.stack([base, base, scale * base]))
    return acc, acc.result().to_dict()


def test_mean_se_and_format():
    assert mean_se([1.0, 3.0]) == (2.0, pytest.approx(1.0))
    mean, se = mean_se([5.0])
    assert mean == 5.0 and math.isnan(se)
    assert fmt(0.5, 0.01) == "0.5000 ± 0.0100"
    assert fmt(0.5, math.nan) == "0.5000"


def test_one_seed_uses_slice_statistics_and_several_seeds_use_seed_means():
    arms = [ArmResult("imagenet", 0, "a.pt", seg(0.70, 0.02), {}),
            ArmResult("imagenet", 1, "b.pt", seg(0.80, 0.02), {}),
            ArmResult("uniform-green", 0, "c.pt", seg(0.75, 0.03), {})]
    rows = {r["init"]: r for r in segmentation_rows(arms)}
    assert rows["imagenet"]["seeds"] == 2
    assert rows["imagenet"]["dice"] == pytest.approx(0.75)
    assert rows["imagenet"]["dice_se"] == pytest.approx(0.05)  # std([0.7, 0.8], ddof=1) / sqrt(2)
    assert rows["uniform-green"]["dice"] == 0.75 and rows["uniform-green"]["dice_se"] == 0.03


def test_asymmetric_arm_has_larger_swd_and_report_files(tmp_path):
    acc_i, res_i = asym(0, 2.0)
    acc_u, res_u = asym(0, 1.0)
    arms = [ArmResult("imagenet", 0, "a.pt", seg(0.7), {"full-output": res_i}),
            ArmResult("uniform-green", 0, "b.pt", seg(0.7), {"full-output": res_u})]
    rows = {r["init"]: r for r in asymmetry_rows(arms, ["full-output"])}
    assert rows["uniform-green"]["swd_pooled"] == pytest.approx(0.0, abs=1e-2)  # channels 0 and 2 equal
    assert rows["imagenet"]["swd_pooled"] > 1.0
    assert rows["imagenet"]["share_2"] == pytest.approx(0.5, abs=1e-3)  # 2 / (1 + 1 + 2)
    config = SimpleNamespace(image="img.tif", labels="lab.tif", spec={"arch": "unet", "encoder": "e", "window": 3},
                             seeds=[0], training={"steps": 1}, methods=["full-output"])
    report = write_report(tmp_path, config, arms, {"imagenet": {"full-output": acc_i},
                                                   "uniform-green": {"full-output": acc_u}}, range(0, 2))
    text = report.read_text()
    assert "full-output: SWd(uniform-green) is 0 (exactly symmetric)" in text
    for name in ("segmentation.csv", "asymmetry.csv", "asymmetry_per_slice.csv", "results.json",
                 "figures/channel_shares.png", "figures/swd_per_slice.png", "figures/cdf_channel0_vs_last.png"):
        assert (tmp_path / name).stat().st_size > 0
