"""Export a trained model as a bioimage.io model package (a zip), atomically, as an event generator.

Everything is built in a temporary folder beside the target (same file system): the weights in three
formats, real test tensors, the README, the attribution audit (CSV and figure) and the rdf.yaml that
bioimageio.spec validates and packages; the finished zip is then moved onto the target with
``os.replace``. A failure or a cancel at any point removes the temporary folder, so the target either
does not exist or is the complete package. An existing target is never overwritten.

The test tensors come from a real window of the image (the caller provides it: the card records the
volume's statistics, not its path): the validation slice nearest the volume's centre, centre-cropped to
a size the encoder accepts. The test output is *our* pipeline's result on it (our Normalizer, the model,
sigmoid / softmax), so bioimageio.core's test proves that a consumer reproduces our predictions.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import tempfile
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ChannelBiasError, ConfigError
from ..events import Progress
from ..io.checks import parse_slices, validate_image
from ..io.read import open_volume
from ..models.checkpoints import ModelCard
from ..models.factory import load_checkpoint
from ..windowing import extract_window, n_slices_along
from ._deps import require
from .audit import Audit, audit_events, write_audit_csv, write_audit_figure
from .description import INPUT_ID, OUTPUT_ID, SIZE_MIN, SIZE_STEP, PackageFiles, build_description, write_environment
from .documentation import readme
from .weights_files import architecture_kwargs, write_onnx, write_state_dict, write_torchscript

WEIGHT_FORMATS = ("pytorch_state_dict", "torchscript", "onnx")
TEST_SIZE = 256  # the test window's largest side (smaller slices give a smaller multiple of 32)
_STAGES = 6


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_events` returns."""

    path: Path
    formats: tuple[str, ...]
    test_shape: tuple[int, ...]
    audit: dict[str, Any] = field(default_factory=dict)


def check_target(out: str | os.PathLike[str]) -> Path:
    """The target path, if a package can be written there; a one-line ChannelBiasError otherwise."""
    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise ConfigError(f"the package path must end in .zip (a bioimage.io package), got {str(out)!r}")
    if out.exists() or out.is_symlink():
        raise ChannelBiasError(f"{str(out)!r} already exists; export never overwrites: choose another path or "
                               "delete it first")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ChannelBiasError(f"the folder {str(parent)!r} does not exist; create it or choose another path")
    if not os.access(parent, os.W_OK):
        raise ChannelBiasError(f"the folder {str(parent)!r} is read-only; choose a writable folder")
    return out


def _audit_slices(card: ModelCard, n: int, slices: str | Sequence[int] | None) -> list[int]:
    if slices is not None:
        chosen = list(parse_slices(slices, n)) if isinstance(slices, str) else [int(z) for z in slices]
    else:
        text = str(card.training.get("val_slices_used") or "").strip()
        chosen = [z for part in text.split(",") if part.strip() for z in parse_slices(part, n)] if text else []
        if not chosen:  # no validation block recorded (e.g. an untrained model): the centre slice
            chosen = [n // 2]
    bad = [z for z in chosen if not 0 <= z < n]
    if bad:
        raise ConfigError(f"audit slice(s) {bad[:5]} outside the image's {n} slices (0..{n - 1})")
    return chosen


def _crop_size(extent: int) -> int:
    if extent < SIZE_MIN:
        raise ChannelBiasError(f"the image's slices are {extent} pixels wide along one axis; the encoder needs "
                               f"at least {SIZE_MIN}")
    return min(TEST_SIZE, SIZE_MIN + (extent - SIZE_MIN) // SIZE_STEP * SIZE_STEP)


def sample_window(card: ModelCard, volume: Any, z: int) -> np.ndarray:
    """The raw float32 test input ``(1, K, h, w)``: slice ``z``'s window, centre-cropped to ``32 + 32 n``."""
    raw = extract_window(volume, z, card.window, card.padding, card.axis, normalizer=None)
    (h, w), (ch, cw) = raw.shape[1:], (_crop_size(raw.shape[1]), _crop_size(raw.shape[2]))
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(raw[None, :, y0 : y0 + ch, x0 : x0 + cw], dtype=np.float32)


def our_prediction(model: torch.nn.Module, card: ModelCard, raw: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """Our pipeline on a raw test input: ``(normalised input tensor, probabilities)``."""
    x = torch.from_numpy(np.stack([card.normalizer()(w) for w in raw]).astype(np.float32))
    with torch.no_grad():
        logits = model.eval()(x)
        probs = torch.sigmoid(logits) if card.classes == 1 else torch.softmax(logits, dim=1)
    return x, probs.numpy().astype(np.float32)


def _interior(slices: list[int], n: int, r: int) -> int:
    """The audit slice nearest the volume's centre (its window needs no padding where possible)."""
    return min(slices, key=lambda z: (not r <= z < n - r, abs(z - n // 2)))


def _package_name(card: ModelCard, name: str | None) -> str:
    text = name or card.name or f"{card.model['arch']}-{card.model['encoder']}-{card.model['init']}"
    text = re.sub(r"[^A-Za-z0-9 _\-().]+", "-", str(text)).strip(" -") or "napari-channelbias model"
    return f"{text} (2D+)"[:128]


def export_events(
    model: torch.nn.Module, card: ModelCard, out: str | os.PathLike[str], volume: Any, *,
    slices: str | Sequence[int] | None = None, image_name: str = "the training image", name: str | None = None,
    authors: Sequence[str] | None = None, license: str = "CC-BY-4.0", device: str | torch.device = "cpu",
) -> Generator[Any, None, ExportResult]:
    """Write ``model`` with ``card`` as a bioimage.io package ``out`` (.zip), atomically.

    Parameters
    ----------
    model, card
        The trained model (e.g. from :func:`~napari_channelbias.models.factory.load_checkpoint`) and its card.
    out
        The package path; must end in ``.zip`` and not exist, in a writable folder.
    volume
        The image (Z, Y, X) for the test tensors and the audit, normally the training volume.
    slices
        Audit slices (``"A:B"`` or indices); default the validation slices the card records.
    image_name, name, authors, license
        Shown in the package (authors default to the current user).
    device
        Where the audit's saliency runs; the weights are exported from the CPU.

    Yields
    ------
    Progress and SliceDone (task ``"audit"``) events.

    Raises
    ------
    ChannelBiasError
        Existing target, read-only folder, an image that does not fit, a card that does not describe the
        weights, or a description the spec refuses; nothing is left behind.
    """
    m = require("bioimageio.spec")
    out = check_target(out)
    card.validate()
    n = n_slices_along(volume, card.axis)
    chosen = _audit_slices(card, n, slices)
    test_slice = _interior(chosen, n, card.window // 2)
    raw = sample_window(card, volume, test_slice)
    arch, kwargs = architecture_kwargs(card.model)
    model = model.to("cpu").eval()
    try:
        workdir = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as exc:
        raise ChannelBiasError(f"cannot write in the folder {str(out.parent)!r} ({exc.strerror}); choose a "
                               "writable folder") from None
    try:
        yield Progress("export", 0, _STAGES, message="weights: pytorch_state_dict")
        rebuilt = write_state_dict(model, arch, kwargs, workdir / "weights.pt")
        x, expected = our_prediction(model, card, raw)
        np.save(workdir / "test_input.npy", raw)
        np.save(workdir / "test_output.npy", expected)
        yield Progress("export", 1, _STAGES, message="weights: torchscript")
        write_torchscript(rebuilt, x, workdir / "weights.torchscript.pt")
        yield Progress("export", 2, _STAGES, message="weights: onnx")
        write_onnx(rebuilt, x, workdir / "weights.onnx", INPUT_ID, OUTPUT_ID)
        yield Progress("export", 3, _STAGES, message=f"attribution audit on {len(chosen)} slice(s)")
        audit: Audit = yield from audit_events(model, card, volume, chosen, device=device)
        model.to("cpu")
        title = _package_name(card, name)
        write_audit_csv(audit, workdir / "attribution_audit.csv")
        write_audit_figure(audit, workdir / "attribution_audit.png", f"{title}: full-output saliency audit")
        (workdir / "README.md").write_text(
            readme(card, audit, name=title, image_name=image_name, input_id=INPUT_ID, formats=list(WEIGHT_FORMATS),
                   test_shape=raw.shape, test_slice=test_slice), encoding="utf-8")
        files = PackageFiles(
            state_dict=workdir / "weights.pt", torchscript=workdir / "weights.torchscript.pt",
            onnx=workdir / "weights.onnx", test_input=workdir / "test_input.npy",
            test_output=workdir / "test_output.npy", readme=workdir / "README.md",
            environment=write_environment(workdir / "environment.yaml"),
            attachments=[workdir / "attribution_audit.csv"], cover=workdir / "attribution_audit.png",
        )
        yield Progress("export", 4, _STAGES, message="description: validating rdf.yaml")
        descr = build_description(card, audit, files, name=title, arch=arch, kwargs=kwargs,
                                  authors=list(authors or [_user()]), license=license)
        yield Progress("export", 5, _STAGES, message="packaging")
        packed = workdir / "package.zip"
        try:
            m.save_bioimageio_package(descr, output_path=packed)
        except (ValueError, TypeError) as exc:
            raise ChannelBiasError(f"bioimageio.spec could not package the model: {str(exc).splitlines()[0]}") from None
        if out.exists():  # created by someone else meanwhile: still never overwrite
            raise ChannelBiasError(f"{str(out)!r} appeared while exporting; nothing was overwritten")
        os.replace(packed, out)
        yield Progress("export", _STAGES, _STAGES, message=f"wrote {out}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return ExportResult(path=out, formats=WEIGHT_FORMATS, test_shape=tuple(raw.shape), audit=audit.summary())


def export_checkpoint_events(
    checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], image: str | os.PathLike[str], **options: Any,
) -> Generator[Any, None, ExportResult]:
    """:func:`export_events` for a checkpoint file and an image path (what the CLI runs)."""

    check_target(out)  # before the slow loads
    model, card = load_checkpoint(checkpoint, device="cpu")
    volume = open_volume(image)
    validate_image(volume, window=1, name="--image")
    options.setdefault("image_name", Path(image).name)
    return (yield from export_events(model, card, out, volume, **options))


def _user() -> str:
    try:
        return getpass.getuser() or "unknown"
    except (KeyError, OSError):
        return "unknown"
