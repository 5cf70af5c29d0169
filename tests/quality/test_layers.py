"""Layer names for every supported architecture, and hooks that collect features in one forward pass."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from napari_channelbias.errors import ConfigError
from napari_channelbias.models.factory import build_model
from napari_channelbias.models.spec import ModelSpec
from napari_channelbias.quality.layers import FeatureHooks, LayerSpec, layer_catalog


def _model(arch: str, encoder: str = "resnet18") -> nn.Module:
    model, _ = build_model(ModelSpec(arch=arch, encoder=encoder, init="random"))
    return model.eval()


@pytest.mark.parametrize("arch, encoder", [("unet", "resnet18"), ("deeplabv3plus", "resnet18"),
                                           ("segformer", "resnet18"), ("unet", "efficientnet-lite0")])
def test_every_layer_is_collected_in_the_one_forward_pass(arch, encoder):
    model = _model(arch, encoder)
    catalog = layer_catalog(model)
    assert [n for n in catalog.names if n.startswith("encoder.")] == [f"encoder.stage{i}" for i in range(1, 6)]
    assert set(catalog.last_two) <= set(catalog.names)
    x = torch.randn(2, 3, 64, 64)
    with FeatureHooks(model, catalog.layers) as hooks, torch.no_grad():
        logits = model(x)
        feats = hooks.take()
        assert hooks.calls == 1
    assert set(feats) == set(catalog.names)
    for name, f in feats.items():
        assert f.ndim == 4 and f.shape[0] == 2 and f.dtype == torch.float32, name
    # Encoder stages halve the resolution up to stride 16 (DeepLab dilates its last stage).
    assert [feats[f"encoder.stage{i}"].shape[-1] for i in range(1, 5)] == [32, 16, 8, 4]
    assert logits.shape == (2, 1, 64, 64)
    # Hooks are gone after the context: a later forward leaves nothing behind.
    model(x)
    assert hooks.take() == {}


def test_unet_last_two_are_the_last_blocks_convolutions():
    catalog = layer_catalog(_model("unet"))
    assert catalog.last_two == ("decoder.block5.conv1", "decoder.block5")
    assert catalog.names[-2:] == ["decoder.block5.conv1", "decoder.block5"]


def test_select_by_names_all_and_last2():
    catalog = layer_catalog(_model("unet"))
    assert [s.name for s in catalog.select("last2")] == list(catalog.last_two)
    assert len(catalog.select("all")) == len(catalog.names)
    picked = catalog.select("decoder.block1, encoder.stage2")
    assert [s.name for s in picked] == ["encoder.stage2", "decoder.block1"]  # catalog order
    with pytest.raises(ConfigError, match="valid: .*encoder.stage1"):
        catalog.select(["nope"])


def test_unknown_architecture_is_a_config_error_naming_the_supported():
    with pytest.raises(ConfigError, match="Unet, DeepLabV3Plus, Segformer"):
        layer_catalog(nn.Sequential(nn.Conv2d(3, 1, 1)))


def test_custom_catalog_for_any_model():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Conv2d(4, 1, 1))
    catalog = layer_catalog(model, [LayerSpec("first", "0"), LayerSpec("relu", "1")])
    assert catalog.last_two == ("first", "relu")
    with FeatureHooks(model, catalog.layers) as hooks:
        model(torch.randn(1, 3, 8, 8))
        feats = hooks.take()
    assert torch.equal(feats["relu"], feats["first"].clamp(min=0))
    with pytest.raises(ConfigError, match="lacks"):
        layer_catalog(model, [LayerSpec("x", "7")])


def test_undetached_features_carry_gradients():
    model = nn.Sequential(nn.Conv2d(3, 2, 1))
    with FeatureHooks(model, [LayerSpec("c", "0")], detach=False) as hooks:
        model(torch.randn(1, 3, 4, 4))
        hooks.take()["c"].sum().backward()
    assert model[0].weight.grad is not None
