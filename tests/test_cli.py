"""The `channelbias` command end to end: real files, real (tiny) models, one-line errors with exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_channelbias.cli import build_parser, main
from napari_channelbias.cli_attribution import METHOD_NAMES

SUBCOMMANDS = ("sample", "presets", "train", "predict", "evaluate", "info", "saliency", "asymmetry", "study", "gui")


def test_method_names_match_the_saliency_registry():
    from napari_channelbias.saliency import SALIENCY_METHODS

    assert tuple(SALIENCY_METHODS) == METHOD_NAMES


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
