"""The fastest exact way to run a model on a device: memory format, optional ``torch.compile``, precision.

Prediction (:mod:`.prediction`), every saliency method (:mod:`napari_channelbias.saliency`) and training
(:mod:`.training`) prepare their model with :func:`prepare_model` and every input batch with
:func:`prepare_input`, so the device policy lives here and only here:

* **Memory format.** On the CPU, 4-D weights and inputs use ``torch.channels_last`` (NHWC). oneDNN's
  NHWC convolutions, depthwise ones above all (EfficientNet is mostly depthwise), are far faster than
  its NCHW path: ``benchmarks/bench_cpu_roofline.py`` measures forward, saliency and a training step
  side by side (figures in ``docs/performance.md``). Only the summation order inside the convolutions
  changes, so the results are the eager NCHW results to float32 rounding (see the exactness tests).
  CUDA and MPS keep the default layout: not measured here (no GPU in this project's sessions).
* **torch.compile** (``compile=True``; ``--compile`` on the CLI, a checkbox in the GUI) is an option,
  never a default: it costs tens of seconds on the first call of every input shape. Its compiled graphs
  are cached under the user cache (:func:`compile_cache_dir`), so a second run in a new process skips
  most of that (inductor's FX graph and AOTAutograd caches); shapes are static (``dynamic=False``) so a
  recompile gives the same specialised code as the first.
* **Precision.** ``amp=True`` means mixed precision where it is native and fast: bfloat16 autocast on a
  CUDA GPU that has it, else float16. On the CPU ``amp=True`` keeps float32: CPU autocast changes
  results by ~1e-2 (breaking the exactness the rest of the package promises) and, without native bf16
  arithmetic, is many times slower (an emulated bf16 forward measured 150x slower than float32).
  ``amp="bf16"`` asks for CPU bfloat16 explicitly; it is refused with a :class:`ConfigError` on a CPU
  without native bf16 instructions (AVX512-BF16 or AMX, :func:`cpu_bf16_support`).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..errors import ConfigError

AMP_CHOICES = (True, False, "bf16", "fp16")


_CHANNELS_LAST = {"enabled": True}


def uses_channels_last(device: str | torch.device) -> bool:
    """Whether models and inputs on ``device`` run in ``channels_last``: the CPU only (measured)."""
    return _CHANNELS_LAST["enabled"] and torch.device(device).type == "cpu"


@contextmanager
def channels_last(enabled: bool) -> Iterator[None]:
    """Switch the CPU layout policy inside the block: ``False`` runs the plain NCHW path.

    For benchmarks and exactness tests that compare the two layouts side by side in one process (a
    process-wide switch: do not use it while another thread runs a model). A model prepared inside the
    block is converted to the block's layout; prepare it again afterwards to convert it back.
    """
    previous = _CHANNELS_LAST["enabled"]
    _CHANNELS_LAST["enabled"] = bool(enabled)
    try:
        yield
    finally:
        _CHANNELS_LAST["enabled"] = previous


def compile_cache_dir() -> Path:
    """Where compiled graphs are kept between runs: ``$XDG_CACHE_HOME/napari-channelbias/torch-compile``.

    ``TORCHINDUCTOR_CACHE_DIR`` set by the user wins; otherwise it is set to this directory before the
    first compilation (torch's own default lies under ``/tmp``, which many systems clear at boot).
    """
    given = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "napari-channelbias" / "torch-compile"


def _enable_compile_cache() -> Path:
    path = compile_cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(path))
    # only when compiling: inductor's config is slow to import
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = True  # the default in recent torch; explicit for older ones
    return path


def prepare_model(model: torch.nn.Module, device: str | torch.device, *, compile: bool = False) -> Any:
    """Move ``model`` to ``device`` in its fastest memory format; return what to call (maybe compiled).

    The module itself is changed in place (like ``Module.to``): its parameters keep their identity, so
    an optimiser built before or after still updates them, and its ``state_dict`` loads anywhere
    (a state dict is copied into whatever layout the receiving parameters have). With ``compile=True``
    the return value is ``torch.compile(model)``, a wrapper that shares the module's parameters and
    training flags; call :func:`unwrap` on it to reach the module. Compiling the same module again is
    cheap: torch caches the compiled code per module and input shape.
    """
    device = torch.device(device)
    layout = torch.channels_last if uses_channels_last(device) else torch.contiguous_format
    model.to(device=device, memory_format=layout)  # no copy for a parameter already in place
    if not compile:
        return model
    _enable_compile_cache()
    return torch.compile(model, dynamic=False)


def unwrap(model: Any) -> torch.nn.Module:
    """The plain module behind what :func:`prepare_model` returned (itself if it was not compiled)."""
    return getattr(model, "_orig_mod", model)


def prepare_input(x: torch.Tensor) -> torch.Tensor:
    """A 4-D batch in the memory format its device wants (no copy when it already has it).

    Autograd sees the layout change as an ordinary op, so input gradients come back in the layout of
    ``x``.
    """
    if x.ndim == 4 and uses_channels_last(x.device):
        return x.contiguous(memory_format=torch.channels_last)
    return x


class _AffineEvalBatchNorm(TorchFunctionMode):
    """``F.batch_norm`` in eval mode as ``addcmul(shift, x, scale)``: the same values, a cheap backward."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func is F.batch_norm:
            bound = _BATCH_NORM_SIGNATURE.bind(*args, **kwargs)
            bound.apply_defaults()
            a = bound.arguments
            x, mean, var = a["input"], a["running_mean"], a["running_var"]
            if not a["training"] and mean is not None and var is not None and x.ndim == 4:
                # The CPU kernel computes exactly this: alpha = w / sqrt(var + eps), beta = b - mean * alpha.
                scale = torch.rsqrt(var + a["eps"])
                if a["weight"] is not None:
                    scale = scale * a["weight"]
                shift = -mean * scale
                if a["bias"] is not None:
                    shift = shift + a["bias"]
                return torch.addcmul(shift.view(1, -1, 1, 1), x, scale.view(1, -1, 1, 1))
        return func(*args, **kwargs)


_BATCH_NORM_SIGNATURE = inspect.signature(F.batch_norm)


def gradient_friendly_batch_norm(device: str | torch.device) -> Any:
    """A context in which eval-mode batch norms back-propagate cheaply on ``device`` (the CPU fast path).

    PyTorch's ``native_batch_norm_backward`` on ``channels_last`` tensors is slow on the CPU: in a
    saliency pass of the Lite0 U-Net it took more time than all convolution backward passes together.
    An eval-mode batch norm is the per-channel affine map ``x * scale + shift``; as ``addcmul`` its input
    gradient is one multiplication. The forward values are those of the CPU kernel (it computes the same
    ``scale`` and ``shift``), and the input gradients came out bit-for-bit equal in the measurements
    (``docs/performance.md``). Training-mode batch norms (batch statistics) are left alone. The mode is
    per thread, so a GUI worker using it does not affect the event loop's thread.
    """
    if not uses_channels_last(device):
        return nullcontext()
    return _AffineEvalBatchNorm()


def cpu_bf16_support() -> str | None:
    """The CPU's native bfloat16 instructions: ``"amx"``, ``"avx512_bf16"`` or None (emulated only)."""
    cpu = getattr(torch, "cpu", None)
    if cpu is not None and getattr(cpu, "_is_amx_tile_supported", lambda: False)():
        return "amx"
    if cpu is not None and getattr(cpu, "_is_avx512_bf16_supported", lambda: False)():
        return "avx512_bf16"
    return None


def check_amp(amp: bool | str) -> bool | str:
    """``amp`` if it is one of :data:`AMP_CHOICES`, else a ConfigError listing them."""
    if isinstance(amp, bool) or amp in AMP_CHOICES[2:]:
        return amp
    raise ConfigError(f"amp must be True, False, 'bf16' or 'fp16', got {amp!r}")


def autocast_dtype(device: str | torch.device, amp: bool | str) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device``, or None for plain float32 (see the module notes).

    Raises
    ------
    ConfigError
        ``amp="bf16"`` on a CPU without native bf16 (it would be emulated, many times slower than
        float32), ``amp="fp16"`` on a CPU, or a reduced precision the GPU does not have.
    """
    device = torch.device(device)
    amp = check_amp(amp)
    if amp is False:
        return None
    if device.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        if amp == "bf16" and not bf16:
            raise ConfigError(f"amp='bf16': {device} has no bfloat16 support; use amp=True (float16)")
        return torch.bfloat16 if (bf16 and amp != "fp16") else torch.float16
    if device.type != "cpu" or amp is True:
        return None  # CPU: True means "where it is native and exact enough", i.e. float32; MPS: float32
    if amp == "fp16":
        raise ConfigError("amp='fp16' is for CUDA GPUs; on the CPU use amp='bf16' (with native support) "
                          "or float32 (amp=False)")
    if cpu_bf16_support() is None:
        raise ConfigError("amp='bf16' refused: this CPU has no native bfloat16 instructions (no AVX512-BF16 "
                          "or AMX), so bf16 would be emulated and many times slower than float32; "
                          "use amp=False (float32)")
    return torch.bfloat16


def autocast(device: str | torch.device, amp: bool | str) -> Any:
    """A context manager running the enclosed forward pass in :func:`autocast_dtype` (or a no-op)."""
    dtype = autocast_dtype(device, amp)
    if dtype is None:
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)
