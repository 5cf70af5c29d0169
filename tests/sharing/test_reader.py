"""Packages load back through load_checkpoint and predict as the checkpoint did; misfits are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_channelbias.errors import CheckpointError
from napari_channelbias.events import run_to_end
from napari_channelbias.models.factory import load_checkpoint
from napari_channelbias.segmentation.prediction import predict_events
from napari_channelbias.sharing.reader import is_package, read_package


def test_an_exported_package_predicts_exactly_like_its_checkpoint(exported_package, trained_checkpoint, em_stack):
    original, card = load_checkpoint(trained_checkpoint)
    loaded, loaded_card = load_checkpoint(exported_package)
    assert loaded_card.model == card.model
    assert loaded_card.normalization == card.normalization
    assert (loaded_card.padding, loaded_card.axis, loaded_card.training) == (card.padding, card.axis, card.training)
    image = em_stack[0]
    kwargs = {"slices": range(3, 6), "probabilities": True, "tile": 64, "overlap": 16, "device": "cpu"}
    expected = run_to_end(predict_events(original, card, image, **kwargs))
    got = run_to_end(predict_events(loaded, loaded_card, image, **kwargs))
    for key in ("labels", "probabilities"):
        assert np.array_equal(getattr(got, key), getattr(expected, key)), key


def test_is_package_tells_packages_from_torch_zip_checkpoints(exported_package, trained_checkpoint, tmp_path):
    assert is_package(exported_package)
    assert not is_package(trained_checkpoint)  # torch.save writes a zip too, without an rdf.yaml
    assert not is_package(tmp_path / "missing.zip")
    rdf = tmp_path / "rdf.yaml"
    rdf.write_text("{}")
    assert is_package(rdf)


# -- foreign packages, hand-built ----------------------------------------------------------------------
def _axes(channels: list[str], spaces: str = "yx", output: bool = False) -> list[dict]:
    size = (lambda a: {"tensor_id": "input0", "axis_id": a}) if output else (lambda a: {"min": 64, "step": 32})
    return [{"type": "batch"}, {"type": "channel", "channel_names": channels},
            *({"type": "space", "id": a, "size": size(a)} for a in spaces)]


def _rdf(**changes) -> dict:
    """A valid bioimage.io 0.5 model of a 3-slice smp U-Net (resnet18) written by someone else."""
    rdf = {
        "format_version": "0.5.4", "type": "model", "name": "foreign unet", "description": "a foreign model",
        "authors": [{"name": "Someone Else"}], "cite": [{"text": "U-Net", "doi": "10.1007/978-3-319-24574-4_28"}],
        "license": "MIT", "documentation": "README.md",
        "inputs": [{"id": "input0", "axes": _axes(["a", "b", "c"]), "test_tensor": {"source": "in.npy"},
                    "preprocessing": [{"id": "scale_linear", "kwargs": {"gain": 0.01, "offset": -0.5}},
                                      {"id": "clip", "kwargs": {"min": 0.0, "max": 1.0}}]}],
        "outputs": [{"id": "output0", "axes": _axes(["fg"], output=True), "test_tensor": {"source": "out.npy"},
                     "postprocessing": [{"id": "sigmoid"}]}],
        "weights": {"pytorch_state_dict": {
            "source": "weights.pt", "pytorch_version": "2.1",
            "architecture": {"callable": "Unet", "import_from": "segmentation_models_pytorch",
                             "kwargs": {"encoder_name": "resnet18", "encoder_weights": None, "in_channels": 3,
                                        "classes": 1}}}},
    }
    for path, value in changes.items():
        target = rdf
        *parents, last = path.split("__")
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if value is None:
            del target[last]
        else:
            target[last] = value
    return rdf


def _write(folder: Path, rdf: dict, state: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text("# foreign\n\n## Validation\n\nnone\n")
    if state is not None:
        torch.save(state, folder / "weights.pt")
    path = folder / "rdf.yaml"
    path.write_text(json.dumps(rdf))  # JSON is YAML
    return path


def test_a_foreign_package_that_fits_loads_with_a_card_from_its_rdf(tmp_path):
    import segmentation_models_pytorch as smp

    net = smp.Unet(encoder_name="resnet18", encoder_weights=None, in_channels=3, classes=1).eval()
    path = _write(tmp_path / "fits", _rdf(), {k: v.clone() for k, v in net.state_dict().items()})
    model, card = load_checkpoint(path)
    assert (card.model["arch"], card.model["encoder"], card.window, card.classes) == ("unet", "resnet18", 3, 1)
    norm = card.normalizer()  # gain 0.01, offset -0.5: lo = 50, hi = 150
    assert (norm.mode, norm.lo, norm.hi) == ("percentile", pytest.approx(50.0), pytest.approx(150.0))
    assert "foreign unet" in card.weights_source
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), net(x))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"inputs__0__axes": _axes(["a", "b", "c"], "zyx"), "outputs__0__axes": _axes(["fg"], "zyx", output=True)},
         "it is a 3-D model"),
        ({"inputs__0__axes": _axes(["a", "b", "c"], "x"), "outputs__0__axes": _axes(["fg"], "x", output=True)},
         "needs batch, channel, y, x"),
        ({"weights": {"onnx": {"source": "weights.onnx", "opset_version": 17}}}, "no pytorch_state_dict weights"),
        ({"weights__pytorch_state_dict__architecture": {"callable": "UNet2d", "source": "unet.py"}},
         "not a segmentation-models-pytorch model"),
        ({"weights__pytorch_state_dict__architecture__kwargs__encoder_name": "mit_b5"}, "unknown encoder"),
        ({"weights__pytorch_state_dict__architecture__kwargs__decoder_attention_type": "scse"},
         "smp options napari-channelbias does not"),
        ({"inputs__0__axes": _axes(["a", "b"]), "weights__pytorch_state_dict__architecture__kwargs__in_channels": 2},
         "odd number of slices"),
        ({"inputs__0__preprocessing": [{"id": "scale_range", "kwargs": {"min_percentile": 1, "max_percentile": 99}}]},
         "fixed scale_linear + clip"),
        ({"outputs__0__postprocessing": None}, "must produce logits followed by exactly that step"),
        ({"type": "dataset", "format_version": "0.3.0", "documentation": {"source": "README.md"}, "inputs": None,
          "outputs": None, "weights": None}, "not a model"),
    ],
)
def test_a_foreign_package_that_does_not_fit_is_refused_saying_why(tmp_path, changes, reason):
    (tmp_path / "unet.py").write_text("class UNet2d: ...\n")
    path = _write(tmp_path / "foreign", _rdf(**changes))
    with pytest.raises(CheckpointError, match="does not fit napari-channelbias") as info:
        read_package(path)
    assert reason in str(info.value)
    assert "\n" not in str(info.value)


def test_a_state_dict_with_code_is_refused_unread(tmp_path):
    import pickle

    class Payload:
        def __reduce__(self):
            return (print, ("executed",))

    folder = tmp_path / "evil"
    path = _write(folder, _rdf())
    (folder / "weights.pt").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(CheckpointError, match="not a plain state dict"):
        read_package(path)
