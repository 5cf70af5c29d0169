"""The study report: tables from hand-made arm results (one seed and several), files and figures."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.colors import to_hex

from napari_channelbias.asymmetry.figures import MODEL_COLORS, channel_labels
from napari_channelbias.asymmetry.volume import VolumeAsymmetry
from napari_channelbias.study import report
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


def test_report_figures_are_the_shared_figures_with_one_colour_per_init(tmp_path, monkeypatch):
    """The report draws with asymmetry.figures: an init has the same colour in every panel, as in the GUI."""
    drawn = {}

    def keep(figure, path, dpi=150):
        drawn[path.name] = figure
        return path

    monkeypatch.setattr(report, "save_figure", keep)  # keep the drawn figure instead of its PNG
    acc_i, res_i = asym(0, 2.0)
    acc_u, res_u = asym(0, 1.0)
    arms = [ArmResult("imagenet", 0, "a.pt", seg(0.7), {"full-output": res_i}),
            ArmResult("uniform-green", 0, "b.pt", seg(0.7), {"full-output": res_u})]
    rows = asymmetry_rows(arms, ["full-output"])
    report.figure_shares(rows, ["full-output"], 3, tmp_path / "shares.png")
    report.figure_swd_series(arms, ["full-output"], tmp_path / "swd.png")
    report.figure_cdfs({"imagenet": {"full-output": acc_i}, "uniform-green": {"full-output": acc_u}},
                       ["full-output"], 3, tmp_path / "cdf.png")

    [shares] = drawn["shares.png"].axes
    assert [to_hex(p.get_facecolor()).upper() for p in shares.patches] == [MODEL_COLORS[0]] * 3 + [MODEL_COLORS[1]] * 3
    assert [t.get_text() for t in shares.get_xticklabels()] == channel_labels(3)
    assert [round(p.get_height(), 3) for p in shares.patches[:3]] == [0.25, 0.25, 0.5]
    [swd] = drawn["swd.png"].axes
    assert [(ln.get_label(), ln.get_color()) for ln in swd.get_lines()] == [
        ("imagenet", MODEL_COLORS[0]), ("uniform-green", MODEL_COLORS[1])]
    assert list(swd.get_lines()[0].get_xdata()) == [0, 1]
    cdf_i, cdf_u = drawn["cdf.png"].axes
    assert [ln.get_label() for ln in cdf_i.get_lines()] == ["imagenet z-1", "imagenet z+1"]
    assert {ln.get_color() for ln in cdf_i.get_lines()} == {MODEL_COLORS[0]}
    assert {ln.get_color() for ln in cdf_u.get_lines()} == {MODEL_COLORS[1]}
    assert "W1(c0, c2)" in cdf_i.get_title()


def test_ablation_table_sits_beside_the_saliency_shares(tmp_path):
    from napari_channelbias.quality.ablation import AblationResult

    def ablation(drops):  # one slice; the mean-mode Dice and probability drops per channel
        result = AblationResult(3)
        for c, d in enumerate(drops):
            result.rows.append({"z": 0, "mode": "mean", "channel": c, "offset": c - 1, "dice_drop": d,
                                "prob_drop": d, "change": d})
            result.rows.append({"z": 0, "mode": "centre", "channel": c, "offset": c - 1,
                                "dice_drop": None if c == 1 else d / 2, "prob_drop": None, "change": None})
        return result.to_dict()

    acc_i, res_i = asym(0, 2.0)
    acc_u, res_u = asym(0, 1.0)
    arms = [ArmResult("imagenet", 0, "a.pt", seg(0.7), {"full-output": res_i}),
            ArmResult("uniform-green", 0, "b.pt", seg(0.7), {"full-output": res_u})]
    arms[0].ablation, arms[1].ablation = ablation([0.1, 0.3, 0.2]), ablation([0.1, 0.3, 0.1])
    rows = report.ablation_rows(arms, asymmetry_rows(arms, ["full-output"]), ["full-output"], 3)
    by = {(r["init"], r["channel"]): r for r in rows}
    assert by[("imagenet", 2)]["mean_dice_drop"] == 0.2
    assert by[("imagenet", 2)]["ablation_share"] == pytest.approx(0.2 / 0.6)
    assert by[("imagenet", 2)]["share_full-output"] == pytest.approx(0.5, abs=1e-3)
    assert math.isnan(by[("uniform-green", 1)]["centre_dice_drop"])  # the centre copy of the centre: n/a
    config = SimpleNamespace(image="img.tif", labels="lab.tif", spec={"arch": "unet", "encoder": "e", "window": 3},
                             seeds=[0], training={"steps": 1}, methods=["full-output"])
    text = write_report(tmp_path, config, arms, {"imagenet": {"full-output": acc_i},
                                                 "uniform-green": {"full-output": acc_u}}, range(0, 2)).read_text()
    assert "## Channel ablation" in text and (tmp_path / "ablation.csv").stat().st_size > 0
