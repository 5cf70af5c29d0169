"""Model factory: a 2D+ segmentation network from a :class:`ModelSpec`.

Architectures and encoders come from segmentation-models-pytorch, always built with
``encoder_weights=None`` so nothing is ever fetched from a hub. Pretrained inits load ImageNet weights
found offline by :mod:`napari_channelbias.weights` into the encoder (strict key check) and then give the
first convolution K input channels with the weight of the chosen init strategy
(:mod:`napari_channelbias.init_strategies`). ``random`` builds K input channels with no pretrained
weight anywhere; ``checkpoint:PATH`` loads every weight of a model this tool trained earlier.

The factory returns the model and a provenance dict for the model card (resolved names, where the
weights came from, the first conv's name).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Any

import segmentation_models_pytorch as smp
import torch
from torch import nn

from ..devices import resolve_device
from ..errors import CheckpointError, ConfigError
from .checkpoints import ModelCard, read_checkpoint
from .init_strategies import adapt_first_conv_weight
from .spec import ARCHITECTURES, CHECKPOINT_PREFIX, ENCODERS, RANDOM_INIT, ModelSpec
from .weights import resolve_imagenet_weights

_HEAD_PREFIX = "segmentation_head."


def find_first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """The convolution that reads the model input, and its qualified name.

    It is the first ``nn.Conv2d`` registered in the encoder (``conv1`` of a ResNet, ``conv_stem`` of an
    EfficientNet, the patch embedding of a transformer), searched in the whole model when there is no
    ``encoder`` attribute.
    """
    encoder = getattr(model, "encoder", None)
    root, prefix = (encoder, "encoder.") if isinstance(encoder, nn.Module) else (model, "")
    for name, module in root.named_modules():
        if isinstance(module, nn.Conv2d):
            return prefix + name, module
    raise ValueError(f"no Conv2d found in {type(model).__name__}")


def build_model(spec: ModelSpec) -> tuple[nn.Module, dict[str, Any]]:
    """Build the segmentation model a spec describes.

    Returns
    -------
    model, provenance
        The model (train mode, CPU, input ``(B, K, H, W)`` with H and W multiples of 32, output logits
        ``(B, classes, H, W)``) and a JSON-able dict for the model card: ``spec`` (canonical names),
        ``smp_arch``, ``smp_encoder``, ``weights_source``, ``first_conv``, ``parameters``; plus
        ``checkpoint_model`` and ``head_recreated`` for checkpoint inits.

    Raises
    ------
    ConfigError
        For an unknown name or an invalid value (the message lists the valid options).
    WeightsUnavailableError
        If a pretrained init is asked for and no offline source has ImageNet weights.
    CheckpointError
        If a ``checkpoint:PATH`` init names a checkpoint that does not fit the spec.
    """
    spec = spec.canonical()
    smp_arch = ARCHITECTURES[spec.arch].smp_name
    smp_encoder = ENCODERS[spec.encoder].smp_name
    extra: dict[str, Any] = {}
    if spec.init == RANDOM_INIT:
        model = _create(smp_arch, smp_encoder, spec.window, spec.classes)
        source = "none: random init, no pretrained weights"
    elif spec.init.startswith(CHECKPOINT_PREFIX):
        model, source, extra = _from_checkpoint(spec, smp_arch, smp_encoder)
    else:
        model, source = _from_imagenet(spec, smp_arch, smp_encoder)
    first_conv, _ = find_first_conv(model)
    provenance = {
        "spec": spec.to_dict(),
        "smp_arch": smp_arch,
        "smp_encoder": smp_encoder,
        "weights_source": source,
        "first_conv": first_conv,
        "parameters": count_parameters(model),
        **extra,
    }
    return model, provenance


def _create(smp_arch: str, smp_encoder: str, in_channels: int, classes: int) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # smp deprecates the timm- prefix, not the model
        return smp.create_model(
            smp_arch, encoder_name=smp_encoder, encoder_weights=None, in_channels=in_channels, classes=classes
        )


def _from_imagenet(spec: ModelSpec, smp_arch: str, smp_encoder: str) -> tuple[nn.Module, str]:
    state, source = resolve_imagenet_weights(smp_encoder, spec.weights_path)
    model = _create(smp_arch, smp_encoder, 3, spec.classes)
    result = model.encoder.load_state_dict(dict(state), strict=True)
    if result is not None and (result.missing_keys or result.unexpected_keys):  # smp wrappers may hide it
        raise RuntimeError(f"encoder state mismatch: {result}")
    _, conv = find_first_conv(model)
    new_weight = adapt_first_conv_weight(spec.init, conv.weight, spec.window, rescale=spec.rescale)
    _set_input_channels(model, conv, new_weight)
    return model, source


def _set_input_channels(model: nn.Module, conv: nn.Conv2d, weight: torch.Tensor) -> None:
    """Give ``conv`` a new weight with K input channels, in place so its class (and padding) is kept."""
    conv.in_channels = weight.shape[1]
    conv.weight = nn.Parameter(weight)
    encoder = getattr(model, "encoder", None)
    if encoder is not None and hasattr(encoder, "_in_channels"):
        encoder._in_channels = weight.shape[1]  # smp reads it when it patches or describes the encoder


def _from_checkpoint(
    spec: ModelSpec, smp_arch: str, smp_encoder: str
) -> tuple[nn.Module, str, dict[str, Any]]:
    path = spec.init[len(CHECKPOINT_PREFIX) :]
    card, state = read_checkpoint(path)
    try:
        trained = ModelSpec.from_dict(dict(card["model"])).canonical()
    except (KeyError, TypeError, ConfigError) as exc:
        raise CheckpointError(f"checkpoint {path!r} has no valid model spec in its card: {exc}") from exc
    if (trained.arch, trained.encoder) != (spec.arch, spec.encoder):
        raise CheckpointError(
            f"checkpoint {path!r} holds a {trained.arch} / {trained.encoder} model, but {spec.arch} / "
            f"{spec.encoder} was asked for; set arch={trained.arch!r} and encoder={trained.encoder!r}"
        )
    if trained.window != spec.window:
        raise CheckpointError(
            f"checkpoint {path!r} was trained with a window of {trained.window} slices, but window="
            f"{spec.window} was asked for; set window={trained.window}"
        )
    model = _create(smp_arch, smp_encoder, spec.window, spec.classes)
    head_recreated = trained.classes != spec.classes
    if head_recreated:  # a new task: keep the features, start the head afresh
        state = {k: v for k, v in state.items() if not k.startswith(_HEAD_PREFIX)}
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches raise even when strict=False
        raise CheckpointError(
            f"checkpoint {path!r} does not fit a {spec.arch} / {spec.encoder} model with window "
            f"{spec.window}: {str(exc).splitlines()[-1].strip()[:300]}"
        ) from None
    missing = [k for k in result.missing_keys if not (head_recreated and k.startswith(_HEAD_PREFIX))]
    if missing or result.unexpected_keys:
        raise CheckpointError(
            f"checkpoint {path!r} does not fit a {spec.arch} / {spec.encoder} model: {len(missing)} keys "
            f"missing (e.g. {missing[:3]}), {len(result.unexpected_keys)} unexpected "
            f"(e.g. {result.unexpected_keys[:3]})"
        )
    source = f"checkpoint {path} (trained as init {trained.init!r}, {trained.classes} classes)"
    extra = {"checkpoint_model": trained.to_dict(), "head_recreated": head_recreated}
    return model, source, extra


def count_parameters(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())


def describe_model(model: nn.Module) -> dict[str, Any]:
    """Short facts for display: class, parameter counts, first conv and its input channels."""
    name, conv = find_first_conv(model)
    return {
        "class": type(model).__name__,
        "parameters": count_parameters(model),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "first_conv": name,
        "in_channels": conv.in_channels,
    }


def _describe_mismatch(exc: Exception, model: torch.nn.Module, state: dict[str, torch.Tensor]) -> str:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [k for k in set(expected) & set(state) if expected[k].shape != state[k].shape]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if shapes:
        k = sorted(shapes)[0]
        parts.append(f"{len(shapes)} with other shapes (e.g. {k}: {tuple(state[k].shape)} in the file, "
                     f"{tuple(expected[k].shape)} in the model)")
    return "; ".join(parts) or str(exc).splitlines()[0]


def load_checkpoint(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, ModelCard]:
    """Rebuild a trained model from its checkpoint.

    The architecture is built from the card with ``init="random"`` (nothing is downloaded or read from
    the pretrained-weight sources) and the stored weights are loaded strictly.

    Returns
    -------
    model, card
        The model in eval mode on ``device``, and its card.

    Raises
    ------
    CheckpointError
        For any problem of :func:`read_checkpoint`, or when the weights do not fit the architecture the
        card describes.
    """
    from ..sharing.reader import is_package, read_package  # bioimage.io zips from `channelbias export`

    card_dict, state = read_package(path) if is_package(path) else read_checkpoint(path)
    card = ModelCard.from_dict(card_dict)
    spec = dataclasses.replace(card.spec(), init="random", weights_path=None)
    model, _ = build_model(spec)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"the weights in {str(path)!r} do not match the model its card describes "
            f"({card.model['arch']} / {card.model['encoder']}, window {card.window}, "
            f"{card.classes} classes): "
            f"{_describe_mismatch(exc, model, state)}"
        ) from None
    model.to(resolve_device(device)).eval()
    return model, card
