"""``channelbias gui [PATH]``: napari with the plugin docked, on a volume or on the sample.

Volumes are opened (lazily) and checked *before* the window appears, so a wrong path fails at once with
the usual one-line error instead of an empty viewer. Checkpoints load in the background through the
Model section, like a click on its Load button.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import napari

from ..errors import CheckpointError, VolumeError
from ..llvm_guard import avoid_triton_llvm_clash
from .hooks import LayerData, layer_data_for, sample_em
from .main_widget import MAIN_WIDGET, PLUGIN, ChannelBiasWidget
from .store_layers import is_results_store, store_layer_data


def _layers(path: str | os.PathLike[str] | None, labels: str | os.PathLike[str] | None) -> list[LayerData]:
    if path is None:
        if labels is not None:
            raise VolumeError("--labels needs the image volume they belong to: channelbias gui IMAGE --labels L")
        return sample_em()
    if labels is None and is_results_store(path):  # a results store: its image and every stored result
        return store_layer_data(path)
    image = layer_data_for(path)
    if labels is None:
        return [(image[0], image[1], "image")]
    label = layer_data_for(labels)
    if tuple(label[0].shape) != tuple(image[0].shape):
        raise VolumeError(
            f"labels {labels} have shape {tuple(label[0].shape)} but the image {path} has "
            f"{tuple(image[0].shape)}; they must match voxel for voxel"
        )
    if "scale" in image[1]:
        label[1]["scale"] = image[1]["scale"]  # the labels sit on the image even without their own metadata
    return [(image[0], image[1], "image"), (label[0], label[1], "labels")]


def _dock(viewer: Any) -> ChannelBiasWidget:
    """Dock the main widget through npe2, exactly as the Plugins menu does."""
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, MAIN_WIDGET)
    return widget


def launch(
    path: str | os.PathLike[str] | None = None,
    labels: str | os.PathLike[str] | None = None,
    checkpoints: Sequence[str | os.PathLike[str]] = (),
    *,
    viewer: Any = None,
    run: bool = True,
) -> Any:
    """Open napari with the plugin docked on ``path`` (or the procedural sample) and run it.

    Parameters
    ----------
    path
        An image volume in any form :func:`napari_channelbias.io.read.open_volume` reads; None for the
        sample (with its labels).
    labels
        A label volume of the same shape, opened as a Labels layer.
    checkpoints
        Checkpoints to load into the workspace (in the background).
    viewer
        An existing viewer to use instead of a new one (tests).
    run
        Start napari's event loop (blocks until the window closes); False returns at once.

    Returns
    -------
    napari.Viewer
        The viewer (its main dock's widget is in ``viewer.window.dock_widgets``).

    Raises
    ------
    VolumeError, CheckpointError
        Before any window opens, for a volume that cannot be opened or a missing checkpoint.
    """
    layers = _layers(path, labels)
    missing = [str(c) for c in checkpoints if not Path(c).is_file()]
    if missing:
        raise CheckpointError(f"checkpoint(s) not found: {', '.join(missing)}")

    if viewer is None:
        viewer = napari.Viewer(title="napari-channelbias")
    avoid_triton_llvm_clash()  # the window's OpenGL context may have loaded the system LLVM just now
    for data, meta, kind in layers:
        getattr(viewer, f"add_{kind}")(data, **meta)
    widget = _dock(viewer)
    model_section = widget.sections.get("Model")
    for checkpoint in checkpoints:
        model_section.load_checkpoint_file(checkpoint)
    if run:
        napari.run()
    return viewer
