"""The device policy of fast_path: layout, compile, precision; and that the fast paths stay exact.

Exactness: each prediction, saliency and training path is run twice on the same tiny seeded model and
input, once on the plain NCHW eager float32 path (``cpu_fast_path(False)``, what the package did before
the fast path) and once on the default fast path, and compared with the tolerances the project promises:
probabilities within 1e-5 absolute, labels identical except where a probability lies within 1e-5 of the
threshold, saliency maps within 1e-5 of the reference's largest value.

Why those tolerances hold on any machine: ``channels_last`` changes only the order in which a
convolution adds its ``n = K kh kw`` products (oneDNN's NHWC kernels block over channels instead of over
pixels). Reordering a float32 sum moves it by about ``sqrt(n) u S`` (``u = 2**-24``, ``S`` the sum of the
terms' magnitudes; at worst ``n u S``). In these models ``n <= 108`` and ``S <= 10`` at every layer (inputs
in [0, 1], default-initialised weights of size about ``1 / sqrt(n)``), so each layer moves its outputs by
about 1e-6, and the three to four layers, each with gain below 1, by a few 1e-6 in the logits; a
sigmoid's slope is at most 1/4. That is well under 1e-5 on every BLAS that rounds its additions, while
a layout bug (channels read in the wrong order, a transposed tile) changes outputs by 1e-2 or more: the
tests check that too, so they can fail.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_channelbias.errors import ConfigError
from napari_channelbias.saliency.compute import compute_saliency
from napari_channelbias.saliency.registry import SALIENCY_METHODS
from napari_channelbias.segmentation import fast_path
from napari_channelbias.segmentation.fast_path import (
    autocast_dtype,
    cpu_bf16_support,
    cpu_fast_path,
    gradient_friendly_forward,
    prepare_input,
    prepare_model,
    unwrap,
    uses_channels_last,
)
from napari_channelbias.segmentation.prediction import predict_slice
from saliency_models import TinyEncoderDecoder, random_window

TOL = 1e-5


def _model(seed: int = 0) -> TinyEncoderDecoder:
    return TinyEncoderDecoder(seed=seed).eval()


def _is_channels_last(model: torch.nn.Module) -> bool:
    weights = [p for p in model.parameters() if p.ndim == 4]
    return bool(weights) and all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)


# ------------------------------------------------------------------------------------------- policy
def test_cpu_models_and_inputs_go_channels_last_in_place() -> None:
    model = _model()
    params = list(model.parameters())
    out = prepare_model(model, "cpu")
    assert out is model and list(model.parameters()) == params  # same Parameter objects: optimisers keep working
    assert uses_channels_last("cpu") and _is_channels_last(model)
    x = torch.rand(2, 3, 8, 8)
    y = prepare_input(x)
    assert y.is_contiguous(memory_format=torch.channels_last) and torch.equal(x, y)
    assert prepare_input(y) is y  # already in place: no copy
    assert prepare_input(torch.rand(3, 8, 8)).is_contiguous()  # only 4-D batches change
    with cpu_fast_path(False):
        assert not uses_channels_last("cpu")
        prepare_model(model, "cpu")
        assert not _is_channels_last(model) and prepare_input(x) is x
    assert uses_channels_last("cpu")
    # A state dict of a channels_last model loads into a plain one with the same values.
    plain = _model(seed=1)
    plain.load_state_dict(model.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), model.state_dict().values(), strict=True))


def test_amp_never_gives_emulated_bf16_on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    assert autocast_dtype("cpu", True) is None  # CPU "amp on" keeps float32: exact and fast
    assert autocast_dtype("cpu", False) is None
    with pytest.raises(ConfigError, match="fp16"):
        autocast_dtype("cpu", "fp16")
    with pytest.raises(ConfigError, match="amp must be"):
        autocast_dtype("cpu", "half")
    monkeypatch.setattr(fast_path, "cpu_bf16_support", lambda: None)  # a CPU without AVX512-BF16/AMX
    with pytest.raises(ConfigError, match="no native bfloat16"):
        autocast_dtype("cpu", "bf16")
    monkeypatch.setattr(fast_path, "cpu_bf16_support", lambda: "amx")
    assert autocast_dtype("cpu", "bf16") is torch.bfloat16


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="reads the Linux CPU flags")
def test_bf16_detection_agrees_with_the_cpu_flags() -> None:
    flags = set(Path("/proc/cpuinfo").read_text().split())
    expected = "amx" if "amx_tile" in flags else "avx512_bf16" if "avx512_bf16" in flags else None
    assert cpu_bf16_support() == expected


def test_a_refused_precision_fails_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_path, "cpu_bf16_support", lambda: None)
    with pytest.raises(ConfigError, match="no native bfloat16"):
        predict_slice(_model(), random_window(h=64, w=64), device="cpu", amp="bf16")


def test_compile_cache_lies_under_the_user_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert fast_path.compile_cache_dir() == tmp_path / "napari-channelbias" / "torch-compile"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert fast_path.compile_cache_dir() == tmp_path / "mine"


# ------------------------------------------------------------------------------------ exactness
def _predict(model: torch.nn.Module, window: np.ndarray, fast: bool, **kwargs: object) -> np.ndarray:
    with cpu_fast_path(fast):
        return predict_slice(model, window, tile=64, overlap=16, device="cpu", **kwargs)


def test_prediction_matches_the_eager_float32_path() -> None:
    window = random_window(h=100, w=90, seed=3)  # tiled: 64-pixel tiles, padded edges
    model = _model()
    old = _predict(model, window, fast=False)
    assert not _is_channels_last(model)
    new = _predict(model, window, fast=True)
    assert _is_channels_last(model)  # the fast path really ran
    assert np.abs(new - old).max() <= TOL
    near = np.abs(old - 0.5) <= TOL
    assert ((new > 0.5) == (old > 0.5))[~near].all()
    # The comparison can fail: the same model with its input channels swapped is far off.
    swapped = _predict(model, window[::-1].copy(), fast=True)
    assert np.abs(swapped - old).max() > 100 * TOL


_METHOD_RUNS = sorted(SALIENCY_METHODS) + ["full-output-points/chunk=3", "foreground-points/chunk=3"]


@pytest.mark.parametrize("run", _METHOD_RUNS)
def test_every_saliency_method_matches_the_eager_float32_path(run: str) -> None:
    method, _, chunk = run.partition("/chunk=")
    window = random_window(h=64, w=64, seed=5)
    options: dict = {"points": 12} if method.endswith("points") else {}
    if chunk:
        options["chunk"] = int(chunk)  # the batched path: replicated rows
    model = _model(seed=5)  # a seed whose Grad-CAM and foreground maps are not all zero
    with cpu_fast_path(False):
        old = compute_saliency(model, window, method, device="cpu", **options)
    with cpu_fast_path(True):
        new = compute_saliency(model, window, method, device="cpu", **options)
    assert _is_channels_last(model)
    scale = np.abs(old).max()
    assert scale > 0
    assert np.abs(new - old).max() <= TOL * scale


def _small_unet() -> torch.nn.Module:
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    return smp.Unet("resnet18", encoder_weights=None, encoder_depth=3, decoder_channels=(16, 8, 4),
                    in_channels=3, classes=1).eval()


# Occlusion is left out: its maps are differences of two sums over all 4096 probabilities of the slice,
# so its bound is the prediction's (checked here) times 2 H W, not 1e-5 of the map.
@pytest.mark.parametrize("method", ["full-output", "foreground", "full-output-points", "gradcam"])
def test_a_unet_decoder_fuses_its_upsampling_and_still_matches_the_eager_path(method: str) -> None:
    from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoderBlock

    from napari_channelbias.segmentation.fused_upsampling import FusedUnetDecoderBlock

    model, window = _small_unet(), random_window(h=64, w=64, seed=7)
    options: dict = {"points": 12, "chunk": 4} if method.endswith("points") else {}
    old_p = _predict(model, window, fast=False)
    with cpu_fast_path(False):
        old_s = compute_saliency(model, window, method, device="cpu", **options)
    assert all(type(b) is UnetDecoderBlock for b in model.decoder.blocks)  # the old path: smp's blocks
    new_p = _predict(model, window, fast=True)
    with cpu_fast_path(True):
        new_s = compute_saliency(model, window, method, device="cpu", **options)
    assert all(type(b) is FusedUnetDecoderBlock for b in model.decoder.blocks)
    assert np.abs(new_p - old_p).max() <= TOL
    scale = np.abs(old_s).max()
    assert scale > 0 and np.abs(new_s - old_s).max() <= TOL * scale
    with cpu_fast_path(True, fused_upsampling=False):  # the fusion can be measured apart
        prepare_model(model, "cpu")
        assert _is_channels_last(model) and type(model.decoder.blocks[0]) is UnetDecoderBlock


def test_a_training_step_matches_the_eager_float32_path(tmp_path: Path) -> None:
    from napari_channelbias.models.spec import ModelSpec
    from napari_channelbias.segmentation.training import TrainConfig, train

    rng = np.random.default_rng(0)
    image = rng.random((6, 64, 64), dtype=np.float32)
    labels = (image > 0.5).astype(np.uint8)
    config = TrainConfig(steps=1, batch_size=2, patch_size=64, val_slices="none", device="cpu")
    losses = {}
    for fast in (False, True):
        with cpu_fast_path(fast):
            losses[fast] = train(image, labels, ModelSpec(init="random"), config, tmp_path / f"{fast}.pt").losses
    # Same seed, same batch, same initial weights: the first loss differs only by summation order.
    assert abs(losses[True][0] - losses[False][0]) <= TOL * abs(losses[False][0])


@pytest.mark.slow
def test_compiled_prediction_and_saliency_match_eager(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    torch._dynamo.reset()
    window = random_window(h=64, w=64, seed=7)
    model = _model(seed=4)
    eager_probs = predict_slice(copy.deepcopy(model), window, device="cpu")
    compiled = prepare_model(model, "cpu", compile=True)
    assert unwrap(compiled) is model
    probs = predict_slice(model, window, device="cpu", compile=True)
    assert np.abs(probs - eager_probs).max() <= TOL
    eager_maps = compute_saliency(copy.deepcopy(model), window, "full-output", device="cpu")
    with cpu_fast_path(True, compile_gradients=True):  # what compiling saliency on the CPU would give
        maps = compute_saliency(model, window, "full-output", device="cpu", compile=True)
    assert np.abs(maps - eager_maps).max() <= TOL * np.abs(eager_maps).max()
    assert any(os.scandir(tmp_path / "inductor"))  # the graphs went to the cache for the next run
    torch._dynamo.reset()


def test_saliency_stays_eager_on_the_cpu_and_says_so() -> None:
    from napari_channelbias.saliency.base import SaliencyWarning

    assert not fast_path.compiles_gradients("cpu") and fast_path.compiles_gradients("cuda")
    window, model = random_window(h=64, w=64, seed=7), _model(seed=4)
    eager = compute_saliency(model, window, "full-output", device="cpu")
    dynamo_before = torch._dynamo.utils.counters["frames"]["total"]
    with pytest.warns(SaliencyWarning, match="without torch.compile on the CPU"):
        asked = compute_saliency(model, window, "full-output", device="cpu", compile=True)
    assert torch._dynamo.utils.counters["frames"]["total"] == dynamo_before  # nothing was compiled
    assert np.array_equal(asked, eager)  # the eager fast path, bit for bit


def test_eval_batch_norm_as_multiply_add_keeps_values_and_gradients() -> None:
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(4).eval()
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2), bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    x = torch.rand(2, 4, 5, 6, requires_grad=True)
    seen = torch.rand(2, 4, 5, 6)
    (ref,) = torch.autograd.grad((bn(x) * seen).sum(), x)
    with gradient_friendly_forward("cpu"):
        y = bn(x)
        (got,) = torch.autograd.grad((y * seen).sum(), x)
    # One multiply-add per value instead of the kernel's own: at most a rounding or two apart.
    assert torch.allclose(y, bn(x), rtol=0, atol=4 * torch.finfo(torch.float32).eps * float(y.abs().max()))
    assert torch.allclose(got, ref, rtol=4 * torch.finfo(torch.float32).eps, atol=0)
    assert y.grad_fn.name() == "AddcmulBackward0"  # the cheap backward really is used
    bn.train()  # batch statistics: left to torch
    with gradient_friendly_forward("cpu"):
        assert bn(x).grad_fn.name() != "AddcmulBackward0"
    with cpu_fast_path(False), gradient_friendly_forward("cpu"):  # the plain path stays plain
        assert bn.eval()(x).grad_fn.name() != "AddcmulBackward0"


# ------------------------------------------------------------ activations


def test_inplace_activations_run_out_of_place_only_under_autograd() -> None:
    import torch.nn.functional as F

    x = torch.rand(2, 3, 4, 4, requires_grad=True)
    with gradient_friendly_forward("cpu"):
        y = x * 10
        before = y.clone()
        z = F.relu6(y, inplace=True)
        assert z is not y and torch.equal(y, before)  # the input is kept, not cloned by autograd
        assert torch.equal(z, before.clamp(0, 6))
        with torch.no_grad():
            y = x * 10
            assert F.relu6(y, inplace=True) is y  # no graph: in place as asked
