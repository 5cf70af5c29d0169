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
* **Saliency's forward and backward** (:func:`gradient_friendly_forward`): on the CPU, eval batch norms
  folded into the convolution before them (or one ``addcmul`` where they cannot fold) and in-place
  activations run out of place while autograd records, so no batch-norm pass and no activation clone
  remain in a saliency pass. Exact in real arithmetic; float32 rounding only.
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
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from ..errors import ConfigError

AMP_CHOICES = (True, False, "bf16", "fp16")


_CHANNELS_LAST = {"enabled": True}
_FOLDING = {"enabled": True}


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


@contextmanager
def batch_norm_folding(enabled: bool) -> Iterator[None]:
    """Switch folding of eval batch norms (:func:`gradient_friendly_forward`) inside the block.

    For benchmarks that measure what folding buys, side by side (process-wide, like :func:`channels_last`).
    """
    previous = _FOLDING["enabled"]
    _FOLDING["enabled"] = bool(enabled)
    try:
        yield
    finally:
        _FOLDING["enabled"] = previous


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
# Tensor functions that only read metadata: not a "use" of a convolution's output when recording folds.
_METADATA = {"dim", "size", "stride", "numel", "is_contiguous", "__len__", "is_floating_point", "__get__",
             "get_device", "element_size", "is_complex", "data_ptr"}


class _Recorder:
    """Which convolutions feed exactly one eval batch norm and nothing else: the foldable pairs.

    A convolution's output may only be read by its batch norm (no residual from before the norm, no
    hook reading it through a torch function), each weight may serve one convolution call site, each
    batch norm one convolution, in every call seen. Anything else is left unfolded.
    """

    def __init__(self) -> None:
        self.outputs: dict[int, tuple[weakref.ref, int]] = {}  # id(conv output) -> (ref, id(weight))
        self.uses: dict[int, int] = {}  # id(conv output) -> torch calls reading it
        self.convs: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = {}  # id(weight) -> (weight, bias)
        self.norms: dict[int, dict[str, Any]] = {}  # id(running_mean) -> the batch norm's arguments
        self.pairs: dict[int, set[int]] = {}  # id(weight) -> ids of the batch norms it fed
        self.fed_by: dict[int, set[int]] = {}  # id(running_mean) -> ids of the weights that fed it
        self.bad: set[int] = set()  # ids of weights or running means that cannot fold

    def _close(self, key: int) -> None:
        _, weight = self.outputs.pop(key)
        if self.uses.pop(key, 0) != 1:
            self.bad.add(weight)  # read by something besides its batch norm (or by nothing)

    def _live(self, t: torch.Tensor) -> bool:
        entry = self.outputs.get(id(t))
        if entry is None:
            return False
        if entry[0]() is t:
            return True
        self._close(id(t))  # the id belongs to a dead tensor: finish its record
        return False

    def seen(self, func: Any, tensors: list[torch.Tensor], result: Any) -> None:
        """Count reads of recorded convolution outputs by ``func``."""
        if getattr(func, "__name__", "") in _METADATA and not any(
            isinstance(r, torch.Tensor) for r in tree_flatten(result)[0]
        ):
            return
        for t in tensors:
            if self._live(t):
                self.uses[id(t)] = self.uses.get(id(t), 0) + 1

    def conv(self, out: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        key = id(weight)
        if key in self.convs and self.convs[key][1] is not bias:
            self.bad.add(key)
        self.convs[key] = (weight, bias)
        if self._live(out):
            self._close(id(out))
        self.outputs[id(out)] = (weakref.ref(out), key)

    def norm(self, bn: dict[str, Any]) -> None:
        key = id(bn["running_mean"])
        self.norms[key] = bn
        x = bn["input"]
        if not self._live(x):
            self.bad.add(key)  # its input is no convolution's fresh output
            return
        self.uses[id(x)] = self.uses.get(id(x), 0) + 1
        weight = self.outputs[id(x)][1]
        self.pairs.setdefault(weight, set()).add(key)
        self.fed_by.setdefault(key, set()).add(weight)

    def folds(self) -> tuple[dict[int, tuple[torch.Tensor, torch.Tensor]], set[int]]:
        """``({id(weight): (folded weight, folded bias)}, {id(running_mean) of the folded norms})``."""
        for key in list(self.outputs):
            self._close(key)
        folded: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        skipped: set[int] = set()
        for weight_id, norms in self.pairs.items():
            if weight_id in self.bad or len(norms) != 1:
                continue
            (norm_id,) = norms
            if norm_id in self.bad or self.fed_by[norm_id] != {weight_id}:
                continue
            weight, bias = self.convs[weight_id]
            with torch.no_grad():
                scale, shift = _eval_affine(self.norms[norm_id])
                layout = (torch.channels_last if weight.is_contiguous(memory_format=torch.channels_last)
                          and not weight.is_contiguous() else torch.contiguous_format)
                w = (weight * scale.view(-1, 1, 1, 1)).contiguous(memory_format=layout)
                b = shift if bias is None else torch.addcmul(shift, bias, scale)
            folded[weight_id] = (w, b)
            skipped.add(norm_id)
        return folded, skipped


class _GradientFriendlyForward(TorchFunctionMode):
    """Eval batch norms folded into their convolution or as ``addcmul``; in-place activations out of place.

    ``folds`` maps ``id(conv weight)`` to the folded ``(weight, bias)`` and ``skipped`` holds the
    ``id(running_mean)`` of the batch norms folded away (they return their input). ``recorder`` (the
    probe pass) notes which pairs may fold.
    """

    def __init__(self, folds: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None,
                 skipped: set[int] | None = None, recorder: _Recorder | None = None) -> None:
        super().__init__()
        self.folds, self.skipped, self.recorder = folds or {}, skipped or set(), recorder

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        bn = _eval_batch_norm_args(args, kwargs) if func is F.batch_norm else None
        if self.recorder is not None and bn is not None:
            self.recorder.norm(bn)
        result = self._call(func, args, kwargs, bn)
        if self.recorder is not None:
            tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)
                       and (bn is None or t is not bn["input"])]  # a batch norm's input: counted by norm()
            self.recorder.seen(func, tensors, result)
            if func is F.conv2d and isinstance(result, torch.Tensor):
                bound = _CONV_SIGNATURE.bind(*args, **kwargs)
                self.recorder.conv(result, bound.arguments["weight"], bound.arguments.get("bias"))
        return result

    def _call(self, func: Any, args: tuple, kwargs: dict, bn: dict[str, Any] | None) -> Any:
        if func is F.conv2d and self.folds:
            bound = _CONV_SIGNATURE.bind(*args, **kwargs)
            fold = self.folds.get(id(bound.arguments["weight"]))
            if fold is not None:
                bound.arguments["weight"], bound.arguments["bias"] = fold
                return func(*bound.args, **bound.kwargs)
        elif func is F.batch_norm:
            if bn is not None:
                if id(bn["running_mean"]) in self.skipped:
                    return bn["input"]  # folded into the convolution before it
                # The CPU kernel computes exactly this: alpha = w / sqrt(var + eps), beta = b - mean * alpha.
                scale, shift = _eval_affine(bn)
                return torch.addcmul(shift.view(1, -1, 1, 1), bn["input"], scale.view(1, -1, 1, 1))
        elif func in _INPLACE_NEEDS_INPUT and kwargs.get("inplace", False) and torch.is_grad_enabled():
            x = args[0] if args else kwargs["input"]
            if x.requires_grad:
                return func(*args, **{**kwargs, "inplace": False})
        return func(*args, **kwargs)


_BATCH_NORM_SIGNATURE = inspect.signature(F.batch_norm)


def _conv_signature(input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
                    dilation: Any = 1, groups: Any = 1) -> None:
    """``F.conv2d``'s parameters (a builtin: no ``inspect.signature`` of its own)."""


_CONV_SIGNATURE = inspect.signature(_conv_signature)

# Folds per model, reused while no parameter or buffer changed (their versions and identities).
_FOLD_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _fingerprint(model: torch.nn.Module) -> tuple:
    state = list(model.parameters()) + list(model.buffers())
    return tuple((id(t), t._version, t.data_ptr()) for t in state)


def gradient_friendly_forward(
    model: torch.nn.Module | None, device: str | torch.device, probe: Callable[[], Any] | None = None
) -> Any:
    """A context in which eval-mode models run their cheapest exact forward and backward on ``device``.

    On the CPU fast path (:func:`uses_channels_last`):

    * **Batch norm folded into the convolution before it.** An eval batch norm is the per-channel affine
      map ``x * scale + shift``; when it reads a convolution's output and nothing else does, the
      convolution runs with weight ``w * scale`` and bias ``shift (+ b * scale)`` and the norm is skipped:
      no batch-norm pass forward or backward. Which pairs qualify is recorded once per model (and again
      after any parameter or buffer changed) by ``probe``, a call that runs the model once on a small
      input inside this mode. Without ``probe`` nothing is folded. Values move by float32 rounding only
      (``w * scale`` is rounded once per weight).
    * **Other eval batch norms as one ``addcmul``.** PyTorch's ``native_batch_norm_backward`` on
      ``channels_last`` tensors is slow on the CPU (in a saliency pass of the Lite0 U-Net it took more
      time than all convolution backward passes together); as ``addcmul`` its input gradient is one
      multiplication, with the same ``scale`` and ``shift`` the CPU kernel computes.
    * **In-place activations whose backward needs their input** (ReLU6/hardtanh, SiLU, hard swish, ...)
      run out of place while autograd records: in place, torch clones their input first.

    Training-mode batch norms (batch statistics) are left alone. The mode is per thread, so a GUI worker
    using it does not affect the event loop's thread. Do not use it where a hook reads a convolution's
    own output (Grad-CAM on a convolution): folded, that output already includes its batch norm; pass
    ``probe=None`` there.
    """
    if not uses_channels_last(device):
        return nullcontext()
    if model is None or probe is None or not _FOLDING["enabled"]:
        return _GradientFriendlyForward()
    key = _fingerprint(model)
    cached = _FOLD_CACHE.get(model)
    if cached is None or cached[0] != key:
        recorder = _Recorder()
        with torch.no_grad(), _GradientFriendlyForward(recorder=recorder):
            probe()
        cached = (key, *recorder.folds())
        _FOLD_CACHE[model] = cached
    return _GradientFriendlyForward(cached[1], cached[2])


def gradient_friendly_batch_norm(device: str | torch.device) -> Any:
    """:func:`gradient_friendly_forward` without folding: eval batch norms as ``addcmul`` on the CPU."""
    return gradient_friendly_forward(None, device)


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
