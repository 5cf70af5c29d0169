"""Import bioimageio.spec / bioimageio.core or explain how to install them (one line)."""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import ChannelBiasError

INSTALL_HINT = "install them with `pip install 'napari-channelbias[bioimageio]'`"


def require(module: str) -> ModuleType:
    """Import ``module`` (e.g. ``"bioimageio.spec.model.v0_5"``); ChannelBiasError naming the extra if absent."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ChannelBiasError(
            f"bioimage.io packages need bioimageio.spec, bioimageio.core and onnx ({exc}); {INSTALL_HINT}"
        ) from None
