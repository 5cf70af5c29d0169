"""Shared fixtures for the bioimage.io tests: a tiny trained model, its package, and a network guard.

The model is a random-init Lite0 U-Net trained for 2 steps on a 10 x 64 x 96 procedural EM stack (real
training, real card with its validation block); the package is exported once per session because
TorchScript tracing, ONNX export and the audit take a few seconds each.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch

pytest.importorskip("bioimageio.core", reason="the bioimageio extra is not installed")


@pytest.fixture
def no_network(monkeypatch):
    """Every socket connection and name lookup fails: what runs inside works offline."""

    def refuse(*args, **kwargs):
        raise OSError("network access attempted during an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="session")
def em_stack():
    from napari_channelbias.sample_data import make_sample

    return make_sample(shape=(10, 64, 96), seed=0)


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory, em_stack) -> Path:
    from napari_channelbias.models.spec import ModelSpec
    from napari_channelbias.segmentation.training import TrainConfig, train

    torch.manual_seed(0)
    image, labels = em_stack
    labels = (labels == 1).astype("uint8")  # binary: the membranes
    config = TrainConfig(steps=2, batch_size=2, patch_size=64, val_slices="7:10", val_every=1, device="cpu",
                         num_threads=1, amp=False)
    spec = ModelSpec(arch="unet", encoder="efficientnet-lite0", init="random", window=3, classes=1)
    result = train(image, labels, spec, config, tmp_path_factory.mktemp("trained") / "lite0.pt")
    return result.best_path


@pytest.fixture(scope="session")
def exported_package(tmp_path_factory, trained_checkpoint, em_stack) -> Path:
    from napari_channelbias.events import run_to_end
    from napari_channelbias.models.factory import load_checkpoint
    from napari_channelbias.sharing.export import export_events

    model, card = load_checkpoint(trained_checkpoint)
    out = tmp_path_factory.mktemp("package") / "lite0.zip"
    run_to_end(export_events(model, card, out, em_stack[0], image_name="sample", authors=["Test Author"]))
    return out
