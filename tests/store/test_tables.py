"""Per-slice tables: rows by slice, NaN for missing columns, settings guard, summary."""

from __future__ import annotations

import math

import pytest

from napari_channelbias.errors import ChannelBiasError
from napari_channelbias.store import ResultsStore, open_table, slice_table


def test_rows_summary_and_reopen(tmp_path):
    store = ResultsStore.create(tmp_path / "r.ome.zarr", (4, 8, 8))
    table = slice_table(store, "m", "asymmetry-full-output", ["swd", "fwd"], axis=0, settings={"k": 1})
    table.write_row(3, {"swd": 0.5, "fwd": 0.25})
    table.write_row(1, {"swd": 2.0})
    assert table.missing(range(4)) == [0, 2]
    rows = open_table(ResultsStore.open(tmp_path / "r.ome.zarr"), table.key).rows()
    assert rows[0]["z"] == 1 and rows[0]["swd"] == 2.0 and math.isnan(rows[0]["fwd"])
    assert rows[1] == {"z": 3, "swd": 0.5, "fwd": 0.25}
    table.set_summary({"pooled": {"swd": float("nan")}})
    assert open_table(store, table.key).summary == {"pooled": {"swd": None}}
    with pytest.raises(ChannelBiasError, match="no column"):
        table.write_row(0, {"nope": 1.0})
    with pytest.raises(ChannelBiasError, match="other settings"):
        slice_table(store, "m", "asymmetry-full-output", ["swd", "fwd"], axis=0, settings={"k": 2})
    assert slice_table(store, "m", "asymmetry-full-output", ["swd", "fwd"], axis=0, settings={"k": 1}).missing(
        [1, 2]) == [2]
