"""How a model expects its input windows: window size, end padding, slicing axis and normaliser.

Prediction, saliency and the quality measures all build their windows from one :class:`InputSettings`,
taken from the checkpoint's model card so inputs are prepared exactly as in training, or given by hand
(tests with hand-made windows, a model that did not come from this package).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..windowing import Normalizer, check_axis, check_padding, check_window, iter_windows
from .checkpoints import ModelCard


@dataclass(frozen=True)
class InputSettings:
    """The window size ``K``, the padding at the volume ends, the slicing axis and the fitted normaliser."""

    window: int = 3
    padding: str = "mirror"
    axis: int = 0
    normalizer: Normalizer = field(default_factory=Normalizer)

    def __post_init__(self) -> None:
        check_window(self.window)
        check_padding(self.padding)
        check_axis(self.axis)

    @classmethod
    def from_any(cls, source: ModelCard | dict[str, Any] | InputSettings) -> InputSettings:
        """Accept a :class:`ModelCard`, a card dict, or a flat dict with window/padding/axis/normalization.

        A flat dict without ``normalization`` gets a plain float cast (mode ``"none"``) -- the caller then
        normalises, as a test with hand-made windows does. ``normalization`` may be a :class:`Normalizer`
        or its dict.
        """
        if isinstance(source, InputSettings):
            return source
        if isinstance(source, ModelCard):
            return cls(source.window, source.padding, source.axis, source.normalizer())
        if not isinstance(source, dict):
            raise TypeError(f"expected a ModelCard, a card dict or InputSettings, got {type(source).__name__}")
        if "model" in source:
            return cls.from_any(ModelCard.from_dict(source))
        norm = source.get("normalization")
        if isinstance(norm, Normalizer):
            normalizer = norm
        else:
            normalizer = Normalizer.from_dict(norm) if norm is not None else Normalizer(mode="none")
        return cls(source.get("window", 3), source.get("padding", "mirror"), source.get("axis", 0), normalizer)

    def windows(self, volume: Any, slices: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
        """``(z, window)`` for each selected slice (:func:`~napari_channelbias.windowing.iter_windows`)."""
        return iter_windows(volume, slices, self.window, self.padding, self.axis, self.normalizer)
