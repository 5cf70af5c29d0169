"""A tiny real checkpoint and image for the distributed tests (written once per module)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile


@pytest.fixture(scope="module")
def tiny_job(tmp_path_factory):
    """``(folder, checkpoint, image, labels)``: a random-init U-Net/ResNet-18 and an 8 x 64 x 64 stack."""
    from napari_channelbias.models.checkpoints import ModelCard, save_checkpoint
    from napari_channelbias.models.factory import build_model
    from napari_channelbias.models.spec import ModelSpec
    from napari_channelbias.windowing import Normalizer

    d = tmp_path_factory.mktemp("dist")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (8, 64, 64), dtype=np.uint8)
    labels = (image > 127).astype(np.uint8)
    tifffile.imwrite(d / "image.tif", image)
    tifffile.imwrite(d / "labels.tif", labels)
    model, prov = build_model(ModelSpec(arch="unet", encoder="resnet18", init="random"))
    card = ModelCard(model=prov["spec"], normalization=Normalizer.fit(image).to_dict(), name="tiny")
    save_checkpoint(d / "tiny.pt", model, card)
    return d, d / "tiny.pt", d / "image.tif", d / "labels.tif"
