"""``saliency_events``: per-slice events, any slice selection, streaming to zarr/TIFF, clean cancel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from napari_channelbias.errors import ConfigError
from napari_channelbias.events import SliceDone, run_to_end
from napari_channelbias.models.inputs import InputSettings
from napari_channelbias.saliency.compute import compute_saliency
from napari_channelbias.saliency.volume import saliency_events
from napari_channelbias.windowing import Normalizer, extract_window
from saliency_models import TinyEncoderDecoder


@pytest.fixture
def volume() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (6, 32, 32), dtype=np.uint8)


RAW = InputSettings(normalizer=Normalizer(mode="none"))  # raw intensities as float32


def settings(norm: Normalizer, axis: int = 0) -> InputSettings:
    """What a model card says: window 3, mirror padding, the given axis and fitted normaliser."""
    return InputSettings(3, "mirror", axis, norm)


@pytest.fixture
def model() -> TinyEncoderDecoder:
    return TinyEncoderDecoder(seed=1)


def expected_maps(model, volume, slices, method="full-output", axis=0, **params) -> np.ndarray:
    norm = Normalizer.fit(volume, axis=axis)
    windows = [extract_window(volume, z, 3, "mirror", axis, norm) for z in slices]
    return np.stack([compute_saliency(model, x, method, **params) for x in windows])


def test_events_per_slice_and_the_returned_array(model, volume) -> None:
    norm = Normalizer.fit(volume)
    events: list[SliceDone] = []
    gen = saliency_events(model, settings(norm), volume, "full-output", slices=range(1, 4))
    result = run_to_end(gen, events.append)
    assert [(e.task, e.z, e.done, e.total) for e in events] == [("saliency", z, i + 1, 3)
                                                                for i, z in enumerate((1, 2, 3))]
    assert result.dtype == np.float32 and result.shape == (3, 3, 32, 32)
    expected = expected_maps(model, volume, (1, 2, 3))
    np.testing.assert_allclose(result, expected, rtol=1e-6)
    for i, event in enumerate(events):
        np.testing.assert_array_equal(event.result, result[i])


def test_any_slice_order_ends_included_and_method_options_pass_through(model, volume) -> None:
    norm = Normalizer.fit(volume)
    gen = saliency_events(model, settings(norm), volume, "full-output-points", slices=[5, 0], points=6, seed=2)
    result = run_to_end(gen)
    expected = expected_maps(model, volume, (5, 0), "full-output-points", points=6, seed=2)
    np.testing.assert_allclose(result, expected, rtol=1e-6)


def test_other_axis(model) -> None:
    volume = np.random.default_rng(1).integers(0, 255, (32, 5, 32), dtype=np.uint8)
    result = run_to_end(saliency_events(model, settings(Normalizer.fit(volume, axis=1), axis=1), volume, "gradcam",
                                        slices=[0, 4]))
    assert result.shape == (2, 3, 32, 32)
    np.testing.assert_allclose(result, expected_maps(model, volume, (0, 4), "gradcam", axis=1), rtol=1e-6)


@pytest.mark.parametrize("name", ["maps.zarr", "maps.tif"])
def test_streaming_to_a_file_writes_the_same_maps(model, volume, tmp_path: Path, name) -> None:
    norm = Normalizer.fit(volume)
    out = tmp_path / name
    gen = saliency_events(model, settings(norm), volume, "full-output", slices=range(2), out=out)
    written = run_to_end(gen)
    assert Path(written) == out
    expected = expected_maps(model, volume, range(2))
    np.testing.assert_allclose(read_back(out).reshape(2, 3, 32, 32), expected, rtol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def write_old_target(out: Path) -> None:
    if out.suffix == ".zarr":
        zarr.open_array(str(out), mode="w", shape=(2, 2), dtype="u1")[:] = 7
    else:
        tifffile.imwrite(out, np.full((2, 2), 7, np.uint8))


def read_back(out: Path) -> np.ndarray:
    return zarr.open_array(str(out), mode="r")[:] if out.suffix == ".zarr" else tifffile.imread(out)


@pytest.mark.parametrize("name", ["maps.zarr", "maps.tif"])
def test_cancelling_leaves_no_partial_output(model, volume, tmp_path: Path, name) -> None:
    out = tmp_path / name
    gen = saliency_events(model, RAW, volume, "full-output", out=out)
    assert next(gen).done == 1
    gen.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["maps.zarr", "maps.tif"])
def test_cancelling_keeps_an_existing_target_untouched(model, volume, tmp_path: Path, name) -> None:
    out = tmp_path / name
    write_old_target(out)
    gen = saliency_events(model, RAW, volume, "full-output", out=out)
    next(gen)
    gen.close()
    assert [p.name for p in tmp_path.iterdir()] == [name]
    np.testing.assert_array_equal(read_back(out), np.full((2, 2), 7, np.uint8))


def test_bad_arguments_raise_config_errors_before_any_work(model, volume) -> None:
    with pytest.raises(ConfigError, match="valid methods"):
        next(saliency_events(model, RAW, volume, "saliency", slices=[0]))
    with pytest.raises(ConfigError, match=r"valid indices 0..5"):
        next(saliency_events(model, RAW, volume, "full-output", slices=[2, 6]))
    with pytest.raises(ConfigError, match="unknown saliency option"):
        next(saliency_events(model, RAW, volume, "full-output", slices=[0], pointz=5))
    with pytest.raises(ConfigError, match="odd"):
        next(saliency_events(model, {"window": 2}, volume, "full-output"))


def test_collect_false_streams_without_keeping_maps():
    import torch

    model = torch.nn.Conv2d(3, 1, 1)
    volume = np.random.default_rng(0).random((4, 32, 32)).astype(np.float32)
    gen = saliency_events(model, RAW, volume, "full-output", collect=False)
    events = []
    try:
        while True:
            events.append(next(gen))
    except StopIteration as stop:
        assert stop.value is None
    assert [e.z for e in events] == [0, 1, 2, 3]
    assert all(isinstance(e, SliceDone) and e.result.shape == (3, 32, 32) for e in events)


def test_a_model_card_builds_the_windows_its_model_was_trained_on(model) -> None:
    from napari_channelbias.models.checkpoints import ModelCard

    volume = np.random.default_rng(2).integers(0, 255, (32, 5, 32), dtype=np.uint8)
    norm = Normalizer.fit(volume, axis=1)
    card = ModelCard(model={"arch": "unet", "encoder": "resnet18", "init": "random", "window": 3, "classes": 1},
                     normalization=norm.to_dict(), padding="mirror", axis=1)
    from_card = run_to_end(saliency_events(model, card, volume, "full-output", slices="1:3"))
    np.testing.assert_array_equal(from_card, run_to_end(saliency_events(model, settings(norm, axis=1), volume,
                                                                         "full-output", slices=[1, 2])))
    np.testing.assert_allclose(from_card, expected_maps(model, volume, (1, 2), axis=1), rtol=1e-6)
