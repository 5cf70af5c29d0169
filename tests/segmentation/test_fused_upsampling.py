"""The fused decoder block equals smp's: hand-computed kernel taps, float64 identities, fallbacks, hooks."""

from __future__ import annotations

import copy

import pytest
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoderBlock

from napari_channelbias.segmentation.fused_upsampling import (
    FusedUnetDecoderBlock,
    upsampling_kernel,
    use_fused_upsampling,
)


def _block(in_ch: int = 6, skip_ch: int = 4, out_ch: int = 5, seed: int = 0, **kwargs) -> UnetDecoderBlock:
    torch.manual_seed(seed)
    block = UnetDecoderBlock(in_ch, skip_ch, out_ch, **kwargs).double().eval()
    with torch.no_grad():  # non-trivial eval batch norms
        for bn in (block.conv1[1], block.conv2[1]):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
    return block


def _fused(block: UnetDecoderBlock) -> UnetDecoderBlock:
    fused = copy.deepcopy(block)
    assert use_fused_upsampling(fused, True) == 1 and type(fused) is FusedUnetDecoderBlock
    return fused


def test_kernel_taps_are_the_hand_computed_sums():
    # w[r, c] = 10^(3 - r) * (c + 1): every sum of taps is readable digit by digit
    w = torch.tensor([[1000.0, 2000.0, 3000.0], [100.0, 200.0, 300.0], [10.0, 20.0, 30.0]]).view(1, 1, 3, 3)
    k = upsampling_kernel(w)[0, 0]
    rows = [[2], [1, 2], [0, 1], [0]]  # tap p of the transposed kernel takes these 3 x 3 rows (and columns)
    for p in range(4):
        for q in range(4):
            assert k[p, q] == sum(w[0, 0, r, c] for r in rows[p] for c in rows[q])
    assert k[0, 0] == 30.0 and k[3, 3] == 1000.0 and k[1, 2] == 100.0 + 200.0 + 10.0 + 20.0
    assert upsampling_kernel(torch.zeros(5, 7, 3, 3)).shape == (7, 5, 4, 4)  # (in, out, 4, 4)


@pytest.mark.parametrize("skip_ch", [0, 4])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_forward_and_all_gradients_equal_smp_in_float64(skip_ch, layout):
    block = _block(skip_ch=skip_ch).to(memory_format=layout)
    fused = _fused(block).to(memory_format=layout)
    torch.manual_seed(1)
    x = torch.randn(2, 6, 7, 9, dtype=torch.float64).contiguous(memory_format=layout)
    skip = torch.randn(2, skip_ch, 14, 18, dtype=torch.float64).contiguous(memory_format=layout)
    outs, grads = [], []
    for model in (block, fused):
        xs = x.clone().requires_grad_(True)
        ss = skip.clone().requires_grad_(True) if skip_ch else None
        y = model(xs, 14, 18, ss)
        weight = model.conv1[0].weight
        g = torch.autograd.grad((y * torch.linspace(-1, 2, y.numel(), dtype=y.dtype).view_as(y)).sum(),
                                [xs, weight] + ([ss] if skip_ch else []))
        outs.append(y)
        grads.append(g)
    assert outs[0].shape == outs[1].shape == (2, 5, 14, 18)
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-12, atol=1e-12)
    for a, b in zip(grads[0], grads[1], strict=True):  # input, conv1 weight (training), skip
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)


def test_float32_differs_from_smp_by_rounding_only():
    block = _block().float()
    fused = _fused(block)
    torch.manual_seed(2)
    x, skip = torch.randn(1, 6, 16, 16), torch.randn(1, 4, 32, 32)
    with torch.no_grad():
        a, b = block(x, 32, 32, skip), fused(x, 32, 32, skip)
    assert 0 < (a - b).abs().max() <= 1e-5 * a.abs().max()  # another summation order, nothing more


def test_shapes_it_cannot_fuse_run_smp_forward_bit_for_bit():
    block = _block()
    torch.manual_seed(3)
    x = torch.randn(1, 6, 5, 5, dtype=torch.float64)
    odd = torch.randn(1, 4, 11, 11, dtype=torch.float64)  # 5 -> 11 is not a doubling
    assert torch.equal(_fused(block)(x, 11, 11, odd), block(x, 11, 11, odd))
    scse = _block(20, 12, 16, attention_type="scse")  # attention between the concatenation and the conv
    wide, wide_skip = torch.randn(1, 20, 5, 5, dtype=torch.float64), torch.randn(1, 12, 10, 10, dtype=torch.float64)
    assert torch.equal(_fused(scse)(wide, 10, 10, wide_skip), scse(wide, 10, 10, wide_skip))
    skip = torch.randn(1, 4, 10, 10, dtype=torch.float64)
    bilinear = _block(interpolation_mode="bilinear")
    assert torch.equal(_fused(bilinear)(x, 10, 10, skip), bilinear(x, 10, 10, skip))


def test_a_hook_on_the_first_convolution_still_fires():
    # A hook on conv1 or its convolution: the fused path never calls them, so the block runs smp's forward
    block = _block()
    x, skip = torch.randn(1, 6, 4, 4, dtype=torch.float64), torch.randn(1, 4, 8, 8, dtype=torch.float64)
    for hooked in ("conv1", "conv1.0"):
        fused = _fused(block)
        seen: list = []
        fused.get_submodule(hooked).register_forward_hook(lambda module, args, out, seen=seen: seen.append(1))
        assert torch.equal(fused(x, 8, 8, skip), block(x, 8, 8, skip)) and len(seen) == 1


def test_a_hook_on_the_activation_sees_conv1s_output_on_the_fused_path():
    # ProtoSeg reads conv1's output at its activation (conv1.2): that hook fires with fusion on
    block = _block()
    fused = _fused(block)
    x, skip = torch.randn(1, 6, 4, 4, dtype=torch.float64), torch.randn(1, 4, 8, 8, dtype=torch.float64)
    seen, reference = [], []
    fused.conv1[2].register_forward_hook(lambda module, args, out: seen.append(out.clone()))
    block.conv1.register_forward_hook(lambda module, args, out: reference.append(out.clone()))
    calls = []
    fused.conv1[0].forward = lambda *a: calls.append(1)  # would show if the fused path fell back to smp's
    out = fused(x, 8, 8, skip)
    assert not calls and len(seen) == 1  # fused: the convolution module was never called
    torch.testing.assert_close(out, block(x, 8, 8, skip), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(seen[0], reference[0], rtol=1e-12, atol=1e-12)


def test_cached_kernel_follows_weight_changes_and_serves_autograd_after_inference_mode():
    block = _block().float()
    fused = _fused(block)
    x, skip = torch.randn(1, 6, 4, 4), torch.randn(1, 4, 8, 8)
    for p in fused.parameters():
        p.requires_grad_(False)
    with torch.inference_mode():  # prediction builds the cache first
        fused(x, 8, 8, skip)
    with torch.no_grad():
        for model in (block, fused):  # an optimiser step or load_state_dict: in place
            model.conv1[0].weight.mul_(-2.0)
    xg = x.clone().requires_grad_(True)  # then a saliency pass differentiates through the cached kernel
    (g_fused,) = torch.autograd.grad(fused(xg, 8, 8, skip).sum(), xg)
    xr = x.clone().requires_grad_(True)
    (g_smp,) = torch.autograd.grad(block(xr, 8, 8, skip).sum(), xr)
    torch.testing.assert_close(g_fused, g_smp, rtol=1e-5, atol=1e-5 * float(g_smp.abs().max()))


def test_switching_a_unet_keeps_its_state_dict_and_switches_back():
    torch.manual_seed(0)
    model = smp.Unet("resnet18", encoder_weights=None, encoder_depth=3, decoder_channels=(16, 8, 4),
                     in_channels=3, classes=1).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        plain = model(x)
        assert use_fused_upsampling(model, True) == 3
        fused = model(x)
    assert all(type(b) is FusedUnetDecoderBlock for b in model.decoder.blocks)
    assert model.state_dict().keys() == before.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)
    assert use_fused_upsampling(model, False) == 3
    assert all(type(b) is UnetDecoderBlock for b in model.decoder.blocks)
    assert use_fused_upsampling(torch.nn.Conv2d(1, 1, 1), True) == 0  # nothing to fuse: untouched


def test_transposed_convolution_identity_on_a_single_channel_by_hand():
    # nearest upsampling of [[a, b]] then a 3 x 3 box filter: each output sums the upsampled neighbours
    x = torch.tensor([[[[1.0, 10.0]]]])
    w = torch.ones(1, 1, 3, 3)
    expected = F.conv2d(F.interpolate(x, scale_factor=2, mode="nearest"), w, padding=1)
    # row 0 of the upsampled map is [1, 1, 10, 10], as is row 1; rows -1 and 2 are padding
    assert expected[0, 0, 0].tolist() == [4.0, 24.0, 42.0, 40.0]
    assert F.conv_transpose2d(x, upsampling_kernel(w), stride=2, padding=1)[0, 0].tolist() == \
        expected[0, 0].tolist()
