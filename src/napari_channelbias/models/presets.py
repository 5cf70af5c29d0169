"""Named presets: a model spec, its intensity normalisation and recommended training settings.

Each preset is one small TOML file packaged in ``napari_channelbias/models/preset_files/``::

    name = "unet-lite0-uniform-green"
    description = "..."
    arch = "unet"
    encoder = "efficientnet-lite0"
    init = "uniform-green"
    window = 3
    classes = 1

    [normalization]
    mode = "percentile"
    low = 0.5
    high = 99.5

    [training]
    steps = 3000
    batch_size = 8
    patch_size = 256
    lr = 1e-3
    weight_decay = 1e-4

The paper's trio is ``deeplabv3plus-resnet34-{imagenet,random,uniform-green}`` (ResNet ImageNet weights
need the local cache or ``--weights``); the ``unet-lite0-*`` presets work offline everywhere.

:func:`merge_preset` is the one rule for "a preset gives defaults, explicit settings override them",
used by ``channelbias train``, the study and the GUI's Train section.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..windowing import Normalizer
from .spec import ModelSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover  (Python 3.10 needs the tomli backport: tomli; python_version < "3.11")
    import tomli as tomllib

_PACKAGE_DIR = "preset_files"
_SPEC_KEYS = ("arch", "encoder", "init", "window", "classes")
_TOP_KEYS = {"name", "description", "normalization", "training", *_SPEC_KEYS}
_NORMALIZATION_KEYS = {"mode", "low", "high"}
#: Training settings every preset gives, with their type and a check.
_TRAINING_KEYS: dict[str, tuple[type, str]] = {
    "steps": (int, "a positive number of optimiser steps"),
    "batch_size": (int, "a positive batch size"),
    "patch_size": (int, "a positive multiple of 32 (the encoders downsample 32x)"),
    "lr": (float, "a positive learning rate"),
    "weight_decay": (float, "a weight decay >= 0"),
}


@dataclass(frozen=True)
class Preset:
    """A named starting point: what to build, how to normalise and how to train it."""

    name: str
    description: str
    spec: ModelSpec
    normalization: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    def normalizer(self) -> Normalizer:
        """An (unfitted) :class:`~napari_channelbias.windowing.Normalizer` with the preset's settings."""
        return Normalizer(**self.normalization)


@dataclass(frozen=True)
class MergedSettings:
    """A preset's settings with the explicit ones on top.

    ``training`` holds :class:`~napari_channelbias.segmentation.training.TrainConfig` fields, the
    preset's normalisation under ``"normalization"`` included, ready for ``TrainConfig.from_dict``.
    """

    spec: ModelSpec
    training: dict[str, Any]


def merge_preset(
    preset: str | Preset | None, *, model: dict[str, Any] | None = None, training: dict[str, Any] | None = None,
) -> MergedSettings:
    """The preset's model and training settings with explicit settings on top; explicit ones win.

    Parameters
    ----------
    preset
        A preset name or file (see :func:`load_preset`), a loaded :class:`Preset`, or None (the
        :class:`ModelSpec` defaults and no training settings).
    model
        :class:`ModelSpec` fields; an unknown field is a ConfigError listing the valid ones.
    training
        Training settings; ``"normalization"`` is merged key by key onto the preset's (so giving only a
        ``mode`` keeps the preset's percentiles).

    A value of None means "not given" and keeps the preset's (a command-line option left out, say).
    """
    if isinstance(preset, str):
        preset = load_preset(preset)
    spec = preset.spec.to_dict() if preset is not None else ModelSpec().to_dict()
    spec.update({k: v for k, v in (model or {}).items() if v is not None})
    merged: dict[str, Any] = dict(preset.training) if preset is not None else {}
    normalization = dict(preset.normalization) if preset is not None else {}
    for key, value in (training or {}).items():
        if value is None:
            continue
        if key == "normalization":
            normalization.update(value)
        else:
            merged[key] = value
    if normalization:
        merged["normalization"] = normalization
    return MergedSettings(ModelSpec.from_dict(spec), merged)


def _preset_files() -> dict[str, Any]:
    folder = resources.files("napari_channelbias.models").joinpath(_PACKAGE_DIR)
    return {
        entry.name[: -len(".toml")]: entry
        for entry in folder.iterdir()
        if entry.is_file() and entry.name.endswith(".toml")
    }


def list_presets() -> list[str]:
    """Names of the packaged presets, sorted."""
    return sorted(_preset_files())


def load_preset(name: str) -> Preset:
    """Load a packaged preset by name, or a preset TOML file by path.

    Raises
    ------
    ConfigError
        If no preset has that name (the message lists them) or the file is malformed.
    """
    files = _preset_files()
    if name in files:
        text, origin = files[name].read_text(encoding="utf-8"), f"preset {name!r}"
    elif str(name).endswith(".toml") and Path(name).is_file():
        text, origin = Path(name).read_text(encoding="utf-8"), f"preset file {str(name)!r}"
    else:
        raise ConfigError(f"unknown preset {name!r}; valid: {', '.join(sorted(files))} (or a path to a .toml file)")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin} is not valid TOML: {exc}") from exc
    return _parse(data, origin)


def _parse(data: dict[str, Any], origin: str) -> Preset:
    unknown = sorted(set(data) - _TOP_KEYS)
    missing = sorted(k for k in _TOP_KEYS if k not in data)
    if unknown or missing:
        raise ConfigError(
            f"{origin}: missing keys {missing}, unknown keys {unknown}; a preset has {', '.join(sorted(_TOP_KEYS))}"
        )
    spec = ModelSpec(**{k: data[k] for k in _SPEC_KEYS})
    spec.canonical()  # validates names, window and classes; the spec keeps the file's spelling
    normalization = dict(data["normalization"])
    if set(normalization) != _NORMALIZATION_KEYS:
        raise ConfigError(f"{origin}: [normalization] needs exactly mode, low, high; found {sorted(normalization)}")
    Normalizer(**normalization)  # validates mode and percentiles
    training = dict(data["training"])
    if set(training) != set(_TRAINING_KEYS):
        raise ConfigError(f"{origin}: [training] needs exactly {', '.join(_TRAINING_KEYS)}; found {sorted(training)}")
    for key, (kind, meaning) in _TRAINING_KEYS.items():
        value = training[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = training[key] = float(value)
        valid = isinstance(value, kind) and not isinstance(value, bool)
        valid = valid and (value >= 0 if key == "weight_decay" else value > 0)
        valid = valid and (key != "patch_size" or value % 32 == 0)
        if not valid:
            raise ConfigError(f"{origin}: training.{key} must be {meaning}, got {value!r}")
    return Preset(
        name=str(data["name"]),
        description=str(data["description"]).strip(),
        spec=spec,
        normalization=normalization,
        training=training,
    )
