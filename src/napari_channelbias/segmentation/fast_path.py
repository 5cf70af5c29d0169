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
* **Fused decoder upsampling.** On the CPU, each U-Net decoder block computes its nearest 2x
  upsampling and first 3 x 3 convolution as one stride-2 transposed convolution
  (:mod:`.fused_upsampling`): 16 instead of 36 multiply-adds per input pixel on the upsampled
  channels, no upsampled tensor, no concatenation; forward and backward, so prediction, saliency and
  training all gain. Same weights and ``state_dict``; float32 rounding only.
* **Saliency's forward and backward** (:func:`gradient_friendly_forward`): on the CPU, eval batch norms
  as one ``addcmul`` (torch's own batch-norm backward on ``channels_last`` is slow) and in-place
  activations run out of place while autograd records (no activation clone). Exact in real arithmetic;
  float32 rounding only. Folding the batch norms into the convolutions was tried and measured no gain
  (``docs/performance.md``), so it is not done.
* **torch.compile** (``compile=True``; ``--compile`` on the CLI, a checkbox in the GUI) is an option,
  never a default: it costs tens of seconds on the first call of every input shape. On the CPU it
  compiles prediction and training but not saliency, which measured slower compiled
  (:func:`compiles_gradients`). Its compiled graphs
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
from .fused_upsampling import use_fused_upsampling

AMP_CHOICES = (True, False, "bf16", "fp16")


_POLICY = {"channels_last": True, "fused_upsampling": True, "compile_gradients": False}


def uses_channels_last(device: str | torch.device) -> bool:
    """Whether models and inputs on ``device`` run in ``channels_last``: the CPU only (measured)."""
    return _POLICY["channels_last"] and torch.device(device).type == "cpu"


def uses_fused_upsampling(device: str | torch.device) -> bool:
    """Whether U-Net decoders on ``device`` fuse upsampling into their first convolution: the CPU (measured)."""
    return _POLICY["fused_upsampling"] and torch.device(device).type == "cpu"


def compiles_gradients(device: str | torch.device) -> bool:
    """Whether ``compile=True`` compiles input-gradient passes (saliency) on ``device``: not on the CPU.

    Measured (``benchmarks/bench_cpu_roofline.py --compile``, 512 px full-output saliency): compiled,
    a saliency pass ran at 0.66-0.80x the speed of the eager fast path on the CPU (also with the
    batch-norm multiply-add traced into the graph; the cause was not profiled), so saliency stays eager
    there; prediction and training compile (1.1x faster once compiled). Other devices compile as asked
    (not measured).
    """
    return torch.device(device).type != "cpu" or _POLICY["compile_gradients"]


@contextmanager
def cpu_fast_path(
    enabled: bool, *, fused_upsampling: bool | None = None, compile_gradients: bool = False
) -> Iterator[None]:
    """Switch the CPU policy inside the block: ``False`` runs the plain NCHW eager path of old.

    For benchmarks and exactness tests that compare the paths side by side in one process (a
    process-wide switch: do not use it while another thread runs a model). ``fused_upsampling``
    (default: ``enabled``) sets the decoder fusion alone, to measure it apart from ``channels_last``;
    ``compile_gradients=True`` lets saliency compile on the CPU (see :func:`compiles_gradients`), to
    measure what it would cost.
    A model prepared inside the block is converted to the block's policy; prepare it again afterwards
    to convert it back.
    """
    previous = dict(_POLICY)
    _POLICY["channels_last"] = bool(enabled)
    _POLICY["fused_upsampling"] = bool(enabled if fused_upsampling is None else fused_upsampling)
    _POLICY["compile_gradients"] = bool(compile_gradients)
    try:
        yield
    finally:
        _POLICY.update(previous)


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

    The module itself is changed in place (like ``Module.to``), and the blocks of a U-Net decoder switch
    to (or from) :mod:`.fused_upsampling` by the device policy: its parameters keep their identity, so
    an optimiser built before or after still updates them, and its ``state_dict`` loads anywhere
    (a state dict is copied into whatever layout the receiving parameters have). With ``compile=True``
    the return value is ``torch.compile(model)``, a wrapper that shares the module's parameters and
    training flags; call :func:`unwrap` on it to reach the module. Compiling the same module again is
    cheap: torch caches the compiled code per module and input shape.
    """
    device = torch.device(device)
    layout = torch.channels_last if uses_channels_last(device) else torch.contiguous_format
    model.to(device=device, memory_format=layout)  # no copy for a parameter already in place
    use_fused_upsampling(model, uses_fused_upsampling(device))
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


def _eval_affine(bn: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, shift)`` of an eval batch norm: the CPU kernel's own ``alpha`` and ``beta``."""
    scale = torch.rsqrt(bn["running_var"] + bn["eps"])
    if bn["weight"] is not None:
        scale = scale * bn["weight"]
    shift = -bn["running_mean"] * scale
    if bn["bias"] is not None:
        shift = shift + bn["bias"]
    return scale, shift


def _eval_batch_norm_args(args: tuple, kwargs: dict) -> dict[str, Any] | None:
    """The arguments of an ``F.batch_norm`` call in eval mode on a 4-D input, else None (left to torch)."""
    bound = _BATCH_NORM_SIGNATURE.bind(*args, **kwargs)
    bound.apply_defaults()
    a = bound.arguments
    if a["training"] or a["running_mean"] is None or a["running_var"] is None or a["input"].ndim != 4:
        return None
    return a


# In-place activations whose backward needs their *input*: under autograd, torch clones the input first
# (a full extra copy of every activation: 32 clones, 5 % of a Lite0 saliency pass). Out of place the
# input is simply kept. ReLU and leaky ReLU are not here: their in-place backward uses the output.
_INPLACE_NEEDS_INPUT = {F.hardtanh, F.relu6, F.silu, F.hardswish, F.hardsigmoid, F.mish}
class _GradientFriendlyForward(TorchFunctionMode):
    """Eval batch norms as one ``addcmul``; in-place activations that need their input run out of place."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func is F.batch_norm:
            bn = _eval_batch_norm_args(args, kwargs)
            if bn is not None:
                # The CPU kernel computes exactly this: alpha = w / sqrt(var + eps), beta = b - mean * alpha.
                scale, shift = _eval_affine(bn)
                return torch.addcmul(shift.view(1, -1, 1, 1), bn["input"], scale.view(1, -1, 1, 1))
        elif func in _INPLACE_NEEDS_INPUT and kwargs.get("inplace", False) and torch.is_grad_enabled():
            x = args[0] if args else kwargs["input"]
            if x.requires_grad:
                return func(*args, **{**kwargs, "inplace": False})
        return func(*args, **kwargs)


_BATCH_NORM_SIGNATURE = inspect.signature(F.batch_norm)


def gradient_friendly_forward(device: str | torch.device) -> Any:
    """A context in which eval-mode models run their cheapest exact forward and backward on ``device``.

    On the CPU fast path (:func:`uses_channels_last`):

    * **Eval batch norms as one ``addcmul``.** PyTorch's ``native_batch_norm_backward`` on
      ``channels_last`` tensors is slow on the CPU (in a saliency pass of the Lite0 U-Net it took more
      time than all convolution backward passes together); as ``addcmul`` its input gradient is one
      multiplication, with the same ``scale`` and ``shift`` the CPU kernel computes.
    * **In-place activations whose backward needs their input** (ReLU6/hardtanh, SiLU, hard swish, ...)
      run out of place while autograd records: in place, torch clones their input first.

    Training-mode batch norms (batch statistics) are left alone. The mode is per thread, so a GUI worker
    using it does not affect the event loop's thread. Elsewhere it is a no-op.
    """
    return _GradientFriendlyForward() if uses_channels_last(device) else nullcontext()


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
