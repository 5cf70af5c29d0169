"""Model names and the model spec, answered without importing torch.

The registries map friendly names (and other accepted spellings) of architectures and encoders onto
segmentation-models-pytorch's names, and list the first-layer init strategies. They are plain data so that
the command line's choices, help texts and the GUI's combo boxes come from here without loading torch;
:mod:`.factory` builds the networks and :mod:`.init_strategies` holds the weight formulas.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import ConfigError
from ..windowing import check_window

#: Init names that the model factory handles itself (no first-conv adaptation).
RANDOM_INIT = "random"
CHECKPOINT_PREFIX = "checkpoint:"

#: Weight-adapting init strategies, in display order; :data:`.init_strategies.INIT_STRATEGIES` has one
#: formula for each (a test keeps the two equal).
WEIGHT_INITS: tuple[str, ...] = ("imagenet", "uniform-red", "uniform-green", "uniform-blue", "average", "mirror")

#: Inits whose untrained model is exactly symmetric under z-reversal of its input window.
SYMMETRIC_INITS: frozenset[str] = frozenset({"uniform-red", "uniform-green", "uniform-blue", "average", "mirror"})


def valid_init_names() -> list[str]:
    """Every init name a model spec accepts, in display order (``checkpoint:PATH`` as a pattern)."""
    return [*WEIGHT_INITS, RANDOM_INIT, f"{CHECKPOINT_PREFIX}PATH"]


def normalise_init_name(name: str) -> str:
    """Canonical spelling of an init name: lower case, ``_``/spaces as ``-``; a checkpoint path is kept.

    Raises
    ------
    ConfigError
        If the name is none of :func:`valid_init_names`.
    """
    if not isinstance(name, str):
        raise ConfigError(f"init must be a string, got {type(name).__name__}; valid: {_valid_text()}")
    stripped = name.strip()
    if stripped.lower().startswith(CHECKPOINT_PREFIX):
        path = stripped[len(CHECKPOINT_PREFIX) :].strip()
        if not path:
            raise ConfigError("init 'checkpoint:' needs a path, e.g. 'checkpoint:runs/model.pt'")
        return CHECKPOINT_PREFIX + path
    canonical = stripped.lower().replace("_", "-").replace(" ", "-")
    if canonical in WEIGHT_INITS or canonical == RANDOM_INIT:
        return canonical
    raise ConfigError(f"unknown init {name!r}; valid: {_valid_text()}")


def _valid_text() -> str:
    return ", ".join(valid_init_names())


@dataclass(frozen=True)
class _Entry:
    """One registry entry: the smp name behind a friendly name, and the other spellings accepted."""

    smp_name: str
    aliases: tuple[str, ...] = ()


ARCHITECTURES: dict[str, _Entry] = {
    "unet": _Entry("Unet", ("u-net",)),
    "deeplabv3plus": _Entry("DeepLabV3Plus", ("deeplabv3+", "deeplab", "deeplab-v3+")),
    "segformer": _Entry("Segformer"),
}
"""Segmentation architectures by friendly name."""

ENCODERS: dict[str, _Entry] = {
    "resnet18": _Entry("resnet18"),
    "resnet34": _Entry("resnet34"),
    "resnet50": _Entry("resnet50"),
    "efficientnet-lite0": _Entry(
        "timm-tf_efficientnet_lite0",
        ("lite0", "timm-tf_efficientnet_lite0", "tf_efficientnet_lite0", "efficientnet_lite0"),
    ),
}
"""Encoders by friendly name; only ``efficientnet-lite0`` has ImageNet weights on every machine."""

def list_architectures() -> list[str]:
    """Friendly names of the architectures."""
    return list(ARCHITECTURES)


def list_encoders() -> list[str]:
    """Friendly names of the encoders."""
    return list(ENCODERS)


def _lookup(registry: dict[str, _Entry], name: str, kind: str) -> str:
    if isinstance(name, str):
        key = name.strip().lower()
        for friendly, entry in registry.items():
            if key == friendly or key in entry.aliases or key == entry.smp_name.lower():
                return friendly
    options = ", ".join(
        f"{friendly} (also {', '.join(entry.aliases)})" if entry.aliases else friendly
        for friendly, entry in registry.items()
    )
    raise ConfigError(f"unknown {kind} {name!r}; valid: {options}")


def canonical_architecture(name: str) -> str:
    """Friendly architecture name for any accepted spelling; :class:`ConfigError` lists the valid ones."""
    return _lookup(ARCHITECTURES, name, "architecture")


def canonical_encoder(name: str) -> str:
    """Friendly encoder name for any accepted spelling; :class:`ConfigError` lists the valid ones."""
    return _lookup(ENCODERS, name, "encoder")


def resolve_encoder(name: str) -> str:
    """The smp encoder name behind any accepted encoder spelling."""
    return ENCODERS[canonical_encoder(name)].smp_name


@dataclass
class ModelSpec:
    """Everything needed to rebuild a model: architecture, encoder, init, window, classes.

    Parameters
    ----------
    arch, encoder
        Friendly names or aliases (see :data:`ARCHITECTURES`, :data:`ENCODERS`).
    init
        ``imagenet``, ``random``, ``uniform-red|green|blue``, ``average``, ``mirror`` or
        ``checkpoint:PATH``.
    window
        Number of input slices K (odd).
    classes
        Output channels: 1 for a binary (sigmoid) model, >= 2 for multi-class (softmax).
    weights_path
        A torchvision/timm ImageNet weights file to use instead of the cache (pretrained inits only).
    rescale
        Scale the adapted first-conv weight to the Frobenius norm of the pretrained one.
    """

    arch: str = "unet"
    encoder: str = "efficientnet-lite0"
    init: str = "imagenet"
    window: int = 3
    classes: int = 1
    weights_path: str | None = None
    rescale: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        """Inverse of :meth:`to_dict`; missing fields take defaults, unknown fields are an error."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown model setting(s) {unknown}; valid: {', '.join(sorted(names))}")
        return cls(**data)

    def canonical(self) -> ModelSpec:
        """A copy with friendly names resolved and every value validated."""
        classes = self.classes
        if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
            raise ConfigError(f"classes must be an int >= 1 (1 = binary), got {classes!r}")
        return ModelSpec(
            arch=canonical_architecture(self.arch),
            encoder=canonical_encoder(self.encoder),
            init=normalise_init_name(self.init),
            window=check_window(self.window),
            classes=classes,
            weights_path=None if self.weights_path is None else str(self.weights_path),
            rescale=bool(self.rescale),
        )
