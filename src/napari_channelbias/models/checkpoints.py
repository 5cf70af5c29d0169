"""One-file checkpoints: the trained weights plus a validated model card.

A checkpoint must be enough to reuse a model months later on another machine: which architecture and
first-layer initialisation it had, how intensities were normalised, how windows were padded and along
which axis, how it was trained, how well it did and with which package versions. All of that is the
*model card*, a JSON-able dict stored beside the weights in one ``torch.save`` file::

    {"format": "napari-channelbias-checkpoint", "format_version": 1,
     "card": {...}, "state_dict": {name: tensor}}

Reading uses ``torch.load(weights_only=True)``: only tensors and plain containers are accepted, so a
checkpoint downloaded from somewhere cannot run code when opened (a pickle with a malicious
``__reduce__`` is refused). Writing is atomic (:func:`~napari_channelbias.io.atomic.atomic_path`), so a
crash or a cancelled training never leaves half a checkpoint under the real name.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from ..errors import ChannelBiasError, CheckpointError, ConfigError
from ..io.atomic import atomic_path
from ..windowing import Normalizer, check_axis, check_padding, check_window
from .spec import ModelSpec

FORMAT = "napari-channelbias-checkpoint"
FORMAT_VERSION = 1

# Fields every card's ``model`` entry must have, with their types (the rest of ModelSpec is optional).
_MODEL_FIELDS: dict[str, type] = {"arch": str, "encoder": str, "init": str, "window": int, "classes": int}


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide what a checkpoint's weights mean."""
    out: dict[str, str] = {}
    for label, dist in (("torch", "torch"), ("smp", "segmentation-models-pytorch"), ("timm", "timm"),
                        ("napari_channelbias", "napari-channelbias")):
        try:
            out[label] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[label] = "unknown"
    return out


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_field(name: str, check: Any, value: Any) -> None:
    """Apply the one rule for a setting (:mod:`..windowing`'s checks) to a card field, as a CheckpointError."""
    try:
        check(value)
    except ConfigError as exc:
        raise CheckpointError(f"model card field {name!r}: {exc}; the checkpoint was edited or written by "
                              "another tool") from None


def _field_error(name: str, expected: str, value: Any) -> CheckpointError:
    return CheckpointError(
        f"model card field {name!r} should be {expected}, found {value!r} ({type(value).__name__}); "
        "the checkpoint was edited or written by another tool"
    )


@dataclass
class ModelCard:
    """Everything needed to rebuild and correctly apply a trained model, plus how it was made.

    Attributes
    ----------
    model
        The :class:`~napari_channelbias.models.ModelSpec` as a dict (at least arch, encoder, init,
        window, classes).
    normalization
        The fitted :class:`~napari_channelbias.windowing.Normalizer` as a dict.
    padding, axis
        How windows were built at the volume ends and along which axis slices were taken.
    weights_source
        Where the initial (pretrained) weights came from, e.g. the embedded Lite0 package or "random".
    training
        The training settings (steps, batch size, patch size, learning rate, validation slices, ...).
    metrics
        Validation metrics of these weights (e.g. ``{"dice": {"mean": .., "se": ..}, ...}``).
    versions
        Package versions at training time (torch, smp, timm, this package).
    created
        ISO 8601 date and time of writing.
    name
        Optional human name shown in the GUI.
    extra
        Fields this version does not know (from a newer writer); kept so a round trip loses nothing.
    """

    model: dict[str, Any]
    normalization: dict[str, Any]
    padding: str = "mirror"
    axis: int = 0
    weights_source: str = "unknown"
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=package_versions)
    created: str = field(default_factory=_now_iso)
    name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    # -- convenience views -------------------------------------------------------------------------
    @property
    def window(self) -> int:
        return int(self.model["window"])

    @property
    def classes(self) -> int:
        return int(self.model["classes"])

    def normalizer(self) -> Normalizer:
        """The fitted normaliser this model was trained with."""
        return Normalizer.from_dict(dict(self.normalization))

    def spec(self) -> ModelSpec:
        """The model spec as recorded (its ``init`` is the one used for training)."""
        try:
            return ModelSpec.from_dict(dict(self.model))
        except ChannelBiasError as exc:
            raise CheckpointError(f"the checkpoint's model entry is not usable: {exc}") from exc

    # -- validation and (de)serialisation ------------------------------------------------------------
    def validate(self) -> None:
        """Check every field's presence and type; raise CheckpointError naming the first bad one."""
        if not isinstance(self.model, dict):
            raise _field_error("model", "a dict (the model spec)", self.model)
        for key, kind in _MODEL_FIELDS.items():
            if key not in self.model:
                raise CheckpointError(
                    f"model card field 'model.{key}' is missing; a checkpoint must record the model's "
                    f"{', '.join(_MODEL_FIELDS)}"
                )
            value = self.model[key]
            if not (_is_int(value) if kind is int else isinstance(value, kind)):
                raise _field_error(f"model.{key}", kind.__name__, value)
        window, classes = self.model["window"], self.model["classes"]
        _check_field("model.window", check_window, window)
        if classes < 1:
            raise _field_error("model.classes", "a number >= 1", classes)
        if not isinstance(self.normalization, dict):
            raise _field_error("normalization", "a dict (the fitted normaliser)", self.normalization)
        try:
            Normalizer.from_dict(dict(self.normalization))
        except (ChannelBiasError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"model card field 'normalization' is not a valid normaliser: {exc}"
            ) from exc
        _check_field("padding", check_padding, self.padding)
        _check_field("axis", check_axis, self.axis)
        if not isinstance(self.weights_source, str):
            raise _field_error("weights_source", "a string", self.weights_source)
        for name in ("training", "metrics", "versions", "extra"):
            if not isinstance(getattr(self, name), dict):
                raise _field_error(name, "a dict", getattr(self, name))
        if not isinstance(self.created, str):
            raise _field_error("created", "an ISO 8601 date string", self.created)
        try:
            datetime.fromisoformat(self.created)
        except ValueError:
            raise _field_error("created", "an ISO 8601 date string", self.created) from None
        if self.name is not None and not isinstance(self.name, str):
            raise _field_error("name", "a string or null", self.name)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; ``extra`` fields are merged back at the top level."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        out = json.loads(json.dumps(out))  # a deep copy that also proves the card is JSON-able
        out.update(json.loads(json.dumps(self.extra)))
        return out

    @classmethod
    def from_dict(cls, data: Any) -> ModelCard:
        """Validate a card dict (e.g. read from a checkpoint) into a ModelCard."""
        if not isinstance(data, dict):
            raise CheckpointError(f"the model card should be a dict, found {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        for required in ("model", "normalization"):
            if required not in data:
                raise CheckpointError(
                    f"model card field {required!r} is missing; the checkpoint cannot be applied without it"
                )
        kwargs = {k: v for k, v in data.items() if k in known}
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**kwargs, extra=extra)


def _as_card(card: ModelCard | dict[str, Any]) -> ModelCard:
    return card if isinstance(card, ModelCard) else ModelCard.from_dict(card)


def save_checkpoint(path: str | os.PathLike[str], model: torch.nn.Module, card: ModelCard | dict) -> Path:
    """Write ``model``'s weights and ``card`` to one file, atomically.

    The file is first written as ``<name>.tmp-<pid>`` beside the target and then renamed over it, so the
    target is either the old complete file or the new complete file, never half of one.

    Returns
    -------
    Path
        The checkpoint's path.
    """
    path = Path(path)
    card = _as_card(card)
    card.validate()
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "card": card.to_dict(), "state_dict": state,
    }
    with atomic_path(path) as tmp:  # the package's one atomic-write rule (io/atomic.py)
        torch.save(payload, tmp)
    return path


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a checkpoint safely (tensors and plain containers only) without building a model.

    Returns
    -------
    card, state_dict
        The validated card as a dict and the weights on the CPU.

    Raises
    ------
    CheckpointError
        If the file is missing, truncated, not a torch file, holds Python objects other than tensors
        (refused, never executed), or is a torch file of another kind (e.g. a bare ``.pth`` state dict).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist (or is not a file)")
    try:
        with warnings.catch_warnings():
            # torch warns about the pickle protocol of foreign files; the error below says it better.
            warnings.simplefilter("ignore", UserWarning)
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "GLOBAL" in str(exc):
            raise CheckpointError(
                f"{str(path)!r} contains Python objects other than tensors and plain containers; it was "
                "refused without running them. Only checkpoints written by napari-channelbias can be loaded"
            ) from None
        raise CheckpointError(
            f"{str(path)!r} is not a torch checkpoint file, or it is corrupt (unreadable pickle data)"
        ) from None
    except Exception as exc:  # torch.load raises many types on foreign bytes (KeyError for text files)
        raise CheckpointError(
            f"{str(path)!r} is corrupt, truncated or not a torch checkpoint file "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else 'no details'}); "
            "retrain or copy the file again"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        kind = "a bare state dict" if isinstance(payload, dict) else f"a {type(payload).__name__}"
        raise CheckpointError(
            f"{str(path)!r} is not a napari-channelbias checkpoint (it holds {kind} without a model card); "
            "train a model with this tool, or build the model from a ModelSpec with weights_path="
        )
    version = payload.get("format_version")
    if not _is_int(version) or version > FORMAT_VERSION or version < 1:
        raise CheckpointError(
            f"{str(path)!r} has checkpoint format version {version!r}; this napari-channelbias reads "
            f"version {FORMAT_VERSION} and older: update the package"
        )
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{str(path)!r} has no valid 'state_dict' (a dict of tensors)")
    card = ModelCard.from_dict(payload.get("card")).to_dict()
    return card, state
