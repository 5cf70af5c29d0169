"""InputSettings: one description of a model's input windows, from a card, a dict or by hand."""

from __future__ import annotations

import numpy as np
import pytest

from napari_channelbias.errors import ConfigError
from napari_channelbias.models.checkpoints import ModelCard
from napari_channelbias.models.inputs import InputSettings
from napari_channelbias.windowing import Normalizer, extract_window

CARD = ModelCard(model={"arch": "unet", "encoder": "efficientnet-lite0", "init": "imagenet", "window": 5,
                        "classes": 1},
                 normalization={"mode": "percentile", "low": 1.0, "high": 99.0, "lo": 3.0, "hi": 9.0},
                 padding="zero", axis=1)


@pytest.mark.parametrize("source", [CARD, CARD.to_dict()])
def test_settings_from_a_card_or_its_dict(source) -> None:
    settings = InputSettings.from_any(source)
    assert (settings.window, settings.padding, settings.axis) == (5, "zero", 1)
    assert settings.normalizer.hi == 9.0
    assert InputSettings.from_any(settings) is settings


def test_a_flat_dict_without_normalisation_feeds_raw_floats() -> None:
    settings = InputSettings.from_any({"window": 3, "axis": 2})
    assert settings.normalizer.mode == "none" and settings.padding == "mirror"


@pytest.mark.parametrize(("fields", "message"), [({"window": 4}, "odd"), ({"padding": "wrap"}, "padding"),
                                                 ({"axis": 3}, "axis must be 0, 1 or 2"),
                                                 ({"axis": -1}, "axis must be 0, 1 or 2")])
def test_the_windowing_rules_apply(fields, message) -> None:
    with pytest.raises(ConfigError, match=message):
        InputSettings.from_any(fields)


def test_windows_are_those_of_the_windowing_module() -> None:
    volume = np.random.default_rng(0).integers(0, 255, (6, 7, 8), dtype=np.uint8)
    settings = InputSettings(3, "replicate", 2, Normalizer.fit(volume, axis=2))
    got = dict(settings.windows(volume, [7, 0]))
    for z in (7, 0):
        np.testing.assert_array_equal(got[z], extract_window(volume, z, 3, "replicate", 2, settings.normalizer))
