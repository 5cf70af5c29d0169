"""Features of chosen layers, collected in the same tiled forward pass that gives the prediction.

:class:`FeatureCollector` *is* the prediction engine (:class:`~napari_channelbias.segmentation.
prediction.TiledPredictor`) with :class:`~.layers.FeatureHooks` installed on its model: every batch of
tiles runs through the model once, the probabilities are blended as in ``channelbias predict``, and
the hooked features of each tile are blended the same way into a per-slice map at the layer's own
resolution. Memory is one batch of tiles plus, for the slices in flight, the chosen layers' maps.

Tiles and the whole slice. A slice that fits in one tile gives exactly the whole-slice features.
A larger slice is cut into overlapping tiles; each tile's features at a layer of stride ``s`` are
placed at the tile's offset divided by ``s`` (rounded) and blended with the ramp weight of
:func:`~napari_channelbias.tiling.blend_weight` over ``overlap / s`` feature pixels. They equal the
whole-slice features exactly where (a) the layer's receptive field around a position lies inside
the tile and (b) the tile offsets are multiples of ``s``; otherwise they differ near tile borders by
what the network sees beyond the tile, and by at most half a feature pixel of position (deep layers,
offsets not divisible by the stride). The blend weight keeps the border pixels' share small.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..segmentation.prediction import TiledPredictor, fitted_tile
from ..tiling import Tile, blend_weight, padded_size, plan_tiles
from .layers import FeatureHooks, LayerSpec


class _SliceFeatures:
    """Blended feature maps of one slice, layer by layer, while its tiles come back."""

    def __init__(self, shape: tuple[int, int], n_tiles: int) -> None:
        self.shape = shape
        self.single = n_tiles == 1
        self.acc: dict[str, np.ndarray] = {}
        self.weight: dict[str, np.ndarray] = {}

    def add(self, name: str, tile: Tile, feat: np.ndarray, overlap: int) -> None:
        th, tw = tile.y1 - tile.y0, tile.x1 - tile.x0
        stride = max(1, round(padded_size(th) / feat.shape[1]))
        fh, fw = -(-th // stride), -(-tw // stride)
        feat = feat[:, :fh, :fw]
        if self.single:
            self.acc[name] = feat
            return
        gh, gw = -(-self.shape[0] // stride), -(-self.shape[1] // stride)
        if name not in self.acc:
            self.acc[name] = np.zeros((feat.shape[0], gh, gw), np.float32)
            self.weight[name] = np.zeros((gh, gw), np.float32)
        oy, ox = min(round(tile.y0 / stride), gh - 1), min(round(tile.x0 / stride), gw - 1)
        h, w = min(fh, gh - oy), min(fw, gw - ox)
        weight = blend_weight(h, w, overlap // stride)
        self.acc[name][:, oy:oy + h, ox:ox + w] += feat[:, :h, :w] * weight
        self.weight[name][oy:oy + h, ox:ox + w] += weight

    def result(self) -> dict[str, np.ndarray]:
        if self.single:
            return self.acc
        return {k: v / np.maximum(self.weight[k], 1e-12) for k, v in self.acc.items()}


class FeatureCollector(TiledPredictor):
    """A :class:`TiledPredictor` that also returns the chosen layers' feature maps of each slice.

    :meth:`push` and :meth:`flush` return ``(key, probabilities (C, H, W), {layer: (C_l, h_l, w_l)})``
    for every completed slice, in input order. Use it as a context manager (the hooks are removed on
    exit); ``hooks.calls`` counts the forward passes.
    """

    def __init__(self, model: torch.nn.Module, specs: Sequence[LayerSpec], **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        # Hooks go on the eager module: a compiled or re-laid-out wrapper runs the same submodules.
        self.hooks = FeatureHooks(getattr(self, "module", self.model), specs)
        # Slices in the order their first tile ran. Tiles are batched in push order and slices complete
        # in push order, so the n slices a push or flush returns are the first n of this queue.
        self._features: deque[_SliceFeatures] = deque()
        self._by_state: dict[int, _SliceFeatures] = {}

    def __enter__(self) -> FeatureCollector:
        self.hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.hooks.__exit__(*exc)

    def _n_tiles(self, h: int, w: int) -> int:
        return len(plan_tiles(h, w, fitted_tile(h, w, self.tile, self.overlap), self.overlap))

    def _run_batch(self) -> None:
        batch = list(self._batch)
        self.hooks.take()  # drop anything a stray forward (e.g. output_channels) left behind
        super()._run_batch()  # the one forward pass: probabilities blended, hooks filled
        feats = {k: v.cpu().numpy() for k, v in self.hooks.take().items()}
        for i, (state, tile) in enumerate(batch):
            acc = self._by_state.get(id(state))
            if acc is None:
                acc = _SliceFeatures(state.shape, self._n_tiles(*state.shape))
                self._by_state[id(state)] = acc
                self._features.append(acc)
            for name, value in feats.items():
                acc.add(name, tile, value[i], self.overlap)

    def _with_features(self, done: list[tuple[Any, np.ndarray]]) -> list[tuple[Any, np.ndarray, dict[str, np.ndarray]]]:
        out = []
        for key, probs in done:
            acc = self._features.popleft()
            self._by_state = {k: v for k, v in self._by_state.items() if v is not acc}
            out.append((key, probs, acc.result()))
        return out

    def push(self, key: Any, window: np.ndarray) -> list[tuple[Any, np.ndarray, dict[str, np.ndarray]]]:  # type: ignore[override]
        return self._with_features(super().push(key, window))

    def flush(self) -> list[tuple[Any, np.ndarray, dict[str, np.ndarray]]]:  # type: ignore[override]
        return self._with_features(super().flush())
