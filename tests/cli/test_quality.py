"""``channelbias quality`` end to end on the sample volume with a tiny model."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from napari_channelbias.cli.main import main


@pytest.fixture(scope="module")
def qdir(tmp_path_factory):
    """The sample (membranes as 0/1 labels) and two tiny random-init checkpoints."""
    import torch

    from napari_channelbias.io.write import write_volume
    from napari_channelbias.models.checkpoints import ModelCard, save_checkpoint
    from napari_channelbias.models.factory import build_model
    from napari_channelbias.models.spec import ModelSpec
    from napari_channelbias.sample_data import make_sample
    from napari_channelbias.windowing import Normalizer

    d = tmp_path_factory.mktemp("quality")
    image, labels = make_sample((6, 64, 64), seed=0)
    write_volume(d / "image.tif", image)
    write_volume(d / "labels.tif", (labels == 1).astype(np.uint8))
    for seed, init in ((0, "random"), (1, "random")):
        torch.manual_seed(seed)
        spec = ModelSpec(arch="unet", encoder="resnet18", init=init)
        model, prov = build_model(spec)
        with torch.no_grad():  # a bias that makes the untrained model predict some foreground
            model.segmentation_head[0].bias.fill_(0.0)
        card = ModelCard(model=prov["spec"], normalization=Normalizer.fit(image).to_dict(), name=f"m{seed}")
        save_checkpoint(d / f"m{seed}.pt", model, card)
    return d


def test_quality_writes_tables_json_and_figures(qdir, capsys):
    out = qdir / "q"
    code = main(["quality", "--checkpoint", str(qdir / "m0.pt"), "--compare", str(qdir / "m1.pt"),
                 "--image", str(qdir / "image.tif"), "--labels", str(qdir / "labels.tif"), "--out", str(out),
                 "--layers", "--ablation", "--slices", "1:5", "--device", "cpu", "--quiet"])
    assert code == 0
    text = capsys.readouterr().out
    assert "m0: mu" in text and "m1: mu" in text and "Spearman" in text
    for name in ("mu.csv", "review.csv", "layers.csv", "inputs.csv", "coverage.csv", "ablation.csv",
                 "quality.json", "mu.png", "layers.png", "coverage.png", "ablation.png"):
        assert (out / name).exists(), name
    rows = list(csv.DictReader(open(out / "mu.csv", encoding="utf-8")))
    assert {(r["model"], int(r["z"])) for r in rows} == {(m, z) for m in ("m0", "m1") for z in range(1, 5)}
    data = json.loads((out / "quality.json").read_text(encoding="utf-8"))
    s = data["summary"]["m0"]
    assert s["slices"] == 4 and s["correlation"]["n"] <= 4
    assert s["last_two"] == ["decoder.block5.conv1", "decoder.block5"]
    assert {r["layer"] for r in s["layers"]} >= {"encoder.stage1", "decoder.block5"}
    assert len(s["ablation"]["saliency_shares_full_output"]) == 3
    assert set(s["coverage"]) == {"100%", "90%", "70%", "50%"}
    ranks = sorted(r["rank"] for r in data["models"]["m0"]["review"])
    assert ranks == [1, 2, 3, 4]
    # mu in the table is the per-slice value of the JSON (one source for both).
    by_z = {sl["z"]: sl["mu"] for sl in data["models"]["m0"]["slices"]}
    for r in rows:
        if r["model"] == "m0" and r["mu"]:
            assert float(r["mu"]) == pytest.approx(by_z[int(r["z"])])


def test_label_free_run_prints_json(qdir, capsys):
    out = qdir / "q2"
    assert main(["quality", "--checkpoint", str(qdir / "m0.pt"), "--image", str(qdir / "image.tif"),
                 "--out", str(out), "--device", "cpu", "--quiet", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["m0"]["slices"] == 6 and "correlation" not in summary["m0"]
    assert (out / "mu.png").exists() and not (out / "coverage.png").exists()


def test_unknown_layer_is_a_one_line_error(qdir, capsys):
    code = main(["quality", "--checkpoint", str(qdir / "m0.pt"), "--image", str(qdir / "image.tif"),
                 "--out", str(qdir / "q3"), "--layers", "decoder.nope", "--device", "cpu", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("channelbias: error: unknown layer 'decoder.nope'")


def test_no_inputs_skips_the_input_table_and_a_bad_foreground_is_a_one_line_error(qdir, capsys):
    out = qdir / "q4"
    assert main(["quality", "--checkpoint", str(qdir / "m0.pt"), "--image", str(qdir / "image.tif"),
                 "--labels", str(qdir / "labels.tif"), "--slices", "2:4", "--no-inputs", "--out", str(out),
                 "--device", "cpu", "--quiet"]) == 0
    assert (out / "mu.csv").exists() and not (out / "inputs.csv").exists()
    data = json.loads((out / "quality.json").read_text(encoding="utf-8"))
    assert data["summary"]["m0"]["inputs"] == [] and data["models"]["m0"]["slices"][0]["inputs"] == {}
    capsys.readouterr()
    code = main(["quality", "--checkpoint", str(qdir / "m0.pt"), "--image", str(qdir / "image.tif"),
                 "--labels", str(qdir / "labels.tif"), "--foreground", "all", "--out", str(qdir / "q5"),
                 "--device", "cpu", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "foreground must be 'any'" in err[0]
