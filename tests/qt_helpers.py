"""Shared pieces of the napari plugin tests: notifications, waiting for jobs, a small viewer, a model file.

Imported by the tests/test_qt_*.py files (run them under Xvfb: ``xvfb-run -a .venv/bin/python -m pytest
tests/test_qt_*.py``), which also register it as a plugin for its fixtures. It holds no assertions, so
pytest need not rewrite it: PYTEST_DONT_REWRITE (silences "already imported" warnings).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")

from napari.utils.notifications import NotificationSeverity, notification_manager  # noqa: E402

from napari_channelbias._qt import bridge
from napari_channelbias.llvm_guard import avoid_triton_llvm_clash

SHAPE = (8, 64, 64)
SCALE = (40.0, 4.0, 4.0)
TRANSLATE = (0.0, 8.0, 12.0)


@pytest.fixture
def notes():
    """Every napari notification dispatched during the test."""
    seen: list = []
    notification_manager.notification_ready.connect(seen.append)
    yield seen
    notification_manager.notification_ready.disconnect(seen.append)


def messages(notes: list, severity: NotificationSeverity | None = NotificationSeverity.ERROR) -> list[str]:
    return [n.message for n in notes if severity is None or n.severity == severity]


def wait_job(qtbot, job: bridge.Job, timeout_ms: int = 300_000) -> None:
    """Wait until ``job`` has stopped and its last callbacks ran."""
    # `settled`, not `is_finished`: the worker may have stopped while its queued events and the
    # finished callback are still waiting for the GUI thread (a loaded CI machine shows it).
    qtbot.waitUntil(lambda: job.settled and job not in bridge.all_jobs(), timeout=timeout_ms)


@pytest.fixture(scope="session")
def sample_volume() -> tuple[np.ndarray, np.ndarray]:
    """A small procedural EM volume and its binary membrane labels."""
    from napari_channelbias.sample_data import make_sample

    image, labels = make_sample(SHAPE, seed=0)
    return image, (labels == 1).astype(np.uint8)


@pytest.fixture
def em_viewer(make_napari_viewer, sample_volume):
    """A viewer holding the small sample as an image and a labels layer, with a scale and a shift."""
    viewer = make_napari_viewer()
    image, labels = sample_volume
    viewer.add_image(image, name="em", scale=SCALE, translate=TRANSLATE)
    viewer.add_labels(labels, name="em labels", scale=SCALE, translate=TRANSLATE)
    return viewer


@pytest.fixture
def widget(em_viewer, qtbot):
    """The plugin's main dock on ``em_viewer``."""
    from napari_channelbias._qt.main_widget import ChannelBiasWidget

    dock = ChannelBiasWidget(em_viewer)
    em_viewer.window.add_dock_widget(dock, name="Channel bias (2D+)")
    return dock


@pytest.fixture(scope="session")
def checkpoint_file(tmp_path_factory, sample_volume) -> Path:
    """An untrained random-init Lite0 U-Net (window 3, binary) saved as a checkpoint with its card."""
    from napari_channelbias.models.checkpoints import ModelCard, save_checkpoint
    from napari_channelbias.models.factory import build_model
    from napari_channelbias.models.spec import ModelSpec
    from napari_channelbias.windowing import Normalizer

    avoid_triton_llvm_clash()  # building imports torch._dynamo; a viewer may already hold Mesa's LLVM
    model, provenance = build_model(ModelSpec(init="random"))
    card = ModelCard(
        model=provenance["spec"], normalization=Normalizer.fit(sample_volume[0]).to_dict(),
        weights_source=provenance["weights_source"],
    )
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "random-lite0.pt", model, card)
