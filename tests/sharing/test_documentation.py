"""The package README explains the 2D+ convention, the init, the training and the audit."""

from __future__ import annotations

import numpy as np

from napari_channelbias.asymmetry.volume import volume_asymmetry
from napari_channelbias.models.checkpoints import ModelCard
from napari_channelbias.sharing.audit import Audit
from napari_channelbias.sharing.documentation import init_text, readme


def _card(padding: str = "mirror", window: int = 5) -> ModelCard:
    return ModelCard(
        model={"arch": "unet", "encoder": "efficientnet-lite0", "init": "uniform-green", "window": window,
               "classes": 1},
        normalization={"mode": "percentile", "low": 0.5, "high": 99.5, "lo": 12.0, "hi": 230.0}, padding=padding,
        training={"steps_done": 400, "batch_size": 8, "val_slices_used": "25:30"},
        metrics={"validation": {"dice": {"mean": 0.91, "se": 0.01}}},
    )


def _audit(window: int = 5) -> Audit:
    rng = np.random.default_rng(1)
    slices = [(z, rng.random((window, 8, 8)).astype(np.float32)) for z in (25, 26)]
    return Audit(slices=(25, 26), result=volume_asymmetry(slices, window))


def test_the_readme_spells_out_the_window_the_training_and_the_audit():
    text = readme(_card(), _audit(), name="m", image_name="train.tif", input_id="raw", formats=["onnx"],
                  test_shape=(1, 5, 64, 64), test_slice=26)
    assert "**K = 5 neighbouring slices**" in text and "z-2, z-1, z, z+1, z+2" in text
    assert "i = -i  # mirror" in text  # runnable code for the padding the model was trained with
    assert "Uniform-Green" in text and "lo = 12, hi = 230" in text
    assert "| dice | 0.9100 ± 0.0100 |" in text
    assert "## Validation" in text and "slices 25, 26" in text and "| SWd |" in text
    assert "centred on slice 26" in text


def test_the_padding_code_follows_the_card():
    zero = readme(_card("zero", 3), _audit(3), name="m", image_name="x", input_id="raw", formats=[],
                  test_shape=(1, 3, 32, 32), test_slice=25)
    assert "np.zeros_like" in zero and "all zeros" in zero


def test_init_texts():
    assert "green" in init_text("uniform-green")
    assert "earlier napari-channelbias model (runs/a.pt)" in init_text("checkpoint:runs/a.pt")
    assert init_text("something-new") == "something-new"
