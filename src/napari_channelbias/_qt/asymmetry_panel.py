"""The live asymmetry panel: how unequally a model attends to the slices of its window.

For the slice under the viewer's slider the panel shows SWd and FWd (and the JS and Bhattacharyya
variants), the channel shares, and the empirical CDFs of the first and last channel with the area
between them (their W1) shaded; below, SWd over z with the current slice marked, and after a
whole-volume saliency run the volume's pooled metrics with the mean and standard error of the
per-slice values. A second model can be compared in the same plots (same axes, two colours).

Every number is the core's: :func:`~napari_channelbias.asymmetry.slice_asymmetry` on the cached maps of
that slice (computed in the saliency worker, or here on first display) and the
:class:`~napari_channelbias.volume_asymmetry.VolumeAsymmetryResult` of the whole-volume run. Work on slider
moves is lazy and small, coalesced while the slider is dragged: the metrics of a slice are computed once
(kept in the record), the drawn CDF curves once per (request, slice) (kept here), and the figure is
updated in place and blitted (:mod:`.asymmetry_canvas`), the tables' cells rewritten in place.

Beside the shares the panel draws the channel-ablation drops (:mod:`.ablation_bars`): what each model
loses when one input channel is removed, the check that the attribution is faithful.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

from napari.utils.notifications import show_info
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..asymmetry.figures import CDF_POINTS, Curves, channel_labels, save_figure
from ..asymmetry.metrics import METRICS, SliceAsymmetry, cdf_pair, joint_scale, slice_asymmetry
from ..errors import ChannelBiasError
from ..io.atomic import write_csv
from ..workspace import Workspace
from . import bridge
from .ablation_bars import AblationControls
from .asymmetry_canvas import AsymmetryCanvas, SliceView
from .asymmetry_tables import METRIC_LABELS, METRIC_TIPS, fit_height, format_value, make_table, volume_cell
from .compact import compact_combo
from .plots import FigureWidget, PlotTheme
from .saliency_results import SaliencyRecord, saliency_results
from .viewer_links import connect_while_alive, current_index

NONE = "(none)"
# The fast path draws each CDF on 400 grid points: below one pixel apart on a dock a few hundred pixels
# wide, so the same picture as CDF_POINTS (1024) at less than half the vertices (the shaded area stays
# within two grid spacings, 1.3 units of 255, of W1; the W1 numbers are the core's, not the drawing's).
DRAWN_CDF_POINTS = 400
CURVE_CACHE_SLICES = 512  # (request, z) entries of drawn CDF curves kept: 3 x 400 floats each, ~5 MB
class AsymmetryPanel(QWidget):
    """Per-slice and whole-volume channel-asymmetry figures of one model, or two compared.

    Parameters
    ----------
    viewer
        The napari viewer (its slider drives the panel).
    workspace
        The viewer's shared state; the maps come from its saliency cache.
    """

    def __init__(self, viewer: Any, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.workspace = workspace
        self.results = saliency_results(workspace)
        self.slice_metrics: dict[str, SliceAsymmetry] = {}  # what the slice table shows, by model
        self.slice_z: dict[str, int] = {}
        self._compare_chosen = False
        self._curves: OrderedDict[tuple[Any, int], Curves] = OrderedDict()  # (request, z) -> drawn CDFs
        self._table_frame: tuple[Any, ...] | None = None
        self._build()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(30)  # coalesce a dragged slider into one update per rest
        self._timer.timeout.connect(bridge.guarded(self.update_slice, "Asymmetry panel"))
        # A whole-volume run reports every slice; redraw at most every 200 ms while it streams in.
        self._results_timer = QTimer(self)
        self._results_timer.setSingleShot(True)
        self._results_timer.setInterval(200)
        self._results_timer.timeout.connect(bridge.guarded(self._results_changed, "Asymmetry panel"))
        connect_while_alive(self, viewer.dims.events.current_step, self._slice_moved)
        connect_while_alive(self, viewer.events.theme, self._theme_changed)
        self.results.changed.connect(self._schedule_results)
        self._unsubscribe = workspace.subscribe(self._model_event)
        self.destroyed.connect(self._unsubscribe)
        self._refresh_models()
        self.update_all()

    def _model_event(self, event: str, name: str) -> None:
        """A model removed or added under a name: what was drawn or ablated for that name is no longer its."""
        if event not in ("removed", "added"):
            return
        # Names are reused (Workspace.unique_name): a model loaded as "m" after "m" was removed must not
        # be shown the old one's CDF curves or ablation drops.
        for key in [k for k in self._curves if k[0].model == name]:
            del self._curves[key]
        self.ablation.forget_model(name)

    # -- layout -----------------------------------------------------------------------------------
    def _build(self) -> None:
        self.model_combo = QComboBox()
        self.model_combo.setToolTip("A model whose saliency was computed in the Saliency section")
        self.compare_combo = QComboBox()
        self.compare_combo.setToolTip("A second model drawn in the same plots (e.g. ImageNet vs Uniform-Green)")
        self.compare_combo.activated.connect(self._compare_activated)
        for combo in (self.model_combo, self.compare_combo):
            compact_combo(combo)  # long model names must not widen the panel
            combo.currentTextChanged.connect(bridge.guarded(self.update_all, "Asymmetry panel"))
        form = QFormLayout()
        form.addRow("Model", self.model_combo)
        form.addRow("Compare with", self.compare_combo)

        self.status = QLabel()
        self.status.setWordWrap(True)
        self.slice_table = make_table(len(METRICS), 1)
        self.slice_table.setToolTip("Metrics of the current slice, on jointly scaled maps (one factor per "
                                    "slice for all channels, so the channels' relative magnitudes count)")
        self.plot = FigureWidget(PlotTheme.from_napari(self.viewer.theme), height=560)
        self.canvas = AsymmetryCanvas(self.plot)
        self.ax_shares, self.ax_drops = self.canvas.ax_shares, self.canvas.ax_drops
        self.ax_cdf, self.ax_z = self.canvas.ax_cdf, self.canvas.ax_z
        self.ablation = AblationControls(self.viewer, self.workspace, self._records,
                                         lambda name: self.slice_z.get(name), self._slice_moved)

        self.volume_box = QGroupBox("Whole volume")
        self.volume_label = QLabel()
        self.volume_label.setWordWrap(True)
        self.volume_table = make_table(len(METRICS), 1, lines=2)
        self.volume_table.setToolTip("pooled (mean ± SE): the metric of each channel's values pooled over all "
                                     "slices (after each slice's joint scaling), then in brackets the mean and "
                                     "standard error of the per-slice values")
        vbox = QVBoxLayout(self.volume_box)
        vbox.addWidget(self.volume_label)
        vbox.addWidget(self.volume_table)

        self.csv_button = QPushButton("Export CSV…")
        self.csv_button.setToolTip("Per-slice and whole-volume numbers of the shown models")
        self.png_button = QPushButton("Export PNG…")
        self.png_button.setToolTip("The figure as shown")
        self.csv_button.clicked.connect(bridge.guarded(self._export_csv_dialog, "Export CSV"))
        self.png_button.clicked.connect(bridge.guarded(self._export_png_dialog, "Export PNG"))
        buttons = QHBoxLayout()
        buttons.addWidget(self.csv_button)
        buttons.addWidget(self.png_button)

        content = QWidget()
        inner = QVBoxLayout(content)
        inner.addLayout(form)
        inner.addWidget(self.status)
        inner.addWidget(self.slice_table)
        inner.addWidget(self.plot)
        inner.addWidget(self.ablation)
        inner.addWidget(self.volume_box)
        inner.addLayout(buttons)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        self.setMinimumWidth(320)

    # -- model lists ------------------------------------------------------------------------------
    def _compare_activated(self, *_: Any) -> None:
        self._compare_chosen = True  # the user picked: stop choosing the second model for them

    def _refresh_models(self) -> None:
        names = self.results.names()
        a, b = self.model_combo.currentText(), self.compare_combo.currentText()
        for combo in (self.model_combo, self.compare_combo):
            combo.blockSignals(True)
            combo.clear()
        self.model_combo.addItems(names)
        self.compare_combo.addItems([NONE, *names])
        if a in names:
            self.model_combo.setCurrentText(a)
        first = self.model_combo.currentText()
        if b in names and b != first:
            self.compare_combo.setCurrentText(b)
        elif not self._compare_chosen and len(names) > 1:
            self.compare_combo.setCurrentText(next(n for n in names if n != first))
        for combo in (self.model_combo, self.compare_combo):
            combo.blockSignals(False)

    def shown_models(self) -> list[str]:
        """The models the panel shows: the chosen one, then the compared one (if any)."""
        out = []
        for text in (self.model_combo.currentText(), self.compare_combo.currentText()):
            if text and text != NONE and text not in out and self.results.get(text) is not None:
                out.append(text)
        return out

    def _records(self) -> dict[str, SaliencyRecord]:
        return {name: rec for name in self.shown_models() if (rec := self.results.get(name)) is not None}

    # -- updates ----------------------------------------------------------------------------------
    @property
    def pending(self) -> bool:
        """True while an update is scheduled (the slider moved or new maps arrived) but not drawn yet."""
        return self._timer.isActive() or self._results_timer.isActive()

    def _slice_moved(self, *_: Any) -> None:
        self._timer.start()

    def _theme_changed(self, *_: Any) -> None:
        try:
            self.plot.set_theme(PlotTheme.from_napari(self.viewer.theme))
            self.canvas.invalidate()
            self.update_all()
        except Exception as exc:  # a napari event callback must not raise
            bridge.report_error(exc, "Asymmetry panel")

    def _schedule_results(self, *_: Any) -> None:
        if not self._results_timer.isActive():
            self._results_timer.start()

    def _results_changed(self) -> None:
        self._refresh_models()
        self.update_all()

    def update_all(self) -> None:
        """Redraw everything: the current slice, SWd over z and the whole-volume figures."""
        self.update_slice()
        self._update_volume()

    @property
    def full_redraw(self) -> bool:
        """The old path: every update recomputes the drawn curves and redraws the whole figure."""
        return self.canvas.full_redraw

    @full_redraw.setter
    def full_redraw(self, value: bool) -> None:
        self.canvas.full_redraw = bool(value)
        self.canvas.invalidate()
        self._table_frame = None

    def _slice_curves(self, rec: SaliencyRecord, z: int) -> tuple[SliceAsymmetry, Curves] | str:
        """Metrics and drawn CDFs of slice ``z`` (from the caches when known), or why there are none."""
        key = (rec.request, z)
        curves = None if self.full_redraw else self._curves.get(key)
        metrics = rec.per_slice.get(z)
        if curves is not None and metrics is not None:  # per_slice holds only computed slices
            self._curves.move_to_end(key)
            return metrics, curves
        maps = rec.maps(self.workspace.saliency, z)
        if maps is None:
            return f"slice {z} not computed yet (Saliency: Current slice)"
        if metrics is None:
            metrics = rec.per_slice[z] = slice_asymmetry(maps)
        scaled = joint_scale(maps)
        points = CDF_POINTS if self.full_redraw else DRAWN_CDF_POINTS  # the old path: what plot_cdf_pair drew
        curves = cdf_pair(scaled[0], scaled[-1], max_points=points)
        if not self.full_redraw:  # the old path's curves are on another grid: never kept
            self._curves[key] = curves
            while len(self._curves) > CURVE_CACHE_SLICES:
                self._curves.popitem(last=False)
        return metrics, curves

    def update_slice(self) -> None:
        """Metrics, shares, CDFs and ablation drops of the current slice for the shown models; the z marker."""
        records = self._records()
        self.slice_metrics, self.slice_z = {}, {}
        curves: dict[str, Curves] = {}
        notes = []
        for name, rec in records.items():
            z = current_index(self.viewer, rec.layers[0], rec.request.axis)
            self.slice_z[name] = z
            if rec.request.window < 3:
                notes.append(f"{name}: window {rec.request.window} has no channel pairs (needs 3 or more)")
                continue
            found = self._slice_curves(rec, z)
            if isinstance(found, str):
                notes.append(f"{name}: {found}")
                continue
            self.slice_metrics[name], curves[name] = found
        if not records:
            notes.append("No saliency yet: compute it in the Saliency section (Current slice or Whole volume).")
        self.status.setText("\n".join([self._describe(records), *notes]).strip())
        self._fill_slice_table(records)
        self._draw(records, curves)

    def _describe(self, records: dict[str, SaliencyRecord]) -> str:
        """``"slice 16 of sample EM, full-output"``, per model only where the models differ."""
        parts = {n: (self.slice_z[n], r.request.image_name, r.request.describe()) for n, r in records.items()}
        if not parts:
            return ""
        if len(set(parts.values())) == 1:
            z, image, method = next(iter(parts.values()))
            return f"Slice {z} of {image}, {method}"
        return "; ".join(f"{n}: slice {z} of {image}, {method}" for n, (z, image, method) in parts.items())

    def _fill_slice_table(self, records: dict[str, SaliencyRecord]) -> None:
        windows = {r.request.window for r in records.values()}
        window = max(windows) if windows else 3
        row_keys = [*METRICS, *(f"share_{c}" for c in range(window))]
        names = list(records) or ["-"]
        frame = (tuple(row_keys), tuple(names))
        if frame != self._table_frame:  # rows, headers and tooltips only when they change
            labels = [METRIC_LABELS[m] for m in METRICS] + [f"share {s}" for s in channel_labels(window)]
            self.slice_table.setRowCount(len(row_keys))
            self.slice_table.setColumnCount(len(names))
            self.slice_table.setVerticalHeaderLabels(labels)
            self.slice_table.setHorizontalHeaderLabels(names)
            for r, key in enumerate(row_keys):
                tip = METRIC_TIPS.get(key, "fraction of the slice's saliency in this channel")
                self.slice_table.verticalHeaderItem(r).setToolTip(tip)
                for c in range(len(names)):
                    item = QTableWidgetItem("")
                    item.setToolTip(tip)
                    self.slice_table.setItem(r, c, item)
            fit_height(self.slice_table)
            self._table_frame = None if self.full_redraw else frame
        for c, name in enumerate(names):
            scalars = self.slice_metrics[name].scalars() if name in self.slice_metrics else {}
            for r, key in enumerate(row_keys):
                item = self.slice_table.item(r, c)
                text = format_value(scalars[key]) if key in scalars else ""
                if item.text() != text:
                    item.setText(text)

    def _draw(self, records: dict[str, SaliencyRecord], curves: dict[str, Curves]) -> None:
        rec0 = next(iter(records.values()), None)
        series = {n: (list(r.per_slice), [m.swd for m in r.per_slice.values()])
                  for n, r in records.items() if r.per_slice}
        z = next(iter(self.slice_z.values()), None)
        title = (self._describe(records) if len(records) and self.slice_z else "") or "No saliency computed"
        tops = [max(m.shares) for r in records.values() for m in r.per_slice.values()]
        z_range = None
        if rec0 is not None:
            z_range = (0, int(rec0.layers[0].data.shape[rec0.request.axis]) - 1)
        self.canvas.show(SliceView(
            models=tuple(records), window=rec0.request.window if rec0 is not None else 3,
            shares={n: m.shares for n, m in self.slice_metrics.items()}, curves=curves,
            drops=self.ablation.drops(records, self.slice_z), drop_label=self.ablation.label(),
            drop_limits=self.ablation.limits(records), shares_top=max(tops) if tops else None,
            series=series, z=z, z_range=z_range, title=title if len(title) <= 60 else f"Slice {z}"))

    def _update_volume(self) -> None:
        records = self._records()
        done = {n: r.volume for n, r in records.items() if r.volume is not None}
        missing = [n for n in records if n not in done]
        if not records:
            self.volume_label.setText("Appears after a whole-volume saliency run.")
        elif missing:
            self.volume_label.setText(f"No whole-volume run yet for {', '.join(missing)} "
                                      "(Saliency: Whole volume).")
        else:
            counts = {v.n_slices for v in done.values()}
            slices = f"{counts.pop()} slices" if len(counts) == 1 else ", ".join(
                f"{n}: {v.n_slices} slices" for n, v in done.items())
            self.volume_label.setText(f"{slices}. Each cell: the pooled value; below it the mean ± SE of "
                                      "the per-slice values.")
        window = max((v.window for v in done.values()), default=3)
        row_keys = [*METRICS, *(f"share_{c}" for c in range(window))]
        labels = [METRIC_LABELS[m] for m in METRICS] + [f"share {s}" for s in channel_labels(window)]
        self.volume_table.setRowCount(len(row_keys))
        self.volume_table.setColumnCount(max(len(done), 1))
        self.volume_table.setVerticalHeaderLabels(labels)
        self.volume_table.setHorizontalHeaderLabels(list(done) or ["-"])
        self.volume_table.clearContents()
        for c, res in enumerate(done.values()):
            pooled = res.pooled.scalars()
            for r, key in enumerate(row_keys):
                self.volume_table.setItem(r, c, QTableWidgetItem(volume_cell(pooled.get(key), res.slice_mean.get(key),
                                                                             res.slice_se.get(key))))
        self.volume_table.setVisible(bool(done))
        fit_height(self.volume_table)

    # -- export -----------------------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        """The shown models' numbers as CSV rows: one per computed slice, the volume rows, then the
        ablation rows (one per slice and mode, ``ablation_<measure>_<offset>`` columns; blank = missing)."""
        out: list[dict[str, Any]] = []
        for name, rec in self._records().items():
            base = {"model": name, "method": rec.request.describe(), "image": rec.request.image_name,
                    "window": rec.request.window}
            for z in sorted(rec.per_slice):
                out.append({**base, "scope": "slice", "z": z, **rec.per_slice[z].scalars()})
            if rec.volume is not None:
                out.extend({**base, **row, "n_slices": rec.volume.n_slices}
                           for row in rec.volume.to_rows() if row["scope"] != "slice")
            out.extend({**base, **row} for row in self.ablation.rows(name, rec))
        return out

    def _check_something_to_export(self) -> None:
        if not self.rows():
            raise ChannelBiasError("nothing to export: compute saliency for a slice or the volume first "
                                   "(Saliency section)")

    def export_csv(self, path: str | Path) -> Path:
        """Write :meth:`rows` as CSV atomically."""
        self._check_something_to_export()
        return write_csv(path, self.rows())

    def export_png(self, path: str | Path) -> Path:
        """Write the figure as PNG atomically."""
        self._check_something_to_export()
        with self.canvas.exporting():
            return save_figure(self.plot.figure, path, size=(5.0, 8.0))

    def _ask_path(self, title: str, suffix: str, kind: str) -> Path | None:
        name = "-vs-".join(self.shown_models()) or "asymmetry"
        path, _ = QFileDialog.getSaveFileName(self, title, f"{name}-asymmetry{suffix}", f"{kind} (*{suffix})")
        if not path:
            return None
        path = Path(path)
        return path if path.suffix.lower() == suffix else path.with_name(path.name + suffix)

    def _export_csv_dialog(self) -> None:
        self._check_something_to_export()
        path = self._ask_path("Export asymmetry numbers", ".csv", "CSV")
        if path is not None:
            self.export_csv(path)
            show_info(f"wrote {path}")

    def _export_png_dialog(self) -> None:
        self._check_something_to_export()
        path = self._ask_path("Export asymmetry figure", ".png", "PNG image")
        if path is not None:
            self.export_png(path)
            show_info(f"wrote {path}")
