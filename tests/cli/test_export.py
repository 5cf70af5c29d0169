"""`channelbias export`: a package that predicts like its checkpoint; bad input exits 2 with one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_channelbias.cli.main import main

pytest.importorskip("bioimageio.core", reason="the bioimageio extra is not installed")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A random-init Lite0 checkpoint (card with a validation block) and its 8 x 64 x 64 image as TIFF."""
    from napari_channelbias.models.checkpoints import ModelCard, save_checkpoint
    from napari_channelbias.models.factory import build_model
    from napari_channelbias.models.spec import ModelSpec
    from napari_channelbias.sample_data import make_sample
    from napari_channelbias.windowing import Normalizer

    folder = tmp_path_factory.mktemp("cli-export")
    image = make_sample(shape=(8, 64, 64), seed=3)[0]
    tifffile.imwrite(folder / "image.tif", image)
    model, provenance = build_model(ModelSpec(init="random"))
    card = ModelCard(model=provenance["spec"], normalization=Normalizer.fit(image).to_dict(),
                     training={"val_slices_used": "6:8"}, name="tiny")
    checkpoint = save_checkpoint(folder / "tiny.pt", model, card)
    return folder, checkpoint, folder / "image.tif"


def test_export_then_predict_with_the_package(files, capsys):
    folder, checkpoint, image = files
    out = folder / "tiny.zip"
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(out), "--image", str(image),
                 "--author", "Ada Lovelace", "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["path"] == str(out) and summary["formats"] == ["pytorch_state_dict", "torchscript", "onnx"]
    assert summary["audit"]["slices"] == [6, 7] and set(summary["audit"]["shares"]) == {"z-1", "z", "z+1"}
    for source, target in ((checkpoint, "from-pt.tif"), (out, "from-zip.tif")):
        assert main(["predict", "--checkpoint", str(source), "--image", str(image), "--out", str(folder / target),
                     "--tile", "64", "--overlap", "16", "--device", "cpu", "--quiet"]) == 0
    assert np.array_equal(tifffile.imread(folder / "from-pt.tif"), tifffile.imread(folder / "from-zip.tif"))
    # exporting again onto the package is refused and leaves it as it was
    before = out.read_bytes()
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(out), "--image", str(image)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("channelbias: error: ") and "already exists" in err[0]
    assert out.read_bytes() == before


def test_export_errors_are_one_line(files, tmp_path, capsys):
    _, checkpoint, image = files
    assert main(["export", "--checkpoint", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "m.zip"),
                 "--image", str(image)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "m.zip"), "--image",
                 str(image), "--slices", "20:30"]) == 2
    assert "out of range" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
