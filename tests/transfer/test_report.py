"""A ranking written as table, CSV, JSON and PNG."""

from __future__ import annotations

import csv
import json

import pytest

from napari_channelbias.transfer.ranking import CandidateScore, RankResult, rank
from napari_channelbias.transfer.report import format_table, write_ranking


def _result() -> RankResult:
    scores = [
        CandidateScore("imagenet", 0.55, 0.02, 8, 0.10, 0.15, False),
        CandidateScore("uniform-green", 0.61, 0.01, 8, 0.08, 0.19, False),
        CandidateScore("random", 0.70, 0.01, 8, 0.01, 0.21, True),
    ]
    return RankResult(scores=rank(scores), config={"pooled": False, "patch_size": 64, "window": 3,
                                                   "epsilon": 0.5, "seed": 0},
                      sample={"n": 8}, augmentation={"brightness": [0.6, 1.4]})


def test_table_marks_the_best_pretrained_and_sets_random_apart():
    lines = format_table(_result()).splitlines()
    best = [line for line in lines if "best pretrained" in line]
    assert len(best) == 1 and "uniform-green" in best[0] and best[0].lstrip().startswith("1")
    apart = [line for line in lines if line.lstrip().startswith("apart")]
    assert len(apart) == 1 and "random" in apart[0] and "0.7000" in apart[0]
    assert any("never ranked best" in line for line in lines)
    assert "unpooled features, eps = 0.5" in lines[-1]


def test_files_are_written(tmp_path):
    paths = write_ranking(_result(), tmp_path / "out")
    assert set(paths) == {"table", "csv", "json", "figure"}
    with open(paths["csv"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["init"] for r in rows] == ["uniform-green", "imagenet", "random"]
    assert [r["rank"] for r in rows] == ["1", "2", "apart"] and rows[0]["best"] == "True"
    data = json.loads(paths["json"].read_text())
    assert data["best"] == "uniform-green" and "warning" in data
    assert RankResult.from_dict(data).best == "uniform-green"
    assert paths["figure"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "out").glob("*.tmp-*"))


def test_study_rows_get_rho_and_the_section_reports_spearman_and_tis():
    from napari_channelbias.transfer.report import add_robustness_columns, study_section

    scores = [CandidateScore(i, r, 0.01, 8, 0.1, 0.2, i == "random")
              for i, r in (("imagenet", 0.50), ("uniform-green", 0.60), ("mirror", 0.55), ("random", 0.9))]
    result = RankResult(scores=rank(scores), config={"pooled": False, "epsilon": 0.5, "seed": 0},
                        sample={"n": 8}, augmentation={})
    seg = [{"init": i, "dice": d} for i, d in (("imagenet", 0.80), ("uniform-green", 0.78), ("mirror", 0.79),
                                                 ("random", 0.60), ("checkpoint:x.pt", 0.7))]
    asym = [{"init": "imagenet", "method": "full-output", "swd_pooled": 3.0}]
    add_robustness_columns(seg, result)
    assert seg[1]["rho"] == 0.60 and seg[1]["rho_se"] == 0.01
    assert seg[4]["rho"] != seg[4]["rho"]  # not scored: NaN, not 0
    text = "\n".join(study_section(result, seg, asym, ["full-output"]))
    assert "| imagenet | 0.5000 ± 0.0100 | 0.8000 | 3.0000 |" in text
    assert "| random | 0.9000 ± 0.0100 (random, apart) | 0.6000 | n/a |" in text
    # pretrained only: rho 0.50 0.60 0.55 vs Dice 0.80 0.78 0.79 -> ranks reversed: Spearman -1
    assert "Spearman(rho, Dice) = -1.000" in text
    assert f"= {0.78 / 0.80:.4f}." in text  # TIS: Dice of uniform-green (top rho) / best Dice (imagenet)
    few = "\n".join(study_section(result, seg[:2], asym, ["full-output"]))
    assert "need at least three pretrained arms; this study has 2" in few


def test_table_gives_the_paired_difference_to_the_best():
    scores = [
        CandidateScore("imagenet", 0.6, 0.05, 3, 0.1, 0.2, False, losses=[0.2, 0.4, 0.6]),
        CandidateScore("mirror", 0.5, 0.05, 3, 0.1, 0.2, False, losses=[0.3, 0.6, 0.6]),
    ]
    result = RankResult(scores=rank(scores), config={}, sample={"n": 3}, augmentation={})
    delta, se = result.versus_best("mirror")
    assert delta == pytest.approx(-0.1) and se == pytest.approx(0.0577, abs=1e-4)
    mirror = [line for line in format_table(result).splitlines() if "mirror" in line][0]
    assert "-0.1000 ± 0.0577" in mirror
    assert result.rows()[1]["delta_best"] == pytest.approx(-0.1) and result.rows()[0]["delta_best"] == 0.0
