"""The Model section's *Export...*: the selected model as a bioimage.io package, in a worker.

The widget only gathers what the core needs (the selected model and card, the Data section's image for
the test tensors and the attribution audit, a target path) and hands it to
:func:`napari_channelbias.sharing.export.export_events` through the bridge; the export's own progress
events drive the progress bar, its errors (existing file, read-only folder, ...) become notifications.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

from napari.utils.notifications import show_info
from qtpy.QtWidgets import QFileDialog

from ..errors import ConfigError
from ..sharing.export import export_events
from . import bridge

PACKAGE_FILTER = "bioimage.io packages (*.zip);;All files (*)"


def export_selected(section: Any, path: str | Path, authors: list[str] | None = None) -> bridge.Job:
    """Export the model selected in ``section`` (the ModelSection) to ``path`` (.zip) in a worker.

    The image for the test tensors and the audit is the Data section's image layer. The model is copied
    first, so the export (which runs the model on the CPU) never races the workspace's own use of it.
    Returns the started job. (``section`` is untyped: importing ModelSection here would be a cycle.)
    """

    if section.job is not None and section.job.is_running:
        raise ConfigError("a model is being built, loaded or exported; wait until it is done")
    if section.data is None:
        raise ConfigError("exporting needs the Data section: its image gives the test tensors and the audit")
    entry = section.workspace.get(section.selected_name())
    image = section.data.image_layer()
    path = Path(path)
    if path.suffix == "":
        path = path.with_suffix(".zip")
    card = dataclasses.replace(entry.card, name=entry.name)
    model = copy.deepcopy(entry.model)
    gen = export_events(model, card, path, image.data, image_name=image.name, authors=authors)

    def done(result: Any) -> None:
        audit = result.audit
        show_info(f"exported {entry.name} to {result.path} (SWd {audit['swd']:.3f}, FWd {audit['fwd']:.3f})")

    section.job = bridge.start_job(section, gen, f"Exporting {entry.name}", on_done=done)
    return section.job


def export_dialog(section: Any) -> None:
    """Ask for the package path, then :func:`export_selected`."""
    name = section.selected_name()
    path, _ = QFileDialog.getSaveFileName(section, "Export bioimage.io package", f"{name}.zip", PACKAGE_FILTER)
    if path:
        export_selected(section, path)
