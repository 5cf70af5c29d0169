import json
import math

import pytest

from napari_channelbias.io.atomic import atomic_path, write_csv, write_json, write_text


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "report.md"
    write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]


def test_json_nan_becomes_null(tmp_path):
    write_json(tmp_path / "a.json", {"x": math.nan, "y": [1.0, math.nan]})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": None, "y": [1.0, None]}


def test_csv_header_is_union_of_keys(tmp_path):
    write_csv(tmp_path / "a.csv", [{"a": 1}, {"a": 2, "b": 3}])
    assert (tmp_path / "a.csv").read_text().splitlines() == ["a,b", "1,", "2,3"]


def test_a_folder_is_committed_over_an_old_folder_and_a_discarded_one_leaves_nothing(tmp_path):
    from napari_channelbias.io.atomic import commit, discard, temporary_path

    target = tmp_path / "store.zarr"
    target.mkdir()
    (target / "old").write_text("old")
    tmp = temporary_path(target)
    assert tmp.parent == tmp_path and tmp.name.startswith("store.zarr.tmp-") and not tmp.exists()
    tmp.mkdir()
    (tmp / "new").write_text("new")
    assert commit(tmp, target) == target
    assert sorted(p.name for p in target.iterdir()) == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.zarr"]  # neither the temporary nor the old one
    again = temporary_path(target)
    again.mkdir()
    (again / "partial").write_text("x")
    discard(again)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.zarr"]
    assert (target / "new").read_text() == "new"


def test_a_stale_temporary_of_this_process_is_cleared(tmp_path):
    from napari_channelbias.io.atomic import temporary_path

    stale = temporary_path(tmp_path / "sub" / "a.txt")
    stale.write_text("left over by a crash")
    assert not temporary_path(tmp_path / "sub" / "a.txt").exists()
