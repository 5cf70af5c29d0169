"""``channelbias rank-inits`` end to end on the embedded sample, tiny settings."""

from __future__ import annotations

import json

import pytest

from napari_channelbias.cli.main import main


@pytest.fixture(scope="module")
def sample_tif(tmp_path_factory):
    d = tmp_path_factory.mktemp("rank")
    assert main(["sample", "--out", str(d), "--shape", "6,128,128"]) == 0
    return d / "sample-image.tif"


def test_rank_inits_end_to_end(sample_tif, tmp_path, capsys):
    out = tmp_path / "ranked"
    args = ["rank-inits", "--image", str(sample_tif), "--out", str(out), "--inits", "imagenet,mirror,random",
            "--windows", "4", "--patch-size", "64", "--threads", "1", "--device", "cpu", "--quiet"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "best pretrained" in text and "apart" in text and "rank-inits.png" in text
    for name in ("rank-inits.txt", "rank-inits.csv", "rank-inits.json", "rank-inits.png"):
        assert (out / name).is_file()
    data = json.loads((out / "rank-inits.json").read_text())
    assert {s["init"] for s in data["scores"]} == {"imagenet", "mirror", "random"}
    assert data["best"] in {"imagenet", "mirror"} and data["config"]["windows"] == 4
    assert main([*args, "--pooled", "--out", str(tmp_path / "pooled")]) == 0
    pooled = json.loads((tmp_path / "pooled" / "rank-inits.json").read_text())
    assert pooled["config"]["pooled"] is True
    assert [s["rho"] for s in pooled["scores"]] != [s["rho"] for s in data["scores"]]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--inits", "vgg"], "unknown init 'vgg'"),
        (["--patch-size", "50"], "multiple of 32"),
        (["--windows", "1"], "at least 2 windows"),
        (["--checkpoint-init", "/no/such.pt"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_error(sample_tif, tmp_path, capsys, extra, message):
    args = ["rank-inits", "--image", str(sample_tif), "--out", str(tmp_path), "--quiet", "--inits", "imagenet"]
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("channelbias: error:") and message in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_study_with_rank_inits_adds_the_column(tmp_path, capsys):
    import csv

    import tifffile

    d = tmp_path / "data"
    assert main(["sample", "--out", str(d), "--shape", "12,64,64"]) == 0
    labels = tifffile.imread(d / "sample-labels.tif")
    tifffile.imwrite(d / "membranes.tif", (labels == 1).astype("uint8"))  # binary 0/1 labels
    out = tmp_path / "study"
    code = main(["study", "--image", str(d / "sample-image.tif"), "--labels", str(d / "membranes.tif"),
                 "--out", str(out), "--inits", "imagenet,random", "--methods", "full-output",
                 "--steps", "2", "--batch-size", "2", "--patch-size", "64", "--device", "cpu", "--rank-inits",
                 "--quiet"])
    assert code == 0, capsys.readouterr().err
    report = (out / "report.md").read_text()
    assert "## Robustness of each init before training" in report and "(random, apart)" in report
    with open(out / "segmentation.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["init"] for r in rows} == {"imagenet", "random"}
    assert all(float(r["rho"]) == float(r["rho"]) and r["rho_se"] for r in rows)
    results = json.loads((out / "results.json").read_text())
    assert {s["init"] for s in results["robustness"]["scores"]} == {"imagenet", "random"}
