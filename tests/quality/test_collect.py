"""Features from the prediction's own tiled pass: same forward, same probabilities, tiles vs whole."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from napari_channelbias.models.factory import build_model
from napari_channelbias.models.spec import ModelSpec
from napari_channelbias.quality.collect import FeatureCollector
from napari_channelbias.quality.layers import LayerSpec, layer_catalog
from napari_channelbias.segmentation.prediction import predict_slice


class Pointwise(nn.Module):
    """1x1 convolutions only: every output pixel depends on its own input pixel, so tiles are exact."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Tanh())
        self.head = nn.Conv2d(4, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def test_features_come_from_the_prediction_forward_pass():
    model, _ = build_model(ModelSpec(arch="unet", encoder="resnet18", init="random"))
    catalog = layer_catalog(model)
    window = np.random.default_rng(0).normal(size=(3, 64, 96)).astype(np.float32)
    with FeatureCollector(model, catalog.layers, tile=512, device="cpu", amp=False) as c:
        done = c.push(7, window) + c.flush()
        assert c.hooks.calls == 1  # one slice, one tile, one batch: exactly one forward pass
    ((key, probs, feats),) = done
    assert key == 7
    np.testing.assert_array_equal(probs, predict_slice(model, window, device="cpu", amp=False))
    assert set(feats) == set(catalog.names)
    assert feats["decoder.block5"].shape == (16, 64, 96)
    assert feats["encoder.stage5"].shape[1:] == (2, 3)


def test_tiled_features_equal_whole_slice_features_for_a_pointwise_model():
    model = Pointwise().eval()
    specs = [LayerSpec("body", "body")]
    window = np.random.default_rng(1).normal(size=(3, 150, 170)).astype(np.float32)
    with FeatureCollector(model, specs, tile=64, overlap=16, batch_size=3, device="cpu", amp=False) as c:
        (_, p_tiled, f_tiled), = c.push(0, window) + c.flush()
        assert c.hooks.calls > 1  # several batches of tiles
    with FeatureCollector(model, specs, tile=512, device="cpu", amp=False) as c:
        (_, p_whole, f_whole), = c.push(0, window) + c.flush()
    np.testing.assert_allclose(f_tiled["body"], f_whole["body"], atol=1e-6)
    np.testing.assert_allclose(p_tiled, p_whole, atol=1e-6)


def test_slices_complete_in_order_with_their_own_features():
    model = Pointwise().eval()
    rng = np.random.default_rng(2)
    windows = [rng.normal(size=(3, 40, 40)).astype(np.float32) for _ in range(5)]
    out = []
    with FeatureCollector(model, [LayerSpec("body", "body")], tile=512, batch_size=2, device="cpu") as c:
        for i, w in enumerate(windows):
            out += c.push(i, w)
        out += c.flush()
    assert [k for k, _, _ in out] == [0, 1, 2, 3, 4]
    for i, (_, _, feats) in enumerate(out):
        expected = model.body(torch.from_numpy(windows[i])[None])[0].detach().numpy()
        np.testing.assert_allclose(feats["body"], expected, atol=1e-6)
