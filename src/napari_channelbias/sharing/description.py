"""The package's rdf.yaml as bioimageio.spec's own model classes (spec 0.5), validated on construction.

One input ``raw`` (batch, channel = the K slices ``z-1 .. z+1``, y, x with sizes ``32 + 32 n``: the encoder
downsamples five times) and one output ``probability`` (batch, classes, y, x the size of the input). Our
normalisation is the input's preprocessing, the activation the output's postprocessing
(:mod:`.preprocessing`). The whole napari-channelbias model card travels in ``config.napari_channelbias``
so that our own loader restores it exactly, while any other consumer needs only the spec's fields.
"""

from __future__ import annotations

import json
import math
import platform
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from ..errors import ChannelBiasError
from ..models.checkpoints import ModelCard
from ._deps import require
from .audit import Audit, channel_names
from .preprocessing import normalizer_steps, postprocessing_steps
from .weights_files import OPSET

INPUT_ID = "raw"
OUTPUT_ID = "probability"
CONFIG_KEY = "napari_channelbias"
CONFIG_FORMAT = 1
#: Spatial sizes the encoders accept: min + n * step (five stride-2 stages).
SIZE_MIN = 32
SIZE_STEP = 32

# Papers of the architectures (DOIs), cited in the package.
_CITATIONS = {
    "unet": ("Ronneberger, Fischer, Brox. U-Net: Convolutional Networks for Biomedical Image Segmentation. "
             "MICCAI 2015", "10.1007/978-3-319-24574-4_28"),
    "deeplabv3plus": ("Chen, Zhu, Papandreou, Schroff, Adam. Encoder-Decoder with Atrous Separable "
                      "Convolution for Semantic Image Segmentation. ECCV 2018", "10.1007/978-3-030-01234-2_49"),
    "segformer": ("Xie et al. SegFormer: Simple and Efficient Design for Semantic Segmentation with "
                  "Transformers. NeurIPS 2021", "10.48550/arXiv.2105.15203"),
}


@dataclass
class PackageFiles:
    """The files the description points to (all in one folder, packaged by bioimageio.spec)."""

    state_dict: Path
    torchscript: Path | None
    onnx: Path | None
    test_input: Path
    test_output: Path
    readme: Path
    environment: Path
    attachments: list[Path] = field(default_factory=list)
    cover: Path | None = None


def _jsonable(value: Any) -> Any:
    """Plain YAML types; NaN (a standard error of one slice) becomes None."""
    def clean(obj: Any) -> Any:
        if isinstance(obj, float) and not math.isfinite(obj):
            return None
        if isinstance(obj, dict):
            return {str(k): clean(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [clean(v) for v in obj]
        return obj

    return clean(json.loads(json.dumps(value, default=str)))


def write_environment(path: Path) -> Path:
    """A conda environment for consumers: PyTorch plus segmentation-models-pytorch and timm (pinned)."""
    versions = {dist: metadata.version(dist) for dist in ("torch", "segmentation-models-pytorch", "timm")}
    path.write_text(
        "name: napari-channelbias-export\nchannels:\n  - conda-forge\n  - nodefaults\ndependencies:\n"
        f"  - python={'.'.join(platform.python_version_tuple()[:2])}\n  - pip\n  - pip:\n"
        f"      - torch=={versions['torch']}\n"
        f"      - segmentation-models-pytorch=={versions['segmentation-models-pytorch']}\n"
        f"      - timm=={versions['timm']}\n",
        encoding="utf-8",
    )
    return path


def _axes(m: Any, names: list[str], *, output: bool) -> list[Any]:
    if output:
        space = [m.SpaceOutputAxis(id=m.AxisId(a), size=m.SizeReference(tensor_id=m.TensorId(INPUT_ID),
                                                                       axis_id=m.AxisId(a))) for a in "yx"]
    else:
        space = [m.SpaceInputAxis(id=m.AxisId(a), size=m.ParameterizedSize(min=SIZE_MIN, step=SIZE_STEP))
                 for a in "yx"]
    return [m.BatchAxis(), m.ChannelAxis(channel_names=names), *space]


def _weights(m: Any, files: PackageFiles, arch: str, kwargs: dict[str, Any]) -> Any:
    torch_version = m.Version(metadata.version("torch"))
    entries: dict[str, Any] = {"pytorch_state_dict": m.PytorchStateDictWeightsDescr(
        source=files.state_dict, pytorch_version=torch_version,
        architecture=m.ArchitectureFromLibraryDescr(
            callable=m.Identifier(arch), import_from="segmentation_models_pytorch", kwargs=kwargs),
        dependencies=m.FileDescr(source=files.environment),
    )}
    if files.torchscript is not None:
        entries["torchscript"] = m.TorchscriptWeightsDescr(
            source=files.torchscript, pytorch_version=torch_version, parent="pytorch_state_dict")
    if files.onnx is not None:

        entries["onnx"] = m.OnnxWeightsDescr(source=files.onnx, opset_version=OPSET, parent="pytorch_state_dict")
    return m.WeightsDescr(**entries)


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ()))
        msg = str(first.get("msg")).removeprefix("Value error, ")
        return f"{loc}: {msg}" if loc else msg
    return str(exc).splitlines()[0]


def build_description(
    card: ModelCard, audit: Audit, files: PackageFiles, *, name: str, arch: str, kwargs: dict[str, Any],
    authors: list[str], license: str = "CC-BY-4.0", description: str | None = None,
) -> Any:
    """A validated ``bioimageio.spec.model.v0_5.ModelDescr`` for the exported model.

    Raises
    ------
    ChannelBiasError
        If the spec refuses the description (the message names the first offending field).
    """
    m = require("bioimageio.spec.model.v0_5")
    generic = require("bioimageio.spec.generic.v0_3")
    k, classes = card.window, card.classes
    out_names = ["foreground"] if classes == 1 else [f"class{c}" for c in range(classes)]
    init = str(card.model["init"])
    text, doi = _CITATIONS[card.model["arch"]]
    summary = audit.summary()
    config = {CONFIG_KEY: _jsonable({"format": CONFIG_FORMAT, "card": card.to_dict(), "audit": summary,
                                      "padding": card.padding, "axis": card.axis})}
    try:
        descr = m.ModelDescr(
            name=name,
            description=description or (
                f"2D+ {card.model['arch']}/{card.model['encoder']} segmentation of EM stacks: {k} neighbouring "
                f"slices as channels, first layer init {init}; attribution audit SWd {summary['swd']:.2f}"),
            authors=[{"name": a} for a in authors],  # validated in place: errors name authors.N.name
            cite=[generic.CiteEntry(text=text, doi=generic.Doi(doi))],
            license=generic.LicenseId(license),
            documentation=m.FileDescr(source=files.readme),
            covers=[m.FileDescr(source=files.cover)] if files.cover else [],
            attachments=[m.FileDescr(source=p) for p in files.attachments],
            tags=["2d", "electron-microscopy", "semantic-segmentation", "pytorch", "napari-channelbias", "2d+",
                  f"init-{init.split(':')[0]}"] + (["unet"] if card.model["arch"] == "unet" else []),
            inputs=[m.InputTensorDescr(
                id=m.TensorId(INPUT_ID),
                description=f"{k} neighbouring slices ({', '.join(channel_names(k))}), raw intensities as float32",
                axes=_axes(m, channel_names(k), output=False),
                test_tensor=m.FileDescr(source=files.test_input),
                preprocessing=normalizer_steps(card.normalizer(), k),
            )],
            outputs=[m.OutputTensorDescr(
                id=m.TensorId(OUTPUT_ID),
                description="foreground probability" if classes == 1 else "class probabilities (softmax)",
                axes=_axes(m, out_names, output=True),
                test_tensor=m.FileDescr(source=files.test_output),
                postprocessing=postprocessing_steps(classes),
            )],
            weights=_weights(m, files, arch, kwargs),
            config=m.Config(**config),
        )
    except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
        raise ChannelBiasError(f"the bioimage.io spec refuses the model description: {_first_error(exc)}") from None
    return descr
