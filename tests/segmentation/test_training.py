"""Training: leak-free slice split, patch sampling and augmentation, reproducibility, checkpoints, cancel."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_channelbias import windowing
from napari_channelbias.errors import ConfigError, VolumeError
from napari_channelbias.events import CheckpointSaved, TrainStep, Validation
from napari_channelbias.io import checks
from napari_channelbias.io.synthetic import CountingVolume
from napari_channelbias.models.checkpoints import read_checkpoint
from napari_channelbias.models.factory import load_checkpoint
from napari_channelbias.models.spec import ModelSpec
from napari_channelbias.segmentation.run_outputs import last_path_for
from napari_channelbias.segmentation.training import (
    TrainConfig,
    check_patch_size,
    split_train_val,
    train,
    train_events,
)
from napari_channelbias.windowing import Normalizer, window_indices

SPEC = ModelSpec(init="random")  # no pretrained weights needed for unit tests


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny models on a shared machine: one thread avoids OpenMP oversubscription (and keeps runs
    # bit-reproducible between the two runs of a test).
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def tiny_volume(n: int = 8, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Bright blobs on a dark noisy background; the label marks the blobs (easy to learn a little)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((n, size, size), np.uint8)
    for z in range(n):
        for _ in range(4):
            cy, cx = rng.integers(8, size - 8, 2)
            labels[z][(yy - cy) ** 2 + (xx - cx) ** 2 < 36] = 1
    image = (60 + 120 * labels + rng.normal(0, 20, labels.shape)).clip(0, 255).astype(np.uint8)
    return image, labels


def config(**changes) -> TrainConfig:
    base = {"steps": 4, "batch_size": 2, "patch_size": 32, "val_every": 2, "device": "cpu"}
    return TrainConfig(**{**base, **changes})


# -- slice split ---------------------------------------------------------------------------------------

def test_split_with_explicit_block_and_gap() -> None:
    train_z, val_z = split_train_val(30, 3, config(val_slices="25:30"))
    assert val_z == [25, 26, 27, 28, 29]
    assert train_z == list(range(24))  # centres below 25 - r
    train_z, val_z = split_train_val(30, 5, config(val_slices="10:15"))
    assert train_z == [*range(8), *range(17, 30)]


def test_auto_and_no_validation() -> None:
    assert split_train_val(30, 3, config())[1] == list(range(25, 30))  # 15 % of 30 slices at the end
    assert split_train_val(30, 3, config(val_slices="auto", val_fraction=0.1))[1] == [27, 28, 29]
    assert split_train_val(30, 3, config(val_slices="none")) == (list(range(30)), [])


def test_split_errors() -> None:
    with pytest.raises(ConfigError, match="contiguous"):
        split_train_val(30, 3, config(val_slices="0:10:2"))
    with pytest.raises(ConfigError, match="no training slices left"):
        split_train_val(5, 3, config(val_slices="1:5"))


@pytest.mark.parametrize("padding", ["mirror", "replicate", "zero"])
@pytest.mark.parametrize("window", [1, 3, 5, 7])
def test_no_training_window_reads_a_validation_slice(padding: str, window: int) -> None:
    n = 20
    for a in range(0, n - 1, 3):
        for b in range(a + 1, min(n, a + 6) + 1):
            try:
                train_z, val_z = split_train_val(n, window, config(val_slices=f"{a}:{b}"))
            except ConfigError:
                continue
            for z in train_z:
                assert not set(window_indices(z, n, window, padding)) & set(val_z), (z, a, b)


# -- patches and augmentation ---------------------------------------------------------------------------

def test_same_seed_gives_identical_losses_and_another_seed_does_not(tmp_path: Path) -> None:
    image, labels = tiny_volume()
    cfg = config(steps=3, val_slices="none")
    first = train(image, labels, SPEC, cfg, tmp_path / "a.pt")
    second = train(image, labels, SPEC, cfg, tmp_path / "b.pt")
    other = train(image, labels, SPEC, config(steps=3, val_slices="none", seed=1), tmp_path / "c.pt")
    assert len(first.losses) == 3
    assert first.losses == second.losses
    assert first.losses != other.losses


def test_a_run_yields_events_and_writes_both_checkpoints(tmp_path: Path) -> None:
    image, labels = tiny_volume()
    out = tmp_path / "model.pt"
    events: list = []
    result = train(image, labels, SPEC, config(steps=4, val_every=3, val_slices="6:8"), out,
                   on_event=events.append)
    steps = [e for e in events if isinstance(e, TrainStep)]
    vals = [e for e in events if isinstance(e, Validation)]
    saved = [e for e in events if isinstance(e, CheckpointSaved)]
    assert [e.step for e in steps] == [1, 2, 3, 4] and steps[-1].seconds_left == 0.0
    assert [v.step for v in vals] == [3, 4]
    assert vals[0].is_best
    assert saved[-1] == CheckpointSaved(str(last_path_for(out)), "last", 4)
    assert {s.kind for s in saved} == {"best", "last"}
    assert sorted(os.listdir(tmp_path)) == ["model.last.pt", "model.pt"]

    best = max(vals, key=lambda v: v.metrics["dice"])
    assert result.best_step == best.step and result.best_path == out
    assert result.val_slices == [6, 7] and result.train_slices == [0, 1, 2, 3, 4]
    model, card = load_checkpoint(out)
    assert card.training["complete"] is True and card.training["steps"] == 4
    assert card.training["train_slices"] == "0:5" and card.training["val_slices_used"] == "6:8"
    assert card.metrics["validation"]["dice"]["mean"] == pytest.approx(best.metrics["dice"])
    assert card.normalizer() == Normalizer.fit(image)
    assert card.model["init"] == "random" and card.window == 3 and card.classes == 1
    assert read_checkpoint(last_path_for(out))[0]["training"]["steps_done"] == 4
    assert result.summary()["steps_done"] == 4


def test_cancel_keeps_best_and_writes_a_complete_last_state(tmp_path: Path) -> None:
    image, labels = tiny_volume()
    out = tmp_path / "model.pt"
    gen = train_events(image, labels, SPEC, config(steps=50, val_every=2, val_slices="6:8"), out)
    seen = []
    for event in gen:
        seen.append(event)
        if isinstance(event, TrainStep) and event.step == 3:
            break
    gen.close()
    assert sorted(os.listdir(tmp_path)) == ["model.last.pt", "model.pt"]  # no temporary files
    best_card, _ = read_checkpoint(out)
    assert best_card["training"]["complete"] is False and best_card["training"]["steps_done"] == 2
    last_card, last_state = read_checkpoint(last_path_for(out))
    assert last_card["training"]["steps_done"] == 3
    model, _ = load_checkpoint(last_path_for(out))  # loads strictly: a whole, valid state
    assert all(torch.isfinite(v).all() for v in last_state.values() if v.is_floating_point())


def test_foreground_value_and_multiclass(tmp_path: Path) -> None:
    image, labels = tiny_volume()
    three = labels * 2  # values 0 and 2
    three[:, :4] = 1
    result = train(image, three, SPEC, config(steps=2, val_slices="none", foreground=2), tmp_path / "f.pt")
    assert read_checkpoint(result.best_path)[0]["training"]["foreground"] == 2
    multi = ModelSpec(init="random", classes=3)
    result = train(image, three, multi, config(steps=2, val_every=2, val_slices="7:8"), tmp_path / "m.pt")
    assert np.isfinite(result.losses).all()
    assert set(result.best_metrics["validation"]) == {"dice", "iou", "precision", "recall", "accuracy"}


def test_bad_inputs_fail_before_training(tmp_path: Path) -> None:
    image, labels = tiny_volume()
    with pytest.raises(VolumeError, match="must match"):
        train(image, labels[:, :32], SPEC, config(), tmp_path / "x.pt")
    with pytest.raises(VolumeError, match="outside 0..1.*--foreground any.*--foreground 255"):
        train(image, labels * 255, SPEC, config(), tmp_path / "x.pt")
    with pytest.raises(VolumeError, match="no voxel of the labels has the foreground value 1"):
        train(image, labels * 255, SPEC, config(foreground=1), tmp_path / "x.pt")
    assert os.listdir(tmp_path) == []


def instance_labels(labels: np.ndarray) -> np.ndarray:
    """Number the blobs of each slice 1, 2, 3, ... (what users often have instead of a 0/1 mask)."""
    from scipy import ndimage

    out = np.zeros(labels.shape, np.uint16)
    for z in range(labels.shape[0]):
        out[z] = ndimage.label(labels[z])[0]
    return out


def test_instance_labels_train_a_binary_model_only_when_the_foreground_is_chosen(tmp_path: Path) -> None:
    image, labels = tiny_volume()
    instances = instance_labels(labels)
    assert instances.max() >= 3  # several objects: `labels == 1` would be one of them
    with pytest.raises(VolumeError, match=r"outside 0\.\.1.*--foreground any"):
        train(image, instances, SPEC, config(), tmp_path / "refused.pt")
    assert os.listdir(tmp_path) == []
    # "any" trains on every object: exactly the run on the 0/1 mask (same seed, same draws)
    every = train(image, instances, SPEC, config(foreground="any"), tmp_path / "any.pt")
    mask = train(image, labels, SPEC, config(), tmp_path / "mask.pt")
    assert every.losses == mask.losses
    assert every.best_metrics["validation"] == mask.best_metrics["validation"]
    one = train(image, instances, SPEC, config(foreground=1), tmp_path / "one.pt")
    assert one.losses != mask.losses  # one object only: a different target


def test_train_config_from_dict_refuses_unknown_keys_with_the_valid_list() -> None:
    assert TrainConfig.from_dict({"steps": 3, "foreground": "ANY"}) == TrainConfig(steps=3, foreground="any")
    with pytest.raises(ConfigError, match=r"unknown training setting\(s\) \['learning_rate'\]; valid: amp, axis"):
        TrainConfig.from_dict({"learning_rate": 0.1})
    with pytest.raises(ConfigError, match="foreground must be 'any'"):
        TrainConfig(foreground=-1)


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"steps": 0}, "steps"), ({"patch_size": 16}, "patch_size"), ({"lr": -1.0}, "lr"),
     ({"normalization": {"mode": "zscore"}}, "normalization"), ({"padding": "wrap"}, "padding"),
     ({"axis": 3}, "axis"), ({"val_fraction": 1.5}, "val_fraction")],
)
def test_config_validation(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config(**changes)


def test_patch_size_is_a_multiple_of_32_and_the_error_suggests_two():
    assert check_patch_size(32) == 32 and check_patch_size(256) == 256
    with pytest.raises(ConfigError, match=r"multiple of 32 .* got 100; e\.g\. 96 or 128"):
        check_patch_size(100)
    with pytest.raises(ConfigError, match=r"got 16; e\.g\. 32 or 64"):
        check_patch_size(16)
    for bad in (True, 64.0, "64"):
        with pytest.raises(ConfigError, match="multiple of 32"):
            check_patch_size(bad)
    with pytest.raises(ConfigError, match="got 100"):
        TrainConfig(patch_size=100)  # the config applies the same rule


@pytest.mark.slow
def test_lite0_from_imagenet_learns_isbi_membranes(isbi_dir: Path, tmp_path: Path) -> None:
    """Brief fine-tuning on slices 0-19 beats predicting membrane everywhere on held-out slices."""
    from napari_channelbias.events import run_to_end
    from napari_channelbias.io.read import open_volume
    from napari_channelbias.segmentation.evaluation import evaluate_events
    from napari_channelbias.segmentation.metrics import slice_metrics, summarise
    from napari_channelbias.segmentation.prediction import predict_volume

    image = open_volume(isbi_dir / "train-volume.tif")
    labels = open_volume(isbi_dir / "train-membranes.tif")
    sub_image, sub_labels = np.asarray(image[:30]), np.asarray(labels[:30])
    val = list(range(21, 30))
    everywhere = summarise([slice_metrics(np.ones_like(sub_labels[z], bool), sub_labels[z] == 1)
                            for z in val])["dice"]["mean"]
    assert 0.3 < everywhere < 0.42

    spec = ModelSpec(arch="unet", encoder="efficientnet-lite0", init="imagenet")
    # 100 steps of 4 x 128 px, validated every 25: best Dice 0.73-0.75 over seeds 0-2 (single losses
    # fluctuate with batches this small, hence best-of-four); about 1.5 min on one free CPU core.
    cfg = TrainConfig(steps=100, batch_size=4, patch_size=128, lr=1e-3, val_slices="21:30", val_every=25,
                      device="cpu", seed=0)
    out = tmp_path / "isbi.pt"
    result = train(sub_image, sub_labels, spec, cfg, out)
    assert result.train_slices == list(range(20))  # 0..19, slice 20 is the gap
    dice = result.best_metrics["validation"]["dice"]["mean"]
    print(f"ISBI validation Dice {dice:.3f} (membrane everywhere: {everywhere:.3f})")
    assert dice > everywhere + 0.25

    # Predict a few held-out slices through TIFF and zarr; the files evaluate like memory does.
    model, card = load_checkpoint(out)
    memory = run_to_end(evaluate_events(model, card, image, labels, slices="21:24", device="cpu"))
    for suffix in (".tif", ".zarr"):
        res = predict_volume(model, card, image, slices="21:24", out=tmp_path / f"pred{suffix}",
                             probabilities=True, device="cpu")
        written = np.asarray(open_volume(res.labels_path)[:])
        assert written.shape == (3, 512, 512) and written.dtype == np.uint8
        probs = np.asarray(open_volume(res.probabilities_path)[:])
        assert np.array_equal(written, probs > 127)
        rows = [slice_metrics(written[i] > 0, np.asarray(labels[z]) == 1) for i, z in enumerate(range(21, 24))]
        assert summarise(rows)["dice"]["mean"] == pytest.approx(memory["summary"]["dice"]["mean"])


# -- a stack larger than any memory ----------------------------------------------------------------------
def test_a_100_gb_volume_trains_reading_a_bounded_sample_and_the_sampled_patches(tmp_path: Path) -> None:
    shape = (1600, 8192, 8192)  # 107 GB of uint8 image and as much of labels; nothing is stored
    image = CountingVolume(shape)
    labels = CountingVolume(shape, values=lambda z, y, x: (y // 16 + x // 16) % 2 + 0 * z)
    steps, batch, patch = 2, 2, 32
    result = train(image, labels, SPEC, config(steps=steps, batch_size=batch, patch_size=patch,
                                               val_slices="none"), tmp_path / "m.pt")
    assert result.steps_done == steps
    patches_read = steps * batch * 3 * patch * patch
    # The image: the normaliser's sample (crops of 64 slices, 16 M voxels) and the training windows.
    assert image.voxels_read <= windowing._MAX_FIT_SAMPLES + patches_read
    # The labels: the value check's sample (64 M voxels) and the patches' centre slices.
    assert labels.voxels_read <= checks.CHECK_SAMPLE + steps * batch * patch * patch
    assert max(p for _, p in image.reads + labels.reads) < 8192 * 8192  # never a whole slice
    assert image.voxels_read + labels.voxels_read < 1e-3 * 2 * image.nbytes
