"""Per-slice metrics tables of a results store: one row per slice, one chunk per row.

A table is a float64 zarr array ``(n_slices, n_columns)`` at ``tables/<model>/<name>`` with its column
names in the attributes; rows not yet computed are NaN and unmarked in the table's done mask. Like the
images, each slice's row is its own chunk object, so workers fill their own rows without locks, and a
finished row is never rewritten. A whole-volume summary (for example the pooled asymmetry of
:class:`~napari_channelbias.asymmetry.volume.VolumeAsymmetryResult`) is stored as JSON in the table's
attributes by the driving process once every row is in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ChannelBiasError
from .layout import progress_key, table_key
from .results import ResultsStore, _jsonable


class SliceTable:
    """An opened per-slice table: :meth:`write_row`, :meth:`rows`, :meth:`missing`, the summary."""

    def __init__(self, array: Any, done: Any, key: str) -> None:
        self.array, self.done, self.key = array, done, key
        info = dict(array.attrs["channelbias"])
        self.columns: list[str] = list(info["columns"])
        self.settings: dict[str, Any] = info.get("settings", {})

    def done_mask(self) -> np.ndarray:
        return np.asarray(self.done[:]).astype(bool)

    def missing(self, slices: Iterable[int]) -> list[int]:
        mask = self.done_mask()
        return [int(z) for z in slices if not mask[int(z)]]

    def write_row(self, z: int, values: Mapping[str, float]) -> None:
        """Write slice ``z``'s metrics (missing columns become NaN), then mark the row done."""
        unknown = sorted(set(values) - set(self.columns))
        if unknown:
            raise ChannelBiasError(f"{self.key}: no column(s) {', '.join(unknown)}")
        row = np.array([float(values.get(c, math.nan)) for c in self.columns], dtype=np.float64)
        self.array[int(z)] = row
        self.done[int(z)] = 1

    def rows(self) -> list[dict[str, Any]]:
        """``{"z": z, column: value, ...}`` for every finished slice, in z order."""
        mask = self.done_mask()
        data = np.asarray(self.array[:])
        return [{"z": int(z), **{c: float(v) for c, v in zip(self.columns, data[z], strict=True)}}
                for z in np.flatnonzero(mask)]

    @property
    def summary(self) -> dict[str, Any] | None:
        return dict(self.array.attrs["channelbias"]).get("summary")

    def set_summary(self, summary: dict[str, Any]) -> None:
        """Store a whole-volume summary (JSON) beside the rows; the driving process calls this."""
        info = dict(self.array.attrs["channelbias"])
        info["summary"] = _jsonable(summary)
        self.array.attrs["channelbias"] = info


def slice_table(
    store: ResultsStore, model: str, name: str, columns: Sequence[str], *, axis: int,
    settings: Mapping[str, Any],
) -> SliceTable:
    """The table ``tables/<model>/<name>``, created if absent; refused if it holds another run's rows."""
    key = table_key(model, name)
    settings = _jsonable({**settings, "axis": axis})
    n = store.image_shape[axis]
    if key in store.root:
        table = open_table(store, key)
        if table.columns != list(columns) or table.settings != settings:
            raise ChannelBiasError(
                f"results store {store.path} already holds {key} from a run with other settings; "
                "use another store or model name to keep both"
            )
        return table
    array = store.root.create_array(key, shape=(n, len(columns)), chunks=(1, len(columns)), dtype="float64",
                                    fill_value=math.nan)
    array.attrs["channelbias"] = {"columns": list(columns), "settings": settings, "axis": axis}
    store.root.create_array(progress_key(key), shape=(n,), chunks=(1,), dtype="uint8", fill_value=0)
    store.info["images"] = {**store.info["images"], key: {"kind": "table", "model": model, "method": name}}
    store._save_info()
    return open_table(store, key)


def open_table(store: ResultsStore, key: str) -> SliceTable:
    """The table at ``key`` (a ``kind="table"`` entry of :meth:`ResultsStore.entries`)."""
    if key not in store.root:
        raise ChannelBiasError(f"results store {store.path} holds no table {key}")
    return SliceTable(store.root[key], store.root[progress_key(key)], key)
