"""Shared fixtures: where the real ISBI stack lives, and a seeded torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch


def pytest_configure(config: pytest.Config) -> None:
    """Load triton (if torch has it) before any test opens a napari viewer.

    Mesa's software OpenGL loads the system LLVM; triton's own LLVM loaded after it crashes the process
    (see ``napari_channelbias.llvm_guard``). Loading triton first is safe, so the order in which
    tests build models and open viewers cannot matter.
    """
    from napari_channelbias.llvm_guard import preload_triton

    preload_triton()


ISBI_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2012"


@pytest.fixture
def isbi_dir() -> Path:
    """The real ISBI 2012 stack beside the checkout; skips the test where it is absent."""
    if not (ISBI_DIR / "train-volume.tif").exists():
        pytest.skip(f"real ISBI 2012 data not found at {ISBI_DIR} (only present beside the dev checkout)")
    return ISBI_DIR


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002  (legacy global seed for any code that still uses it)
