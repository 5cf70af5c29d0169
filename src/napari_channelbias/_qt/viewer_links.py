"""Links between a dock and its napari viewer: events that end with the widget, the layer's current slice.

Every dock listens to viewer events (layers added or removed, the slider moved) and reads the slice the
viewer shows; these two rules were kept in the saliency section and borrowed by the others, so they
live here, with no section of their own.
"""

from __future__ import annotations

import contextlib
from typing import Any

from qtpy.QtCore import QObject


def connect_while_alive(widget: QObject, emitter: Any, callback: Any) -> None:
    """Connect a napari event to ``callback`` and disconnect it when ``widget`` is destroyed.

    A dock can be closed while its viewer lives on; a napari event must not then call into the deleted
    Qt object.
    """
    emitter.connect(callback)

    def disconnect(*_: Any) -> None:
        with contextlib.suppress(Exception):
            emitter.disconnect(callback)

    widget.destroyed.connect(disconnect)


def current_index(viewer: Any, layer: Any, axis: int) -> int:
    """The viewer's current slice of ``layer`` along its data ``axis`` (world -> data coordinates)."""
    point = list(viewer.dims.point)[-layer.ndim:]
    position = layer.world_to_data(point)
    n = layer.data.shape[axis]
    return int(min(max(round(float(position[axis])), 0), n - 1))


__all__ = ["connect_while_alive", "current_index"]
