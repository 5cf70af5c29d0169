"""The package's weight files: a plain state dict, and TorchScript and ONNX derived from it.

``pytorch_state_dict`` is the source of truth. It is a bare ``{name: tensor}`` dict (what
``torch.load(weights_only=True)`` accepts, the spec's requirement) for the architecture that
``segmentation_models_pytorch.<Arch>(encoder_name=..., encoder_weights=None, in_channels=K, classes=C)``
builds: our models are exactly such models (the factory creates them through ``smp.create_model`` with
downloads off, a K-channel first conv included), so a consumer needs smp, not this package.

TorchScript is traced and ONNX exported (TorchScript-based exporter, opset 17, batch / y / x dynamic)
from the model rebuilt that way, and each derived file is run once against the original on an input of
another size than the trace's, so a shape baked into a trace cannot go unnoticed.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import segmentation_models_pytorch as smp
import torch
from torch import nn

from ..errors import ChannelBiasError
from ..models.spec import ARCHITECTURES, ENCODERS

OPSET = 17

# Derived weights must reproduce the original's logits to float32 accuracy of a deep network: the
# exporters reorder sums (ONNX fuses batch norms into convolutions), so bitwise equality is not expected,
# but a wrong padding or a baked-in shape changes logits by far more than this.
DERIVED_ATOL = 1e-3


def architecture_kwargs(card_model: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(smp class name, keyword arguments)`` that rebuild the card's model with smp alone."""
    arch = ARCHITECTURES[card_model["arch"]].smp_name
    kwargs = {
        "encoder_name": ENCODERS[card_model["encoder"]].smp_name,
        "encoder_weights": None,  # never download ImageNet weights: the state dict holds every weight
        "in_channels": int(card_model["window"]),
        "classes": int(card_model["classes"]),
    }
    return arch, kwargs


def rebuild_with_smp(arch: str, kwargs: dict[str, Any]) -> nn.Module:
    """The model a consumer builds from the package: ``segmentation_models_pytorch.<arch>(**kwargs)``."""

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # smp deprecates the timm- prefix, not the model
        return getattr(smp, arch)(**kwargs)


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """CPU copies of the weights, contiguous, with nothing but tensors."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def write_state_dict(model: nn.Module, arch: str, kwargs: dict[str, Any], path: Path) -> nn.Module:
    """Save the state dict and prove the smp-built architecture takes it strictly; returns that rebuild."""
    state = plain_state_dict(model)
    rebuilt = rebuild_with_smp(arch, kwargs)
    try:
        rebuilt.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ChannelBiasError(
            f"the model's weights do not fit segmentation_models_pytorch.{arch}({kwargs}); the checkpoint's "
            f"card does not describe its weights: {str(exc).splitlines()[-1].strip()[:200]}"
        ) from None
    torch.save(state, path)
    return rebuilt.eval()


def _check_same(name: str, expected: torch.Tensor, got: Any) -> None:
    got_t = torch.as_tensor(np.asarray(got))
    if got_t.shape != expected.shape:
        raise ChannelBiasError(f"the {name} weights give shape {tuple(got_t.shape)}, the model {tuple(expected.shape)}")
    diff = float((got_t - expected).abs().max())
    if diff > DERIVED_ATOL:
        raise ChannelBiasError(
            f"the {name} weights differ from the PyTorch model by {diff:.3g} (tolerance {DERIVED_ATOL}); "
            "this architecture does not export faithfully"
        )


def _probe(example: torch.Tensor) -> torch.Tensor:
    """An input of another size than ``example`` (32 more rows and columns), seeded."""
    b, k, h, w = example.shape
    gen = torch.Generator().manual_seed(0)
    return torch.rand((b, k, h + 32, w + 32), generator=gen, dtype=example.dtype)


def write_torchscript(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    """Trace ``model`` on ``example`` (a normalised input) and save it; checked on another input size."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # trace deprecation and tracer notes about Python-side shapes
        traced = torch.jit.trace(model, example, check_trace=False)
        traced.save(str(path))
        probe = _probe(example)
        _check_same("torchscript", model(probe), torch.jit.load(str(path))(probe))


def write_onnx(model: nn.Module, example: torch.Tensor, path: Path, input_id: str, output_id: str) -> None:
    """Export ONNX with dynamic batch / y / x and check it with onnxruntime on another input size."""
    # the `bioimageio` extra: ONNX Runtime only to check the exported file
    import onnxruntime

    dynamic = {0: "batch", 2: "y", 3: "x"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy-exporter deprecation note
        torch.onnx.export(
            model, (example,), str(path), dynamo=False, opset_version=OPSET, input_names=[input_id],
            output_names=[output_id], dynamic_axes={input_id: dynamic, output_id: dynamic},
        )
        probe = _probe(example)
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        _check_same("onnx", model(probe), session.run(None, {input_id: probe.numpy()})[0])
