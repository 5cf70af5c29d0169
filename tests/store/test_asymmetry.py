"""The store's asymmetry table: rows give back each slice's metrics exactly, the summary the volume result."""

from __future__ import annotations

import numpy as np
import pytest

from napari_channelbias.asymmetry.volume import VolumeAsymmetry
from napari_channelbias.errors import ChannelBiasError
from napari_channelbias.store import ResultsStore
from napari_channelbias.store.asymmetry import (
    asymmetry_table,
    columns,
    row_metrics,
    slice_row,
    stored_asymmetry,
    table_name,
    write_asymmetry,
    write_slice_row,
)


def _result(slices, window=3):
    rng = np.random.default_rng(0)
    acc = VolumeAsymmetry(window)
    for z in slices:
        acc.add(z, rng.gamma(2.0, 1.0, (window, 12, 16)).astype(np.float32) * (1 + np.arange(window))[:, None, None])
    return acc.result()


def test_columns_and_a_row_round_trip():
    assert table_name("full-output") == "asymmetry-full-output"
    assert columns(3) == ["swd", "fwd", "js_sym", "js_full", "bhatt_sym", "bhatt_full", "share_0", "share_1",
                          "share_2", "w1_0_1", "w1_0_2", "w1_1_2", "scale"]
    for window in (3, 5):
        metrics = _result([0], window).series[0][1]
        assert list(slice_row(metrics)) == columns(window)
        assert row_metrics(slice_row(metrics), window) == metrics  # every field, the W1 matrix too


def test_write_asymmetry_stores_rows_and_summary_and_reads_them_back(tmp_path):
    store = ResultsStore.create(tmp_path / "r.ome.zarr", (5, 12, 16))
    assert stored_asymmetry(store, "m", "full-output") is None
    result = _result([4, 0, 2])
    table = write_asymmetry(store, "m", "full-output", result, axis=0)
    assert table.key == "tables/m/asymmetry-full-output" and table.missing(range(5)) == [1, 3]
    kept = stored_asymmetry(ResultsStore.open(tmp_path / "r.ome.zarr"), "m", "full-output")
    assert kept.volume == result
    assert kept.per_slice == dict(result.series)


def test_rows_as_slices_land_then_the_summary_and_no_row_rewritten(tmp_path):
    store = ResultsStore.create(tmp_path / "r.ome.zarr", (3, 12, 16))
    result = _result([0, 1, 2])
    table = asymmetry_table(store, "m", "occlusion", 3, axis=0)
    assert write_slice_row(table, 1, result.series[1][1])
    assert not write_slice_row(table, 1, result.series[0][1])  # done: kept as it was
    kept = stored_asymmetry(store, "m", "occlusion")
    assert kept.volume is None and kept.per_slice == {1: result.series[1][1]}  # an interrupted run
    write_asymmetry(store, "m", "occlusion", result, axis=0)
    assert stored_asymmetry(store, "m", "occlusion").volume == result
    with pytest.raises(ChannelBiasError, match="other settings"):
        asymmetry_table(store, "m", "occlusion", 3, axis=0, scaling="none")
