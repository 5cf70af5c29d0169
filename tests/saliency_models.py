"""Tiny real torch models for the saliency tests (no smp, no models.py): small, seeded, CPU."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def linear_1x1(weights: list[float], bias: float = 0.0) -> nn.Conv2d:
    """Binary model ``logit = sum_c w_c x_c + b`` (a 1x1 convolution)."""
    conv = nn.Conv2d(len(weights), 1, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(weights, dtype=torch.float32).view(1, -1, 1, 1))
        conv.bias.fill_(bias)
    return conv


def linear_1x1_multi(weights: np.ndarray, bias: np.ndarray) -> nn.Conv2d:
    """Multi-class pointwise model: ``weights`` ``(C, K)``, ``bias`` ``(C,)``."""
    conv = nn.Conv2d(weights.shape[1], weights.shape[0], 1)
    with torch.no_grad():
        conv.weight.copy_(torch.as_tensor(weights, dtype=torch.float32)[:, :, None, None])
        conv.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    return conv


def uniform_first_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """Make a conv's weight equal across input channels: the model becomes z-reversal symmetric."""
    with torch.no_grad():
        conv.weight.copy_(conv.weight[:, :1].expand_as(conv.weight))
    return conv


class SmallCNN(nn.Sequential):
    """Stride-1 two-layer CNN, receptive-field radius 2: translation equivariant, zero padded."""

    def __init__(self, in_channels: int = 3, classes: int = 1, symmetric: bool = False, seed: int = 0):
        torch.manual_seed(seed)
        super().__init__(
            nn.Conv2d(in_channels, 6, 3, padding=1), nn.Tanh(), nn.Conv2d(6, classes, 3, padding=1)
        )
        if symmetric:
            uniform_first_conv(self[0])


class TinyEncoder(nn.Module):
    """smp-like encoder: returns the list of features ``[x, stride-2 map, stride-4 map]``."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(nn.Conv2d(in_channels, 4, 3, stride=2, padding=1), nn.ReLU())
        self.stage2 = nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f1 = self.stage1(x)
        return [x, f1, self.stage2(f1)]


class TinyEncoderDecoder(nn.Module):
    """Encoder-decoder with an ``encoder`` attribute (Grad-CAM's default layer), batch-norm included."""

    def __init__(self, in_channels: int = 3, classes: int = 1, symmetric: bool = False, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.encoder = TinyEncoder(in_channels)
        self.decoder = nn.Sequential(nn.Conv2d(8 + 4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.head = nn.Conv2d(4, classes, 3, padding=1)
        if symmetric:
            uniform_first_conv(self.encoder.stage1[0])
        with torch.no_grad():  # non-trivial running statistics, so eval mode matters
            self.decoder[1].running_mean.uniform_(-0.1, 0.1)
            self.decoder[1].running_var.uniform_(0.5, 1.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, f1, f2 = self.encoder(x)
        up = nn.functional.interpolate(f2, scale_factor=2, mode="nearest")
        y = self.decoder(torch.cat([up, f1], dim=1))
        return self.head(nn.functional.interpolate(y, scale_factor=2, mode="nearest"))


def random_window(k: int = 3, h: int = 32, w: int = 32, seed: int = 0) -> np.ndarray:
    """A seeded float32 ``(K, H, W)`` window in [0, 1]."""
    return np.random.default_rng(seed).random((k, h, w), dtype=np.float32)


def sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


# ------------------------------------------------------------------------- float32 against float64
EPS32 = float(np.finfo(np.float32).eps)
# Rounded float32 steps behind one pixel's gradient of a pointwise model: K products and K additions
# for the logit, the exp and division of the sigmoid (or softmax: C exps, C additions, a division), and
# as many steps again backwards; 16 covers K, C <= 3 with room to spare.
POINTWISE_TERMS = 16


def assert_float32_close(got: np.ndarray, exact: np.ndarray, magnitude: np.ndarray | float, terms: int) -> None:
    """``got`` (computed in float32) is within the rounding bound of the float64 ``exact``.

    A float32 result built from ``terms`` rounded operations (products, additions, the exp of a
    sigmoid or softmax, the steps of the backward pass) on values whose absolute sizes add up to
    ``magnitude`` differs from the exact value by at most ``terms * eps32 * magnitude`` (the standard
    first-order bound: each rounding changes a partial result by at most eps/2 of its size). The bound
    holds on every machine and BLAS, unlike a relative tolerance, which fails wherever the exact value
    is a small difference of large terms (a softmax gradient ``p_t (w_t - sum_j p_j w_j)``, say).
    """
    error = np.abs(np.asarray(got, np.float64) - exact)
    bound = terms * EPS32 * np.broadcast_to(np.asarray(magnitude, np.float64), error.shape)
    worst = int(np.argmax(error - bound))
    assert (error <= bound).all(), (
        f"{int((error > bound).sum())} of {error.size} elements exceed the float32 bound; worst: error "
        f"{error.flat[worst]:.3g} > bound {bound.flat[worst]:.3g} (exact {np.ravel(exact)[worst]:.6g})"
    )


def products_per_output(model: nn.Module) -> int:
    """Products a forward and a backward pass accumulate for one output value: twice the summed fan-in.

    The fan-in of a convolution is ``in_channels * kh * kw``; other layers are pointwise.
    """
    fan_in = sum(m.in_channels * m.kernel_size[0] * m.kernel_size[1] for m in model.modules()
                 if isinstance(m, nn.Conv2d))
    return 2 * fan_in


def assert_mirror_close(flipped: np.ndarray, got: np.ndarray, model: nn.Module) -> None:
    """The maps of the reversed window equal the reversed maps, up to float32 rounding.

    Both runs compute the same real numbers, but reversing the window reverses the order of the channel
    sums in the first convolution, so each run rounds on its own: each map value is off by at most
    :func:`products_per_output` roundings of eps32 relative to the largest term, bounded here by the
    largest map value (these small nets have no large cancelling terms), twice for the two runs.
    """
    bound = 2 * products_per_output(model) * EPS32 * float(np.abs(got).max())
    error = np.abs(flipped.astype(np.float64) - got[::-1])
    assert error.max() <= bound, f"{int((error > bound).sum())} values differ by more than {bound:.3g}: " \
                                 f"max {error.max():.3g}"
