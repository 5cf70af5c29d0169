"""Store layout: names, NGFF versions, channel names."""

from __future__ import annotations

import pytest

from napari_channelbias.errors import ChannelBiasError
from napari_channelbias.store.layout import (
    channel_names,
    check_name,
    check_ngff,
    labels_key,
    model_name_from,
    progress_key,
    saliency_key,
)


def test_channel_names_follow_the_window_order():
    assert channel_names(3) == ["z-1", "z", "z+1"]
    assert channel_names(5) == ["z-2", "z-1", "z", "z+1", "z+2"]


def test_ngff_versions_map_to_zarr_formats():
    assert check_ngff("0.4") == 2 and check_ngff("0.5") == 3
    with pytest.raises(ChannelBiasError, match="0.4, 0.5"):
        check_ngff("0.3")


def test_names_are_store_safe():
    assert check_name("uniform-green_1.2") == "uniform-green_1.2"
    for bad in ("a/b", "", " x", "../up"):
        with pytest.raises(ChannelBiasError, match="cannot name"):
            check_name(bad)
    assert model_name_from("runs/best uniform.pt") == "best_uniform"
    assert model_name_from("///") == "model"


def test_keys():
    assert labels_key("m") == "predictions/m/labels/segmentation"
    assert saliency_key("m", "full-output") == "saliency/m/full-output"
    assert saliency_key("m", "gradcam++") == "saliency/m/gradcam++"  # every registered method can be stored
    assert progress_key(labels_key("m")) == "progress/predictions+m+labels+segmentation"
