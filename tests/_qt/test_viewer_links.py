"""The dock-viewer links: events that stop with their widget, and the current slice of a layer."""

from __future__ import annotations

import numpy as np
import pytest
from napari.utils.events import EventEmitter
from qtpy.QtCore import QCoreApplication, QEvent, QObject

from napari_channelbias._qt.viewer_links import connect_while_alive, current_index

pytestmark = pytest.mark.gui


def test_an_event_stops_calling_a_destroyed_widget(qtbot):
    owner = QObject()
    emitter = EventEmitter(type_name="changed")
    calls = []
    connect_while_alive(owner, emitter, lambda event: calls.append(event.type))
    emitter()
    assert calls == ["changed"]
    owner.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
    emitter()
    assert calls == ["changed"]  # disconnected when the widget went


def test_the_current_slice_is_in_each_layers_own_data_coordinates(make_napari_viewer):
    viewer = make_napari_viewer()
    a = viewer.add_image(np.zeros((5, 8, 8), np.uint8), scale=(2.0, 1.0, 1.0), translate=(10.0, 0.0, 0.0))
    b = viewer.add_image(np.zeros((2, 8, 8), np.uint8), scale=(2.0, 1.0, 1.0), translate=(12.0, 0.0, 0.0))
    viewer.dims.set_point(0, 14.0)  # world z 14: slice (14 - 10) / 2 = 2 of a, (14 - 12) / 2 = 1 of b
    assert current_index(viewer, a, 0) == 2 and current_index(viewer, b, 0) == 1
    viewer.dims.set_point(0, 10.0)  # below b's first slice (-1): clamped to 0
    assert current_index(viewer, a, 0) == 0 and current_index(viewer, b, 0) == 0
    viewer.dims.set_point(0, 18.0)  # a's last slice, 4; beyond b's last (3 of 2 slices): clamped to 1
    assert current_index(viewer, a, 0) == 4 and current_index(viewer, b, 0) == 1
