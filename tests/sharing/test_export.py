"""Export writes a complete package or nothing: contents, and every bad input as a one-line error."""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_channelbias.errors import ChannelBiasError, CheckpointError, ConfigError
from napari_channelbias.events import Progress, run_to_end
from napari_channelbias.models.factory import load_checkpoint
from napari_channelbias.sharing.export import export_checkpoint_events, export_events, sample_window

yaml = pytest.importorskip("ruyaml")


def _rdf(package: Path) -> dict:
    with zipfile.ZipFile(package) as zf:
        return yaml.YAML(typ="safe").load(zf.read("rdf.yaml"))


def test_the_package_holds_every_part(exported_package, trained_checkpoint, em_stack):
    with zipfile.ZipFile(exported_package) as zf:
        names = set(zf.namelist())
        readme = zf.read("README.md").decode()
        rows = list(csv.DictReader(io.StringIO(zf.read("attribution_audit.csv").decode())))
        png = zf.read("attribution_audit.png")
        test_in = np.load(io.BytesIO(zf.read("test_input.npy")))
        state = torch.load(io.BytesIO(zf.read("weights.pt")), weights_only=True)
    assert {"rdf.yaml", "weights.pt", "weights.torchscript.pt", "weights.onnx", "test_input.npy", "test_output.npy",
            "README.md", "environment.yaml", "attribution_audit.csv", "attribution_audit.png"} <= names
    rdf = _rdf(exported_package)
    assert set(rdf["weights"]) == {"pytorch_state_dict", "torchscript", "onnx"}
    arch = rdf["weights"]["pytorch_state_dict"]["architecture"]
    assert arch["import_from"] == "segmentation_models_pytorch" and arch["callable"] == "Unet"
    assert arch["kwargs"] == {"encoder_name": "timm-tf_efficientnet_lite0", "encoder_weights": None,
                              "in_channels": 3, "classes": 1}
    (inp,) = rdf["inputs"]
    assert [a["type"] for a in inp["axes"]] == ["batch", "channel", "space", "space"]
    assert inp["axes"][1]["channel_names"] == ["z-1", "z", "z+1"]
    assert inp["axes"][2]["size"] == {"min": 32, "step": 32}
    assert [p["id"] for p in rdf["outputs"][0]["postprocessing"] if p["id"] != "ensure_dtype"] == ["sigmoid"]
    _, card = load_checkpoint(trained_checkpoint)
    assert rdf["config"]["napari_channelbias"]["card"]["model"] == card.model
    # the test window: a real window of the stack (validation slice 7 of 7:10, the nearest the centre), 64 x 96
    assert test_in.shape == (1, 3, 64, 96)
    assert np.array_equal(test_in, sample_window(card, em_stack[0], 7))
    assert set(state) == set(load_checkpoint(trained_checkpoint)[0].state_dict())
    # documentation and audit
    assert "## Validation" in readme and "z-1, z, z+1" in readme and "Attribution audit" in readme
    assert [r["z"] for r in rows if r["scope"] == "slice"] == ["7", "8", "9"]
    assert {"swd", "fwd", "share_z-1", "share_z", "share_z+1"} <= set(rows[0])
    assert png.startswith(b"\x89PNG")


def _listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def _export(model, card, out, volume, **kw):
    return run_to_end(export_events(model, card, out, volume, **kw))


def test_an_existing_target_is_refused_and_left_alone(trained_checkpoint, em_stack, tmp_path):
    model, card = load_checkpoint(trained_checkpoint)
    out = tmp_path / "model.zip"
    out.write_bytes(b"precious")
    with pytest.raises(ChannelBiasError, match="already exists; export never overwrites") as info:
        _export(model, card, out, em_stack[0])
    assert "\n" not in str(info.value)
    assert out.read_bytes() == b"precious" and _listing(tmp_path) == ["model.zip"]


def test_a_read_only_folder_is_refused_with_nothing_written(trained_checkpoint, em_stack, tmp_path):
    model, card = load_checkpoint(trained_checkpoint)
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.access(folder, os.W_OK):  # root ignores permission bits: use a file system that refuses writes
            folder = Path("/sys")
            if os.access(folder, os.W_OK) and _can_create_in(folder):
                pytest.skip("no read-only folder available to this user")
        before = _listing(folder)
        with pytest.raises(ChannelBiasError, match="read-only|cannot write") as info:
            _export(model, card, folder / "model.zip", em_stack[0])
        assert "\n" not in str(info.value)
        assert _listing(folder) == before
    finally:
        (tmp_path / "ro").chmod(stat.S_IRWXU)


def _can_create_in(folder: Path) -> bool:
    import tempfile

    try:
        Path(tempfile.mkdtemp(dir=folder)).rmdir()
        return True
    except OSError:
        return False


def test_a_checkpoint_without_a_card_is_refused(tmp_path, trained_checkpoint):
    model, _ = load_checkpoint(trained_checkpoint)
    bare = tmp_path / "bare.pt"
    torch.save(model.state_dict(), bare)  # weights only, no card
    image = tmp_path / "image.npy"
    with pytest.raises(CheckpointError, match="without a model card") as info:
        run_to_end(export_checkpoint_events(bare, tmp_path / "model.zip", image))
    assert "\n" not in str(info.value)
    assert _listing(tmp_path) == ["bare.pt"]


def test_a_card_that_does_not_describe_the_weights_is_refused(trained_checkpoint, em_stack, tmp_path):
    model, card = load_checkpoint(trained_checkpoint)
    wrong = dataclasses.replace(card, model={**card.model, "classes": 2})
    with pytest.raises(ChannelBiasError, match="card does not describe its weights") as info:
        _export(model, wrong, tmp_path / "model.zip", em_stack[0])
    assert "\n" not in str(info.value)
    assert _listing(tmp_path) == []


def test_bad_paths_and_images_are_one_line_errors(trained_checkpoint, em_stack, tmp_path):
    model, card = load_checkpoint(trained_checkpoint)
    with pytest.raises(ConfigError, match="must end in .zip"):
        _export(model, card, tmp_path / "model.pt", em_stack[0])
    with pytest.raises(ChannelBiasError, match="does not exist"):
        _export(model, card, tmp_path / "missing" / "model.zip", em_stack[0])
    with pytest.raises(ChannelBiasError, match="the encoder needs at least 32"):
        _export(model, card, tmp_path / "model.zip", em_stack[0][:, :20, :20])
    with pytest.raises(ConfigError, match="outside the image's 10 slices"):
        _export(model, card, tmp_path / "model.zip", em_stack[0], slices=[3, 12])
    assert _listing(tmp_path) == []


def test_a_cancelled_export_leaves_nothing(trained_checkpoint, em_stack, tmp_path):
    model, card = load_checkpoint(trained_checkpoint)
    gen = export_events(model, card, tmp_path / "model.zip", em_stack[0])
    events = [next(gen), next(gen)]  # started writing weights, then the user cancels
    assert all(isinstance(e, Progress) for e in events)
    assert any(name.startswith(".model.zip.tmp-") for name in _listing(tmp_path))
    gen.close()
    assert _listing(tmp_path) == []


@pytest.mark.slow
def test_a_uniform_green_package_of_real_isbi_slices_reports_exactly_symmetric_attention(isbi_dir, tmp_path):
    # An untrained Uniform-Green Lite0 gives every input slice the same first-layer filter, so its
    # full-output saliency is the same map for z-1, z and z+1 on any data: the audit must say SWd = 0
    # exactly on real 512 x 512 EM slices, and the package's test window is a real 256 x 256 crop.
    from napari_channelbias.io.read import open_volume
    from napari_channelbias.models.checkpoints import ModelCard
    from napari_channelbias.models.factory import build_model
    from napari_channelbias.models.spec import ModelSpec
    from napari_channelbias.windowing import Normalizer

    volume = open_volume(isbi_dir / "train-volume.tif")
    model, provenance = build_model(ModelSpec(init="uniform-green"))
    card = ModelCard(model=provenance["spec"], normalization=Normalizer.fit(volume).to_dict(),
                     training={"val_slices_used": "16:18"})
    out = tmp_path / "ug.zip"
    result = _export(model.eval(), card, out, volume, image_name="train-volume.tif")
    assert result.test_shape == (1, 3, 256, 256)
    assert (result.audit["swd"], result.audit["fwd"]) == (0.0, 0.0)
    with zipfile.ZipFile(out) as zf:
        rows = list(csv.DictReader(io.StringIO(zf.read("attribution_audit.csv").decode())))
    assert [float(r["swd"]) for r in rows if r["scope"] == "slice"] == [0.0, 0.0]
    loaded, loaded_card = load_checkpoint(out)
    assert loaded_card.model == card.model
