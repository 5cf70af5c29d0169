"""The Saliency section's records against the viewer: kept while they match, filled from the cache, forgotten
with their image."""

from __future__ import annotations

import numpy as np
import pytest

from napari_channelbias._qt.saliency_records import is_own, layer_removed, record_for, status_text
from napari_channelbias._qt.saliency_results import SaliencyRequest, saliency_results
from napari_channelbias.asymmetry.metrics import slice_asymmetry
from napari_channelbias.workspace import Workspace, image_token

pytestmark = pytest.mark.gui


@pytest.fixture
def setup(make_napari_viewer):
    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((4, 16, 16), np.uint8), name="em")
    workspace = Workspace()
    request = SaliencyRequest("m", "full-output", (("target", None),), image_token(image.data, "em"), "em", 3, 0)
    maps = np.random.default_rng(0).random((3, 16, 16)).astype(np.float32)
    workspace.saliency.put(request.key(2), maps)
    return viewer, image, saliency_results(workspace), workspace.saliency, request, maps


def test_a_record_shows_the_cached_slices_and_is_kept_while_it_still_matches(setup):
    viewer, image, results, cache, request, maps = setup
    assert status_text(results) == "No saliency computed yet."
    changed = []
    results.changed.connect(changed.append)
    record = record_for(viewer, results, cache, request, image)
    assert results.get("m") is record and is_own(record) and changed == ["m"]
    assert record.computed == {2} and record.per_slice == {2: slice_asymmetry(maps)}
    for c, layer in enumerate(record.layers):
        np.testing.assert_array_equal(layer.data[2], maps[c])
        assert not layer.data[[0, 1, 3]].any()
    assert status_text(results) == "m: full-output, 1 of 4 slices"

    assert record_for(viewer, results, cache, request, image) is record and changed == ["m"]  # kept, quiet
    other = SaliencyRequest("m", "full-output", (("target", 1),), request.image, "em", 3, 0)
    fresh = record_for(viewer, results, cache, other, image)  # other parameters: nothing cached for them
    assert fresh is not record and fresh.computed == set() and changed == ["m", "m"]
    viewer.layers.remove(fresh.layers[1])  # a layer deleted: the record cannot be kept
    assert record_for(viewer, results, cache, other, image) is not fresh
    assert len(viewer.layers) == 4  # the image and one model's three layers, never more


def test_removing_the_image_evicts_its_cached_maps_and_a_saliency_layer_does_not(setup):
    viewer, image, results, cache, request, _ = setup
    record = record_for(viewer, results, cache, request, image)
    viewer.layers.remove(record.layers[0])
    layer_removed(results, cache, record.layers[0])  # the section's own layer: the maps stay
    assert cache.get(request.key(2)) is not None and results.get("m") is record
    viewer.layers.remove(image)
    layer_removed(results, cache, image)
    assert cache.get(request.key(2)) is None
