"""Readable, stable names for the feature maps of a segmentation model, and hooks that collect them.

ProtoSeg scores a *feature map*; users pick one by a name that does not change between runs or
encoders. Every supported architecture (segmentation-models-pytorch's Unet, DeepLabV3Plus and
Segformer, with any encoder) gets

- ``encoder.stage1`` ... ``encoder.stage5``: the encoder's outputs at strides 2 ... 32 (the list
  smp's encoders return; entry 0, the input itself, is left out),
- the decoder's blocks, shallow to deep along the path to the head (``decoder.block1`` ...
  ``decoder.block5`` for a Unet, ``decoder.aspp`` / ``decoder.skip`` / ``decoder.fuse`` for DeepLabV3+,
  ``decoder.mlp1`` ... / ``decoder.fuse`` for Segformer),
- and the *last two* feature maps before the segmentation head, which the mean SA score mu uses
  (:func:`last_two`).

Features are collected by forward hooks during the model's ordinary forward pass -- the one that
also gives the prediction -- so asking for features never costs a second pass. Other models can be
described by hand with :class:`LayerSpec` entries (name, module path, list index).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError

ENCODER_STAGES = 5


@dataclass(frozen=True)
class LayerSpec:
    """One named feature map: the output of ``module`` (a qualified module name), entry ``index`` of it
    when that module returns a list (smp encoders do)."""

    name: str
    module: str
    index: int | None = None
    part: str = "decoder"  # "encoder" or "decoder": for display and for the transition plot


def _encoder_layers() -> list[LayerSpec]:
    return [LayerSpec(f"encoder.stage{i}", "encoder", i, "encoder") for i in range(1, ENCODER_STAGES + 1)]


def _unet_layers(model: nn.Module) -> tuple[list[LayerSpec], tuple[str, str]]:
    n = len(model.decoder.blocks)
    dec = [LayerSpec(f"decoder.block{i + 1}", f"decoder.blocks.{i}") for i in range(n)]
    # The last block holds the last two convolutions before the head: its conv1 and its output (conv2,
    # through an identity attention by default). conv1's output is read at its last module (the
    # activation): the same tensor, and a hook there leaves the fused upsampling on
    # (segmentation/fused_upsampling), which a hook on conv1 itself would turn off.
    last = len(model.decoder.blocks[n - 1].conv1) - 1
    dec.insert(n - 1, LayerSpec(f"decoder.block{n}.conv1", f"decoder.blocks.{n - 1}.conv1.{last}"))
    return dec, (f"decoder.block{n}.conv1", f"decoder.block{n}")


def _deeplab_layers(model: nn.Module) -> tuple[list[LayerSpec], tuple[str, str]]:
    dec = [LayerSpec("decoder.aspp", "decoder.aspp"), LayerSpec("decoder.skip", "decoder.block1"),
           LayerSpec("decoder.fuse", "decoder.block2")]
    # Along the path to the head the last two convolutional feature maps are the ASPP output and the
    # fusing separable convolution (the skip projection branches off from a shallow encoder stage).
    return dec, ("decoder.aspp", "decoder.fuse")


def _segformer_layers(model: nn.Module) -> tuple[list[LayerSpec], tuple[str, str]]:
    n = len(model.decoder.mlp_stage)
    dec = [LayerSpec(f"decoder.mlp{i + 1}", f"decoder.mlp_stage.{i}") for i in range(n)]
    dec += [LayerSpec("decoder.fuse.conv", "decoder.fuse_stage.0"), LayerSpec("decoder.fuse", "decoder.fuse_stage")]
    # Segformer has a single convolution after its MLP fusion: its raw output and its activated output
    # are the last two feature maps before the head.
    return dec, ("decoder.fuse.conv", "decoder.fuse")


_ARCHITECTURES = {"Unet": _unet_layers, "DeepLabV3Plus": _deeplab_layers, "Segformer": _segformer_layers}


@dataclass(frozen=True)
class LayerCatalog:
    """The named feature maps of one model, shallow to deep, and the two that mu averages over."""

    layers: tuple[LayerSpec, ...]
    last_two: tuple[str, str]

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.layers]

    def get(self, name: str) -> LayerSpec:
        for spec in self.layers:
            if spec.name == name:
                return spec
        raise ConfigError(f"unknown layer {name!r}; valid: {', '.join(self.names)}")

    def select(self, names: str | Sequence[str] | None) -> list[LayerSpec]:
        """The specs for ``names``: ``None`` or ``"all"`` -> every layer, ``"last2"`` -> the mu layers,
        a comma-separated string or a list of names -> those, in catalog order."""
        if names is None or names == "all":
            return list(self.layers)
        if names == "last2":
            names = list(self.last_two)
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",") if n.strip()]
        if not names:
            raise ConfigError(f"no layers selected; valid: all, last2, {', '.join(self.names)}")
        wanted = {self.get(n).name for n in names}
        return [spec for spec in self.layers if spec.name in wanted]


def layer_catalog(model: nn.Module, custom: Sequence[LayerSpec] | None = None,
                  last_two: tuple[str, str] | None = None) -> LayerCatalog:
    """The named feature maps of ``model``.

    Parameters
    ----------
    model
        An smp ``Unet``, ``DeepLabV3Plus`` or ``Segformer`` (any encoder), or any model when ``custom``
        describes its layers.
    custom, last_two
        Layer specs for another model, and the names of its two last feature maps (default: the last
        two specs).

    Raises
    ------
    ConfigError
        For an architecture without a catalog and no ``custom`` specs.
    """
    if custom is not None:
        specs = tuple(custom)
        if len(specs) < 1:
            raise ConfigError("a custom layer catalog needs at least one layer")
        pair = last_two or (specs[-2].name if len(specs) > 1 else specs[-1].name, specs[-1].name)
        catalog = LayerCatalog(specs, pair)
    else:
        kind = type(model).__name__
        if kind not in _ARCHITECTURES or not hasattr(model, "encoder"):
            raise ConfigError(
                f"no layer names for a {kind}; supported: {', '.join(_ARCHITECTURES)} (smp models), "
                "or describe the layers with LayerSpec entries"
            )
        decoder, pair = _ARCHITECTURES[kind](model)
        catalog = LayerCatalog(tuple(_encoder_layers() + decoder), pair)
    modules = dict(model.named_modules())
    for spec in catalog.layers:
        if spec.module not in modules:
            raise ConfigError(f"layer {spec.name!r} names module {spec.module!r}, which {type(model).__name__} lacks")
    for name in catalog.last_two:
        catalog.get(name)
    return catalog


class FeatureHooks:
    """Forward hooks that keep the outputs of chosen layers from every forward pass of ``model``.

    Use as a context manager; after each forward, :meth:`take` returns ``{name: tensor (B, C, h, w)}``
    (float32, detached unless ``detach=False``, which the training loss needs) and forgets them.
    ``calls`` counts the model's forward passes since the hooks were installed (a test uses it to show
    the features came from the prediction's own pass).
    """

    def __init__(self, model: nn.Module, specs: Sequence[LayerSpec], detach: bool = True) -> None:
        self.model = model
        self.specs = list(specs)
        self.detach = detach
        self.calls = 0
        self._store: dict[str, torch.Tensor] = {}
        self._handles: list[Any] = []

    def __enter__(self) -> FeatureHooks:
        modules = dict(self.model.named_modules())
        by_module: dict[str, list[LayerSpec]] = {}
        for spec in self.specs:
            by_module.setdefault(spec.module, []).append(spec)
        for path, specs in by_module.items():
            self._handles.append(modules[path].register_forward_hook(self._hook(specs)))
        self._handles.append(self.model.register_forward_pre_hook(self._count))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._store.clear()

    def _count(self, module: nn.Module, inputs: Any) -> None:
        self.calls += 1

    def _hook(self, specs: list[LayerSpec]) -> Any:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            for spec in specs:
                value = output[spec.index] if spec.index is not None else output
                if not torch.is_tensor(value) or value.ndim != 4:
                    raise ConfigError(f"layer {spec.name!r} does not give a (B, C, h, w) feature map")
                value = value.float()
                self._store[spec.name] = value.detach() if self.detach else value
        return hook

    def take(self) -> dict[str, torch.Tensor]:
        """The features of the last forward pass, by layer name (then cleared)."""
        out, self._store = self._store, {}
        return out

    def __iter__(self) -> Iterator[LayerSpec]:
        return iter(self.specs)
