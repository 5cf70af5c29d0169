"""One workspace per viewer, held weakly."""

from __future__ import annotations

import gc
import weakref

from napari_channelbias._qt.session import forget_viewer, workspace_for


class FakeViewer:
    """Any weak-referenceable object stands in for a viewer here."""


def test_one_workspace_per_viewer_and_gone_with_it():
    a, b = FakeViewer(), FakeViewer()
    assert workspace_for(a) is workspace_for(a)
    assert workspace_for(a) is not workspace_for(b)
    workspace = workspace_for(a)
    workspace.add_model("m", object(), None)
    forget_viewer(a)
    assert len(workspace) == 0 and workspace_for(a) is not workspace
    held = weakref.ref(workspace_for(b))
    del b
    gc.collect()
    assert held() is None  # the viewer held its workspace; nothing else did
