"""Our models are exactly what smp builds from the package's architecture; derived weights agree."""

from __future__ import annotations

import pytest
import torch

from napari_channelbias.errors import ChannelBiasError
from napari_channelbias.models.factory import build_model, find_first_conv
from napari_channelbias.models.spec import ModelSpec
from napari_channelbias.sharing.weights_files import (
    architecture_kwargs,
    rebuild_with_smp,
    write_onnx,
    write_state_dict,
    write_torchscript,
)


@pytest.mark.parametrize(
    ("arch", "encoder", "init", "window", "classes"),
    [("unet", "efficientnet-lite0", "uniform-green", 5, 1),  # ImageNet weights, first conv widened to K = 5
     ("unet", "resnet18", "random", 3, 2),
     ("deeplabv3plus", "resnet18", "random", 1, 1)],
)
def test_smp_rebuilds_our_models_from_the_package_kwargs(tmp_path, arch, encoder, init, window, classes):
    model, provenance = build_model(ModelSpec(arch=arch, encoder=encoder, init=init, window=window, classes=classes))
    name, kwargs = architecture_kwargs(provenance["spec"])
    assert kwargs["encoder_weights"] is None and kwargs["in_channels"] == window
    rebuilt = write_state_dict(model, name, kwargs, tmp_path / "w.pt")
    assert find_first_conv(rebuilt)[1].weight.shape[1] == window
    saved = torch.load(tmp_path / "w.pt", weights_only=True)
    assert saved.keys() == model.state_dict().keys()
    x = torch.rand(1, window, 64, 64)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model.eval()(x))


def test_weights_that_the_card_does_not_describe_are_refused(tmp_path):
    model, provenance = build_model(ModelSpec(encoder="resnet18", init="random", window=3))
    name, kwargs = architecture_kwargs({**provenance["spec"], "window": 5})
    with pytest.raises(ChannelBiasError, match="do not fit segmentation_models_pytorch.Unet"):
        write_state_dict(model, name, kwargs, tmp_path / "w.pt")
    assert not (tmp_path / "w.pt").exists()


def test_torchscript_and_onnx_match_the_model_at_another_size(tmp_path):
    # Lite0's TF-style "same" padding is computed from the input size: the checks run 32 px larger inputs.
    model = rebuild_with_smp("Unet", {"encoder_name": "timm-tf_efficientnet_lite0", "encoder_weights": None,
                                      "in_channels": 3, "classes": 1}).eval()
    example = torch.rand(1, 3, 64, 64)
    write_torchscript(model, example, tmp_path / "m.torchscript.pt")
    write_onnx(model, example, tmp_path / "m.onnx", "raw", "probability")
    import onnxruntime

    x = torch.rand(2, 3, 96, 128)
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = model(x)
        traced = torch.jit.load(str(tmp_path / "m.torchscript.pt"))(x)
    # The trace replays the same kernels (1e-4 leaves room for thread-dependent reduction order); ONNX
    # Runtime fuses batch norms into the convolutions, which reorders sums (the exporter's own 1e-3 bound).
    assert torch.allclose(traced, expected, atol=1e-4)
    assert torch.allclose(torch.from_numpy(session.run(None, {"raw": x.numpy()})[0]), expected, atol=1e-3)
