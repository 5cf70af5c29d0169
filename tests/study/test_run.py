"""Study pieces that the end-to-end CLI test does not pin down: the data split and checkpoint reuse."""

import pytest
import torch

from napari_channelbias.errors import ConfigError
from napari_channelbias.models.checkpoints import ModelCard, save_checkpoint
from napari_channelbias.models.spec import ModelSpec
from napari_channelbias.segmentation.training import TrainConfig
from napari_channelbias.study.run import _reusable, split_slices


def test_split_isbi_like():
    train, test = split_slices(30, 3, "21:30")
    assert test == range(21, 30)
    assert train == range(0, 20)  # slice 20 is the gap: a window centred at 19 reads 20, never 21


def test_split_default_is_last_quarter_with_gap_for_wider_windows():
    train, test = split_slices(32, 5, None)
    assert test == range(24, 32)
    assert train.stop == 24 - 2


def test_split_rejects_a_test_block_that_leaves_no_training_data():
    with pytest.raises(ConfigError, match="test block"):
        split_slices(30, 3, "0:10")


@pytest.mark.parametrize("complete", [True, False])
def test_only_complete_runs_are_reused(tmp_path, complete):
    spec = ModelSpec(arch="unet", encoder="resnet18", init="random")
    cfg = TrainConfig(steps=5, batch_size=2, patch_size=64)
    training = {"steps": 5, "seed": 0, "batch_size": 2, "patch_size": 64, "lr": cfg.lr, "complete": complete}
    card = ModelCard(model=spec.to_dict(), normalization={"mode": "none"}, training=training)
    path = save_checkpoint(tmp_path / "a.pt", torch.nn.Conv2d(3, 1, 1), card)
    assert _reusable(path, spec, cfg) is complete
    other = TrainConfig(steps=6, batch_size=2, patch_size=64)
    assert _reusable(path, spec, other) is False
    # another foreground is another target: train again
    assert _reusable(path, spec, TrainConfig(steps=5, batch_size=2, patch_size=64, foreground="any")) is False
    assert _reusable(tmp_path / "missing.pt", spec, cfg) is False
