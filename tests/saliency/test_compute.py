"""``compute_saliency``: every registered method's contract, symmetry, target choice and tiling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from napari_channelbias.errors import ConfigError
from napari_channelbias.saliency.compute import compute_saliency
from saliency_models import SmallCNN, TinyEncoderDecoder, assert_mirror_close, random_window

METHODS = ["full-output", "foreground", "full-output-points", "foreground-points", "occlusion", "gradcam",
           "gradcam++"]
OPTIONS = {"points": 15, "seed": 3, "patch": 8}


class TwoClass(nn.Module):
    """Logits (-l/2, l/2) of a binary model: softmax class 1 is sigmoid(l), class 0 is sigmoid(-l)."""

    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        self.base = base
        self.encoder = base.encoder  # the same module, so Grad-CAM's default layer is shared

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.base(x) / 2
        return torch.cat([-half, half], dim=1)


class Negated(nn.Module):
    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        self.base = base
        self.encoder = base.encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -self.base(x)


def symmetric_model(seed: int = 1, window: np.ndarray | None = None) -> TinyEncoderDecoder:
    """A z-reversal-symmetric model whose foreground is about half of ``window`` (a random one)."""
    model = TinyEncoderDecoder(symmetric=True, seed=seed).eval()
    window = random_window(seed=seed) if window is None else window
    with torch.no_grad():
        logits = model(torch.from_numpy(window)[None])
        model.head.bias -= logits.median()
    return model


def test_an_unknown_method_name_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="unknown saliency method 'gradient'; valid methods: full-output, "
                                          "foreground, full-output-points"):
        compute_saliency(TinyEncoderDecoder(), random_window(), "gradient")


@pytest.mark.parametrize("method", METHODS)
def test_every_method_returns_nonnegative_float32_maps_of_any_size_and_restores_the_model(method) -> None:
    model = symmetric_model()
    model.train()
    x = random_window(3, 40, 50, seed=2)  # padded to 64 x 64 inside
    got = compute_saliency(model, x, method, **OPTIONS)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32 and got.shape == (3, 40, 50)
    assert np.isfinite(got).all() and (got >= 0).all() and got.any()
    assert model.training and all(p.requires_grad for p in model.parameters())
    from_tensor = compute_saliency(model, torch.from_numpy(x), method, **OPTIONS)
    np.testing.assert_array_equal(from_tensor, got)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_reverses_with_the_window_for_a_symmetric_model(method) -> None:
    x = random_window(seed=8)
    model = symmetric_model(seed=7, window=x)
    got = compute_saliency(model, x, method, **OPTIONS)
    flipped = compute_saliency(model, np.ascontiguousarray(x[::-1]), method, **OPTIONS)
    assert got.any()
    assert_mirror_close(flipped, got, model)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_honours_the_target_class_of_a_multiclass_model(method) -> None:
    x = random_window(seed=10)
    base = symmetric_model(seed=9, window=x)
    binary = compute_saliency(base, x, method, **OPTIONS)
    two = TwoClass(base)
    np.testing.assert_allclose(compute_saliency(two, x, method, **OPTIONS), binary, rtol=1e-4,
                               atol=1e-5 * binary.max())  # default target: class 1
    background = compute_saliency(Negated(base), x, method, **OPTIONS)
    np.testing.assert_allclose(compute_saliency(two, x, method, target=0, **OPTIONS), background, rtol=1e-4,
                               atol=1e-5 * background.max())


@pytest.mark.parametrize("method", METHODS)
def test_every_method_runs_tiled(method) -> None:
    got = compute_saliency(symmetric_model(), random_window(3, 64, 80, seed=4), method, tile=32, overlap=8,
                           **{**OPTIONS, "patch": 16})
    assert got.shape == (3, 64, 80) and np.isfinite(got).all() and (got >= 0).all()


def test_slices_beyond_the_default_tile_are_tiled_to_bound_memory(monkeypatch) -> None:
    # A 4096-pixel slice untiled needs about 24 GB of autograd memory for a Lite0 U-Net: by default
    # slices larger than DEFAULT_TILE run in tiles (here the default shrunk to 32 on a 64 x 80 slice).
    from napari_channelbias.saliency import compute

    model, window = SmallCNN(seed=1), random_window(3, 64, 80, seed=6)
    whole = compute_saliency(model, window, "full-output", tile=10**6, overlap=0)
    assert np.array_equal(compute_saliency(model, window, "full-output", overlap=0), whole)  # fits: whole
    monkeypatch.setattr(compute, "DEFAULT_TILE", 32)
    default = compute_saliency(model, window, "full-output", overlap=0)
    np.testing.assert_array_equal(default, compute_saliency(model, window, "full-output", tile=32, overlap=0))
    assert np.abs(default - whole).max() > 1e-3 * whole.max()  # really tiled: no context across tile borders


@pytest.mark.parametrize(
    ("options", "message"),
    [({"points": 0}, "points must be a positive integer"), ({"patch": 0}, "patch must be"),
     ({"tile": 16, "overlap": 16}, "overlap must be in"), ({"device": "tpu"}, "device"),
     ({"target": 1}, "valid targets")],
)
def test_bad_options_raise_config_errors(options, message) -> None:
    method = "occlusion" if "patch" in options else "full-output-points"
    with pytest.raises(ConfigError, match=message):
        compute_saliency(symmetric_model(), random_window(), method, **options)
