"""The per-slice asymmetry table of a results store and its whole-volume summary: one rule, CLI and GUI.

``tables/<model>/asymmetry-<method>`` holds one row per slice with every field of that slice's
:class:`~napari_channelbias.asymmetry.metrics.SliceAsymmetry` (the scalar metrics, the channel shares,
the upper triangle of the pairwise W1 matrix and the joint scaling factor), so a row gives back the
slice's metrics exactly; the table's summary is the
:class:`~napari_channelbias.asymmetry.volume.VolumeAsymmetryResult` of the run (``to_dict``), written by
the driving process once every slice is in. ``channelbias asymmetry --store`` and the GUI's whole-volume
Saliency run both write through :func:`write_asymmetry` (rows as slices finish:
:func:`asymmetry_table` and :func:`write_slice_row`); opening a store reads them back with
:func:`stored_asymmetry`. A row already done is never rewritten.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from ..asymmetry.metrics import METRICS, SliceAsymmetry, all_pairs
from ..asymmetry.volume import VolumeAsymmetryResult
from .results import ResultsStore
from .tables import SliceTable, open_table, slice_table


def table_name(method: str) -> str:
    """``asymmetry-<method>``: the table's name under ``tables/<model>/``."""
    return f"asymmetry-{method}"


def columns(window: int) -> list[str]:
    """The table's columns for a window of ``window`` channels."""
    return [*METRICS, *(f"share_{c}" for c in range(window)),
            *(f"w1_{i}_{j}" for i, j in all_pairs(window)), "scale"]


def slice_row(metrics: SliceAsymmetry) -> dict[str, float]:
    """One table row: every field of ``metrics`` (the W1 matrix as its upper triangle)."""
    row = metrics.scalars()
    row.update({f"w1_{i}_{j}": metrics.w1[i][j] for i, j in all_pairs(metrics.window)})
    row["scale"] = metrics.scale
    return row


def row_metrics(row: Mapping[str, float], window: int) -> SliceAsymmetry:
    """The :class:`SliceAsymmetry` a row of :func:`slice_row` came from."""
    w1 = [[0.0] * window for _ in range(window)]
    for i, j in all_pairs(window):
        w1[i][j] = w1[j][i] = float(row[f"w1_{i}_{j}"])
    return SliceAsymmetry(window=window, **{m: float(row[m]) for m in METRICS},
                          shares=tuple(float(row[f"share_{c}"]) for c in range(window)),
                          w1=tuple(tuple(r) for r in w1), scale=float(row["scale"]))


def asymmetry_table(
    store: ResultsStore, model: str, method: str, window: int, *, axis: int, scaling: str = "joint",
    percentile: float = 99.9, bins: int = 65536,
) -> SliceTable:
    """The table of ``model`` and ``method``, created if absent; refused if it holds other settings."""
    settings = {"scaling": scaling, "percentile": float(percentile), "bins": int(bins)}
    return slice_table(store, model, table_name(method), columns(window), axis=axis, settings=settings)


def write_slice_row(table: SliceTable, z: int, metrics: SliceAsymmetry) -> bool:
    """Write slice ``z``'s row unless it is done already; returns whether it was written."""
    if table.done_mask()[int(z)]:
        return False
    table.write_row(z, slice_row(metrics))
    return True


def write_asymmetry(store: ResultsStore, model: str, method: str, result: VolumeAsymmetryResult, *,
                    axis: int) -> SliceTable:
    """Every slice's row that is missing, then the volume summary: a whole run's table."""
    table = asymmetry_table(store, model, method, result.window, axis=axis, scaling=result.scaling,
                            percentile=result.percentile, bins=result.bins)
    done = table.done_mask()
    for z, metrics in result.series:
        if not done[z]:
            table.write_row(z, slice_row(metrics))
    table.set_summary(result.to_dict())
    return table


@dataclass(frozen=True)
class StoredAsymmetry:
    """What a store holds for one model and method: its per-slice metrics and the summary (or None)."""

    model: str
    method: str
    per_slice: dict[int, SliceAsymmetry]
    volume: VolumeAsymmetryResult | None


def stored_asymmetry(store: ResultsStore, model: str, method: str) -> StoredAsymmetry | None:
    """The asymmetry table of ``model`` and ``method`` read back (None if the store has none)."""
    key = f"tables/{model}/{table_name(method)}"
    if key not in store.root:
        return None
    table = open_table(store, key)
    window = sum(1 for c in table.columns if c.startswith("share_"))
    per_slice = {}
    for row in table.rows():
        if all(f"w1_{i}_{j}" in row for i, j in all_pairs(window)) and not math.isnan(row["swd"]):
            per_slice[int(row["z"])] = row_metrics(row, window)
    summary = table.summary
    volume = VolumeAsymmetryResult.from_dict(summary) if summary is not None else None
    if volume is not None:  # the summary has the exact per-slice dicts of the run that wrote it
        per_slice.update(dict(volume.series))
    return StoredAsymmetry(model, method, per_slice, volume)

