"""The "Rank initialisations on this image" panel: the robustness score in the Model section.

A small panel under the model description: one button scores the candidate initialisations on the
Data section's image (no labels needed, no training) with
:func:`~napari_channelbias.transfer.ranking.rank_inits_events`, in a worker through :mod:`.bridge`.
The table lists the pretrained candidates by rank, the best one highlighted, and random apart with the
thesis's caveat. Selecting a row fills that candidate into the Model section's init (a checkpoint
candidate fills in its path), so the next training starts from it.

The widget holds state only: it builds a :class:`~napari_channelbias.transfer.ranking.RankConfig` from
the Data and Model sections and hands it to the core.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtGui import QBrush, QColor, QFont
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..errors import ConfigError
from ..models.spec import CHECKPOINT_PREFIX
from ..transfer.ranking import DEFAULT_INITS, RankConfig, RankResult, rank_inits_events
from ..transfer.sampling import fit_patch_size
from . import bridge

BEST_BRUSH = QColor("#fdd9b5")
COLUMNS = ("rank", "init", "ρ", "± SE")
DEFAULT_PATCH = 128
DEFAULT_WINDOWS = 32  # fewer than the CLI's 64: the GUI answer should come in seconds


class RankInitsPanel(QWidget):
    """Score candidate inits on the current image; a chosen row fills the Model section's init.

    Parameters
    ----------
    section
        The Model section: its ``data`` (Data section), ``arch_combo``, ``encoder_combo``,
        ``init_combo``, ``init_path`` and ``spec`` are read and written.
    """

    def __init__(self, section: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.section = section
        self.job: bridge.Job | None = None
        self.result: RankResult | None = None

        self.rank_button = QPushButton("Rank initialisations on this image")
        self.rank_button.setToolTip(
            "Robustness score (transferability thesis, ch. 4) of each candidate init on unlabelled windows "
            "of the Data image, in seconds, before any training; higher is expected to transfer better"
        )
        self.candidates_edit = QLineEdit(",".join(DEFAULT_INITS))
        self.candidates_edit.setToolTip("Comma-separated inits; checkpoint:PATH adds a model trained earlier")
        self.windows_spin = QSpinBox()
        self.windows_spin.setRange(2, 4096)
        self.windows_spin.setValue(DEFAULT_WINDOWS)
        self.pooled_check = QCheckBox("pooled (decoder only)")
        self.pooled_check.setToolTip("Pooled features suit training the decoder only; unpooled suit full "
                                     "fine-tuning (this plugin's training)")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.setMaximumHeight(200)
        self.note = QLabel("")
        self.note.setWordWrap(True)

        form = QFormLayout()
        form.addRow("candidates", self.candidates_edit)
        row = QHBoxLayout()
        row.addWidget(QLabel("windows"))
        row.addWidget(self.windows_spin)
        row.addWidget(self.pooled_check)
        form.addRow(row)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.rank_button)
        column.addLayout(form)
        column.addWidget(self.table)
        column.addWidget(self.note)

        self.rank_button.clicked.connect(bridge.guarded(self.start, "Rank initialisations"))
        self.table.itemSelectionChanged.connect(bridge.guarded(self._use_selected, "Choose init"))

    # -- running -----------------------------------------------------------------------------------
    def config(self) -> tuple[Any, RankConfig]:
        """The image data and the ranking settings the Data and Model sections describe."""
        data = getattr(self.section, "data", None)
        if data is None:
            raise ConfigError("ranking needs the Data section (its image is what the candidates are scored on)")
        selection = data.selection()
        patch = fit_patch_size(tuple(selection.image.data.shape), selection.axis, DEFAULT_PATCH)
        spec = self.section.spec(window=selection.window)
        inits = [t.strip() for t in self.candidates_edit.text().split(",") if t.strip()]
        config = RankConfig(
            inits=inits, arch=spec.arch, encoder=spec.encoder, window=selection.window,
            weights_path=spec.weights_path, pooled=self.pooled_check.isChecked(),
            windows=int(self.windows_spin.value()), patch_size=patch, padding=selection.padding,
            axis=selection.axis,
        )
        config.candidates()  # validate the names now, as a notification, before the worker starts
        return selection.image.data, config

    def start(self) -> bridge.Job:
        """Rank the candidates in a worker; the table fills when it is done."""
        if self.job is not None and self.job.is_running:
            raise ConfigError("a ranking is already running; wait until it is done")
        volume, config = self.config()
        self.rank_button.setEnabled(False)
        self.note.setText("ranking…")

        def finished(_job: Any) -> None:
            self.rank_button.setEnabled(True)
            if self.result is None:
                self.note.setText("")

        self.result = None
        self.job = bridge.start_job(
            self, rank_inits_events(volume, config), "Ranking initialisations", total=len(config.candidates()),
            on_done=self.show_result, on_finished=finished,
        )
        return self.job

    # -- showing and choosing ----------------------------------------------------------------------
    def show_result(self, result: RankResult) -> None:
        """Fill the table: pretrained by rank (best highlighted and selected), then random apart."""
        self.result = result
        rows = [*result.pretrained, *result.random]
        self.table.blockSignals(True)
        self.table.setRowCount(len(rows))
        bold = QFont()
        bold.setBold(True)
        for r, s in enumerate(rows):
            values = (str(s.rank) if s.rank is not None else "apart", s.init, f"{s.rho:.4f}", f"{s.se:.4f}")
            for c, text in enumerate(values):
                item = QTableWidgetItem(text)
                if s.init == result.best:
                    item.setBackground(QBrush(BEST_BRUSH))
                    item.setFont(bold)
                    item.setToolTip("best pretrained candidate: highest robustness")
                elif s.is_random:
                    item.setForeground(QBrush(QColor("#888888")))
                    item.setToolTip(result.warning)
                self.table.setItem(r, c, item)
        self.table.clearSelection()
        self.table.blockSignals(False)
        best = f"best pretrained: {result.best}. " if result.best else ""
        caveat = f"Random is {result.warning}." if result.random else ""
        self.note.setText(f"{best}Select a row to use it as the init. {caveat}".strip())

    def selected_init(self) -> str | None:
        """The init of the selected row, or None."""
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 1)
        return item.text() if item is not None else None

    def _use_selected(self) -> None:
        init = self.selected_init()
        if init is not None:
            self.choose(init)

    def choose(self, init: str) -> None:
        """Fill ``init`` into the Model section (a checkpoint candidate as "checkpoint" plus its path)."""
        if init.startswith(CHECKPOINT_PREFIX):
            self.section.init_combo.setCurrentText("checkpoint")
            self.section.init_path.setText(init[len(CHECKPOINT_PREFIX):])
        else:
            self.section.init_combo.setCurrentText(init)
