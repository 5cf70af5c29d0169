"""Everything napari and Qt: the plugin's docks, the worker bridge, readers, writers and sample data.

Nothing outside this package imports Qt or napari. The modules here are thin: widgets collect
settings into the core's config dataclasses and hand them to the core through :mod:`.bridge`, the only
module that owns ``napari.qt.threading``. The state shared by the docks of one viewer (loaded models,
the saliency cache) is a :class:`napari_channelbias.workspace.Workspace`, found with
:func:`napari_channelbias.workspace.workspace_for`.
"""

from ..llvm_guard import avoid_triton_llvm_clash as _avoid_triton_llvm_clash

_avoid_triton_llvm_clash()  # a no-op unless napari's OpenGL already loaded the system LLVM
