"""One :class:`~napari_channelbias.workspace.Workspace` per napari viewer.

napari builds each dock from its own manifest command, so the main dock and the asymmetry dock are
created separately; both ask :func:`workspace_for` and get the same workspace for the same viewer. The
mapping holds viewers weakly: a closed viewer's workspace goes away with it.
"""

from __future__ import annotations

import weakref
from typing import Any

from ..workspace import Workspace

_WORKSPACES: weakref.WeakKeyDictionary[Any, Workspace] = weakref.WeakKeyDictionary()


def workspace_for(viewer: Any) -> Workspace:
    """The workspace shared by the docks of ``viewer`` (created on first use)."""
    workspace = _WORKSPACES.get(viewer)
    if workspace is None:
        workspace = _WORKSPACES[viewer] = Workspace()
    return workspace


def forget_viewer(viewer: Any) -> None:
    """Drop ``viewer``'s workspace now (its models and cached maps), e.g. when the viewer closes."""
    workspace = _WORKSPACES.pop(viewer, None)
    if workspace is not None:
        workspace.clear()
