"""The saliency records shared by the saliency section and the asymmetry panel."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from napari.layers import Image

from napari_channelbias._qt.saliency_results import SaliencyRecord, SaliencyRequest, SaliencyResults, saliency_results
from napari_channelbias.workspace import SaliencyCache, SaliencyKey, Workspace

pytestmark = pytest.mark.gui


def _request(axis: int = 0) -> SaliencyRequest:
    params = (("patch", 16), ("target", None))
    return SaliencyRequest("lite0-a", "occlusion", params, ("token", 1), "sample", 3, axis)


def test_one_results_object_per_workspace_and_none_kept_alive(qtbot):
    from napari_channelbias._qt import saliency_results as module

    first, second = Workspace(), Workspace()
    results = saliency_results(first)
    assert isinstance(results, SaliencyResults)
    assert saliency_results(first) is results and saliency_results(second) is not results
    seen = []
    results.changed.connect(seen.append)
    results.changed.emit("lite0-a")
    assert seen == ["lite0-a"]
    gone = weakref.ref(first)
    del first, results
    gc.collect()
    # The dropped workspace took its results with it (other tests' workspaces may be collected too, so
    # check this one rather than a count).
    assert gone() is None
    assert all(ws is not None for ws in module._RESULTS.keys())
    assert second in module._RESULTS


def test_request_keys_and_description():
    request = _request()
    assert request.key(4) == SaliencyKey.make("lite0-a", "occlusion", {"target": None, "patch": 16},
                                              ("token", 1), 4)
    assert request.describe() == "occlusion (patch 16)"  # unset options are not shown
    bare = SaliencyRequest("m", "full-output", (("target", None),), "t", "sample", 3, 0)
    assert bare.describe() == "full-output"


@pytest.mark.parametrize("axis", [0, 1])
def test_record_maps_come_from_the_cache_else_from_the_layers(axis):
    request = _request(axis)
    shape = [4, 4, 4]
    layers = [Image(np.zeros(shape, np.float32)) for _ in range(3)]
    record = SaliencyRecord(request, layers)
    cache = SaliencyCache()
    assert record.maps(cache, 2) is None  # neither cached nor computed
    index = [slice(None)] * 3
    index[axis] = 2
    for c, layer in enumerate(layers):
        layer.data[tuple(index)] = c + 1.0
    record.computed.add(2)
    expected = np.stack([np.full((4, 4), c + 1.0, np.float32) for c in range(3)])
    np.testing.assert_array_equal(record.maps(cache, 2), expected)
    cached = np.full((3, 4, 4), 7.0, np.float32)
    cache.put(request.key(2), cached)
    np.testing.assert_array_equal(record.maps(cache, 2), cached)  # the cache wins (same values in use)
