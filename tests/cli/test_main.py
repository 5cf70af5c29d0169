"""The `channelbias` command end to end: real files, real (tiny) models, one-line errors with exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_channelbias.cli.main import build_parser, main

SUBCOMMANDS = ("sample", "presets", "train", "predict", "evaluate", "info", "saliency", "asymmetry", "study", "gui")


def test_help_and_registries_answer_without_importing_torch():
    """`--help` is instant: the parser's choices come from the torch-free registries."""
    code = (
        "import sys, contextlib, io\n"
        "from napari_channelbias.models import spec\n"
        "from napari_channelbias.saliency import registry\n"
        "from napari_channelbias import windowing\n"
        "from napari_channelbias.cli.main import main\n"
        "for argv in ([\"--help\"], [\"train\", \"--help\"], [\"saliency\", \"--help\"]):\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "        main(argv)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'segmentation_models_pytorch')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_choices_come_from_the_registries(capsys):
    from napari_channelbias.models.spec import list_architectures, list_encoders, valid_init_names
    from napari_channelbias.saliency.registry import method_names
    from napari_channelbias.windowing import NORMALIZATION_MODES, PADDINGS

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    train_help = " ".join(capsys.readouterr().out.split())
    for name in (*list_architectures(), *list_encoders(), *valid_init_names(), *PADDINGS, *NORMALIZATION_MODES):
        assert name in train_help, name
    with pytest.raises(SystemExit):
        main(["saliency", "--help"])
    saliency_help = " ".join(capsys.readouterr().out.split())
    assert all(name in saliency_help for name in method_names())
    with pytest.raises(SystemExit) as exc:
        main(["saliency", "--checkpoint", "x.pt", "--image", "x.tif", "--method", "gradient", "--out", "x.zarr"])
    assert exc.value.code == 2 and "invalid choice: 'gradient'" in capsys.readouterr().err


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: channelbias " + command in capsys.readouterr().out


def test_parser_lists_all_subcommands():
    text = build_parser().format_help()
    for command in SUBCOMMANDS:
        assert command in text


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_sample_writes_tiffs(tmp_path, capsys):
    assert main(["sample", "--out", str(tmp_path), "--shape", "6,64,64"]) == 0
    image = tifffile.imread(tmp_path / "sample-image.tif")
    labels = tifffile.imread(tmp_path / "sample-labels.tif")
    assert image.shape == labels.shape == (6, 64, 64)
    assert set(np.unique(labels)) <= {0, 1, 2}


def test_presets_lists_offline_preset(capsys):
    assert main(["presets"]) == 0
    assert "unet-lite0-uniform-green" in capsys.readouterr().out


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("channelbias: error: ")
    return err[0]


def test_missing_image_is_one_line_error(tmp_path, capsys):
    code = main(["train", "--image", str(tmp_path / "nope.tif"), "--labels", str(tmp_path / "l.tif"),
                 "--out", str(tmp_path / "m.pt"), "--quiet"])
    assert code == 2
    assert "nope.tif" in one_line_error(capsys)


def test_two_d_image_is_one_line_error(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "flat.tif", np.zeros((64, 64), np.uint8))
    code = main(["train", "--image", str(tmp_path / "flat.tif"), "--labels", str(tmp_path / "flat.tif"),
                 "--out", str(tmp_path / "m.pt"), "--quiet"])
    assert code == 2
    assert "2-D" in one_line_error(capsys)


def test_unknown_preset_lists_valid_ones(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "v.tif", np.zeros((5, 64, 64), np.uint8))
    code = main(["train", "--image", str(tmp_path / "v.tif"), "--labels", str(tmp_path / "v.tif"),
                 "--out", str(tmp_path / "m.pt"), "--preset", "nonsense", "--quiet"])
    assert code == 2
    assert "unet-lite0-imagenet" in one_line_error(capsys)


def test_corrupt_checkpoint_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    assert main(["info", str(bad)]) == 2
    assert "bad.pt" in one_line_error(capsys)


def test_console_script_exit_code(tmp_path):
    """The installed entry point exits non-zero with the message on stderr (a real process)."""
    proc = subprocess.run([sys.executable, "-m", "napari_channelbias.cli", "info", str(tmp_path / "x.pt")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("channelbias: error:")
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The sample written by the CLI plus a tiny model trained by the CLI, shared by the tests below."""
    d = tmp_path_factory.mktemp("cli")
    assert main(["sample", "--out", str(d), "--shape", "8,64,64"]) == 0
    code = main(["train", "--image", str(d / "sample-image.tif"), "--labels", str(d / "sample-labels.tif"),
                 "--out", str(d / "m.pt"), "--arch", "unet", "--encoder", "resnet18", "--init", "random",
                 "--steps", "4", "--batch-size", "2", "--patch-size", "64", "--val-every", "2", "--quiet",
                 "--device", "cpu", "--foreground", "1"])  # the sample's membranes: labels 0/1/2
    assert code == 0
    return d


def test_train_writes_best_and_last_checkpoints(workdir):
    assert (workdir / "m.pt").exists()
    assert (workdir / "m.last.pt").exists()


def test_info_prints_the_model_card(workdir, capsys):
    assert main(["info", str(workdir / "m.pt"), "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["model"]["encoder"] == "resnet18"
    assert card["model"]["init"] == "random"
    assert card["training"]["steps"] == 4


@pytest.mark.parametrize("ext", [".tif", ".zarr"])
def test_predict_and_evaluate_round_trip(workdir, ext, capsys):
    from napari_channelbias.io.read import open_volume

    out = workdir / f"pred{ext}"
    assert main(["predict", "--checkpoint", str(workdir / "m.pt"), "--image", str(workdir / "sample-image.tif"),
                 "--out", str(out), "--slices", "2:6", "--probabilities", "--quiet", "--device", "cpu"]) == 0
    masks = np.asarray(open_volume(out))
    assert masks.shape == (4, 64, 64) and set(np.unique(masks)) <= {0, 1}
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(workdir / "m.pt"), "--image", str(workdir / "sample-image.tif"),
                 "--labels", str(workdir / "sample-labels.tif"), "--slices", "2:6", "--json", "--quiet",
                 "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["summary"]["dice"]["n"] == 4
    # The evaluation scores exactly what predict wrote: recompute Dice of the written masks by hand.
    truth = tifffile.imread(workdir / "sample-labels.tif")[2:6] == 1
    pred = masks.astype(bool)
    dice = [2 * (p & t).sum() / (p.sum() + t.sum()) if (p.sum() + t.sum()) else 1.0
            for p, t in zip(pred, truth, strict=True)]
    assert result["summary"]["dice"]["mean"] == pytest.approx(float(np.mean(dice)), abs=1e-6)


def test_saliency_then_asymmetry_from_file(workdir, capsys):
    from napari_channelbias.asymmetry.metrics import slice_asymmetry
    from napari_channelbias.io.read import open_volume

    sal = workdir / "sal.zarr"
    assert main(["saliency", "--checkpoint", str(workdir / "m.pt"), "--image", str(workdir / "sample-image.tif"),
                 "--method", "full-output", "--slices", "3:5", "--out", str(sal), "--quiet", "--device", "cpu"]) == 0
    maps = np.asarray(open_volume(sal))
    assert maps.shape == (2, 3, 64, 64) and maps.dtype == np.float32
    capsys.readouterr()
    csv_path = workdir / "metrics.csv"
    assert main(["asymmetry", "--saliency", str(sal), "--json", "--per-slice", "--out", str(csv_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["n_slices"] == 2
    assert data["series"][0]["swd"] == pytest.approx(slice_asymmetry(maps[0]).swd, rel=1e-6)
    assert csv_path.read_text().startswith("scope,z,")


def test_asymmetry_on_the_fly_matches_file(workdir, capsys):
    assert main(["asymmetry", "--checkpoint", str(workdir / "m.pt"), "--image", str(workdir / "sample-image.tif"),
                 "--method", "full-output", "--slices", "3:5", "--json", "--quiet", "--device", "cpu"]) == 0
    fly = json.loads(capsys.readouterr().out)
    assert main(["asymmetry", "--saliency", str(workdir / "sal.zarr"), "--json"]) == 0
    stored = json.loads(capsys.readouterr().out)
    assert fly["pooled"]["swd"] == pytest.approx(stored["pooled"]["swd"], rel=1e-5)


def test_asymmetry_needs_image_and_method_with_checkpoint(workdir, capsys):
    assert main(["asymmetry", "--checkpoint", str(workdir / "m.pt")]) == 2
    assert "--image" in one_line_error(capsys)


def test_study_writes_report_tables_and_figures(workdir, capsys):
    out = workdir / "study"
    code = main(["study", "--image", str(workdir / "sample-image.tif"), "--labels", str(workdir / "sample-labels.tif"),
                 "--out", str(out), "--inits", "imagenet,uniform-green", "--methods", "full-output",
                 "--steps", "2", "--batch-size", "2", "--patch-size", "64", "--test-slices", "6:8", "--quiet",
                 "--device", "cpu", "--foreground", "1"])
    assert code == 0
    report = (out / "report.md").read_text()
    assert "| imagenet | full-output |" in report and "| uniform-green |" in report
    for name in ("segmentation.csv", "asymmetry.csv", "asymmetry_per_slice.csv", "results.json",
                 "figures/channel_shares.png", "figures/swd_per_slice.png", "figures/cdf_channel0_vs_last.png"):
        assert (out / name).stat().st_size > 0, name
    assert len(list((out / "checkpoints").glob("*.pt"))) >= 2
    results = json.loads((out / "results.json").read_text())
    ug = next(a for a in results["arms"] if a["init"] == "uniform-green")
    # A barely trained Uniform-Green model is still almost exactly symmetric.
    imagenet = next(a for a in results["arms"] if a["init"] == "imagenet")
    assert ug["asymmetry"]["full-output"]["pooled"]["swd"] < imagenet["asymmetry"]["full-output"]["pooled"]["swd"]


def test_train_prints_a_readable_summary(workdir, tmp_path, capsys):
    capsys.readouterr()
    code = main(["train", "--image", str(workdir / "sample-image.tif"), "--labels", str(workdir / "sample-labels.tif"),
                 "--out", str(tmp_path / "s.pt"), "--arch", "unet", "--encoder", "resnet18", "--init", "random",
                 "--steps", "2", "--batch-size", "2", "--patch-size", "64", "--quiet", "--device", "cpu",
                 "--foreground", "1"])
    assert code == 0
    out = capsys.readouterr().out
    assert "trained 2 steps" in out
    assert "best validation Dice 0." in out  # a number, not "n/a"
    assert f"checkpoint: {tmp_path / 's.pt'} (best)" in out


TINY = ["--arch", "unet", "--encoder", "resnet18", "--init", "random", "--steps", "2", "--batch-size", "2",
        "--patch-size", "64", "--val-slices", "none", "--quiet", "--device", "cpu"]


def test_instance_labels_for_a_binary_model_are_refused_naming_the_fix(workdir, tmp_path, capsys):
    instances = tifffile.imread(workdir / "sample-labels.tif").astype(np.uint16)
    instances[instances == 2] = 7  # objects 1 and 7 on background 0, like instance labels 0..N
    tifffile.imwrite(tmp_path / "instances.tif", instances)
    args = ["train", "--image", str(workdir / "sample-image.tif"), "--labels", str(tmp_path / "instances.tif"),
            "--out", str(tmp_path / "i.pt"), *TINY]
    assert main(args) == 2
    error = one_line_error(capsys)
    assert "found 0, 1, 7" in error and "--foreground any" in error and "--foreground 7" in error
    assert not (tmp_path / "i.pt").exists()
    assert main([*args, "--foreground", "any"]) == 0
    capsys.readouterr()
    assert main(["info", str(tmp_path / "i.pt"), "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["training"]["foreground"] == "any"
    assert main([*args, "--foreground", "all"]) == 2
    assert "foreground must be 'any'" in one_line_error(capsys)


def test_evaluate_counts_slices_along_the_models_axis(workdir, tmp_path, capsys):
    """A model trained along axis 2 of an (8, 64, 40) volume: --slices 30:40 is valid (40 slices there)."""
    image = tifffile.imread(workdir / "sample-image.tif")[:, :, :40]
    labels = (tifffile.imread(workdir / "sample-labels.tif")[:, :, :40] == 1).astype(np.uint8)
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lab.tif", labels)
    assert main(["train", "--image", str(tmp_path / "img.tif"), "--labels", str(tmp_path / "lab.tif"),
                 "--out", str(tmp_path / "ax.pt"), "--axis", "2", *TINY]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(tmp_path / "ax.pt"), "--image", str(tmp_path / "img.tif"),
                 "--labels", str(tmp_path / "lab.tif"), "--slices", "30:40", "--json", "--quiet",
                 "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert sorted(int(z) for z in result["per_slice"]) == list(range(30, 40))
    assert main(["evaluate", "--checkpoint", str(tmp_path / "ax.pt"), "--image", str(tmp_path / "img.tif"),
                 "--labels", str(tmp_path / "lab.tif"), "--slices", "30:41", "--quiet", "--device", "cpu"]) == 2
    assert "the volume has 40 slices" in one_line_error(capsys)


@pytest.mark.parametrize("command", ["train", "predict", "evaluate", "saliency"])
def test_compile_is_an_option_of_every_command_that_runs_a_model(command):
    required = {"train": ["--image", "i", "--labels", "l", "--out", "o"],
                "predict": ["--checkpoint", "c", "--image", "i", "--out", "o"],
                "evaluate": ["--checkpoint", "c", "--image", "i", "--labels", "l"],
                "saliency": ["--checkpoint", "c", "--image", "i", "--method", "full-output", "--out", "o"]}
    parser = build_parser()
    assert parser.parse_args([command, *required[command]]).compile is False  # off by default: slow first call
    assert parser.parse_args([command, *required[command], "--compile"]).compile is True


def test_a_reader_closing_the_pipe_is_not_a_traceback():
    # `channelbias presets | head -0`-like: `true` exits at once, so every write of ours meets a closed pipe.
    proc = subprocess.run(f"{sys.executable} -m napari_channelbias.cli presets | true", shell=True,
                          capture_output=True, text=True)
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr
    assert proc.stderr == ""
