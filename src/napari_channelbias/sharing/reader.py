"""Load a bioimage.io model package as a model card and a state dict, or say why it does not fit.

:func:`~napari_channelbias.models.factory.load_checkpoint` routes packages here, so ``--checkpoint
model.zip`` and the GUI's *Load...* accept them like our ``.pt`` files. A package fits when it describes
what napari-channelbias runs: one 2D+ input (batch, channel = an odd number K of slices, y, x), one
output of the same y / x, ``pytorch_state_dict`` weights of a segmentation-models-pytorch architecture
and encoder we know (built with ``in_channels = K``), our kind of fixed normalisation and sigmoid /
softmax. Everything else is refused with the reason (a 3-D model, other axes, only ONNX weights, ...).

Our own exports carry the full model card in ``config.napari_channelbias``; it is used after checking
that it agrees with the rdf fields. A foreign package that fits gets a card built from those fields.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import ChannelBiasError, CheckpointError, ConfigError
from ..models.checkpoints import ModelCard
from ..models.spec import ARCHITECTURES, canonical_architecture, canonical_encoder
from ._deps import require
from .description import CONFIG_KEY
from .preprocessing import activation_of, normalizer_from_steps

RDF_NAMES = ("rdf.yaml", "bioimageio.yaml")
_SMP_KWARGS = {"encoder_name", "encoder_weights", "in_channels", "classes"}


def _is_rdf_name(name: str) -> bool:
    return name in RDF_NAMES or name.endswith(".bioimageio.yaml")


def is_package(path: str | os.PathLike[str]) -> bool:
    """True for a bioimage.io rdf file or a zip holding one at its root (torch's zip checkpoints do not)."""
    path = Path(path)
    if _is_rdf_name(path.name) and path.is_file():
        return True
    if not path.is_file() or not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            return any(_is_rdf_name(n) for n in zf.namelist() if "/" not in n)
    except (OSError, zipfile.BadZipFile):
        return False


def _refuse(path: Path, reason: str) -> CheckpointError:
    return CheckpointError(f"the bioimage.io package {str(path)!r} does not fit napari-channelbias: {reason}")


def _load(path: Path) -> Any:
    spec = require("bioimageio.spec")
    common = require("bioimageio.spec.common")
    try:
        descr = spec.load_description(path, format_version="latest", perform_io_checks=False)
    except Exception as exc:  # unreadable zip or yaml: bioimageio raises many types
        raise _refuse(path, f"it cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})") from None
    if isinstance(descr, common.InvalidDescr):
        errors = descr.validation_summary.errors
        first = f"{'.'.join(map(str, errors[0].loc))}: {errors[0].msg}" if errors else "invalid description"
        raise _refuse(path, f"its rdf.yaml is not a valid bioimage.io description ({first[:200]})")
    if descr.type != "model":
        raise _refuse(path, f"it describes a {descr.type}, not a model")
    if str(descr.format_version).split(".")[:2] != ["0", "5"]:
        raise _refuse(path, f"its format version {descr.format_version} could not be updated to 0.5")
    return descr


def _axes_text(axes: Any) -> str:
    return ", ".join(f"{a.type}:{a.id}" if a.type == "space" else str(a.type) for a in axes)


def _check_axes(path: Path, tensor: Any, kind: str) -> int:
    """The channel size of a (batch, channel, y, x) tensor; refuse anything else, saying what it is."""
    axes = list(tensor.axes)
    spaces = [str(a.id) for a in axes if a.type == "space"]
    if len(spaces) == 3:
        raise _refuse(path, f"it is a 3-D model (its {kind} axes are {_axes_text(axes)}); napari-channelbias "
                            "runs 2D+ models, which see neighbouring slices as the channels of a 2-D input")
    if [a.type for a in axes] != ["batch", "channel", "space", "space"] or spaces != ["y", "x"]:
        raise _refuse(path, f"its {kind} axes are {_axes_text(axes)}; napari-channelbias needs batch, channel, "
                            "y, x (one 2-D window of K slices)")
    return int(axes[1].size)


def _architecture(path: Path, descr: Any, window: int, classes: int) -> tuple[str, str]:
    entry = descr.weights.pytorch_state_dict
    if entry is None:
        present = [name for name, w in descr.weights if w is not None]
        raise _refuse(path, f"it has no pytorch_state_dict weights (only {', '.join(present)}); "
                            "napari-channelbias rebuilds the network and loads its state dict")
    arch = entry.architecture
    library = getattr(arch, "import_from", None)
    by_smp = {e.smp_name: friendly for friendly, e in ARCHITECTURES.items()}
    if library is None or library.split(".")[0] != "segmentation_models_pytorch" or str(arch.callable) not in by_smp:
        where = library or f"the file {getattr(arch, 'source', '?')}"
        raise _refuse(path, f"its architecture {arch.callable} from {where} is not a segmentation-models-pytorch "
                            f"model napari-channelbias builds ({', '.join(by_smp)})")
    kwargs = dict(arch.kwargs)
    extra = sorted(set(kwargs) - _SMP_KWARGS - ({"activation"} if kwargs.get("activation") is None else set()))
    if extra:
        raise _refuse(path, f"its architecture sets smp options napari-channelbias does not: {', '.join(extra)}")
    try:
        encoder = canonical_encoder(str(kwargs.get("encoder_name", "resnet34")))
    except ConfigError as exc:
        raise _refuse(path, str(exc)) from None
    if int(kwargs.get("in_channels", 3)) != window or int(kwargs.get("classes", 1)) != classes:
        raise _refuse(path, f"its architecture has in_channels={kwargs.get('in_channels', 3)}, classes="
                            f"{kwargs.get('classes', 1)}, but its tensors have {window} and {classes} channels")
    return by_smp[str(arch.callable)], encoder


def _card(path: Path, descr: Any, model: dict[str, Any], normalization: dict[str, Any]) -> ModelCard:
    config = descr.config.model_dump() if hasattr(descr.config, "model_dump") else dict(descr.config)
    ours = (config.get(CONFIG_KEY) or {}).get("card")
    if ours is None:
        return ModelCard(model=model, normalization=normalization,
                         weights_source=f"bioimage.io package {descr.name!r} (its first-layer init is not recorded)",
                         name=str(descr.name), extra={"bioimageio": {"name": str(descr.name), "source": str(path)}})
    card = ModelCard.from_dict(ours)
    stored = {k: card.model[k] for k in model if k != "init"}
    try:
        stored.update(arch=canonical_architecture(stored["arch"]), encoder=canonical_encoder(stored["encoder"]))
    except ConfigError as exc:
        raise _refuse(path, f"its napari-channelbias card names an unknown model: {exc}") from None
    described = {k: v for k, v in model.items() if k != "init"}
    if stored != described:
        raise _refuse(path, f"its napari-channelbias card ({stored}) disagrees with its rdf.yaml ({described})")
    if not _same_normalizer(card.normalization, normalization):
        raise _refuse(path, "its napari-channelbias card's normalisation disagrees with its preprocessing steps")
    return card


def _same_normalizer(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a.get("mode") != b.get("mode"):
        return a.get("mode") == "minmax" and b.get("mode") == "percentile"  # the same steps
    span = max(abs(float(a.get("hi", 0)) - float(a.get("lo", 0))), 1e-12)
    return all(abs(float(a.get(k, 0)) - float(b.get(k, 0))) <= 1e-5 * span for k in ("lo", "hi"))


def read_package(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The card (as a dict) and the state dict of a fitting package, like ``read_checkpoint`` returns.

    Raises
    ------
    CheckpointError
        For a package that does not fit, saying why, or weights that are not a plain state dict.
    """
    path = Path(path)
    descr = _load(path)
    if len(descr.inputs) != 1 or len(descr.outputs) != 1:
        raise _refuse(path, f"it has {len(descr.inputs)} inputs and {len(descr.outputs)} outputs; napari-channelbias "
                            "models take one window and give one probability map")
    window = _check_axes(path, descr.inputs[0], "input")
    classes = _check_axes(path, descr.outputs[0], "output")
    if window % 2 == 0:
        raise _refuse(path, f"its input has {window} channels; a 2D+ window is an odd number of slices (z-r .. z+r)")
    arch, encoder = _architecture(path, descr, window, classes)
    try:
        activation_of(descr.outputs[0].postprocessing, classes)
        normalizer = normalizer_from_steps(descr.inputs[0].preprocessing, window)
    except ChannelBiasError as exc:
        raise _refuse(path, str(exc)) from None
    model = {"arch": arch, "encoder": encoder, "init": "random", "window": window, "classes": classes}
    card = _card(path, descr, model, normalizer.to_dict())
    state = _state_dict(path, descr.weights.pytorch_state_dict)
    return card.to_dict(), state


def _state_dict(path: Path, entry: Any) -> dict[str, torch.Tensor]:
    utils = require("bioimageio.spec.utils")
    try:
        data = utils.get_reader(entry).read()
    except Exception as exc:  # a missing member or a broken zip
        raise _refuse(path, f"its pytorch_state_dict file cannot be read ({type(exc).__name__})") from None
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception:  # pickles with code are refused unread; anything else is corrupt
        raise _refuse(path, "its pytorch_state_dict is not a plain state dict of tensors (refused unread)") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise _refuse(path, "its pytorch_state_dict holds something other than a dict of tensors")
    return state
