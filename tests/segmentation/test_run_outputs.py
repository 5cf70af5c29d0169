"""Which checkpoint a run left: the best if it exists, else this run's own last state, else none."""

from __future__ import annotations

import os

from napari_channelbias.segmentation.run_outputs import MTIME_SLACK_S, checkpoint_of_run, last_path_for


def test_checkpoint_of_run_prefers_best_then_this_runs_last_state(tmp_path):
    out = tmp_path / "run.pt"
    started = 1_000_000.0
    assert checkpoint_of_run(out, started) is None  # nothing on disk
    last = last_path_for(out)
    last.write_bytes(b"x")
    os.utime(last, (started - MTIME_SLACK_S - 1, started - MTIME_SLACK_S - 1))  # an earlier run's file
    assert checkpoint_of_run(out, started) is None
    os.utime(last, (started - MTIME_SLACK_S, started - MTIME_SLACK_S))  # within the clock's granularity
    assert checkpoint_of_run(out, started) == (last, "last")
    assert checkpoint_of_run(out, started, best=out) == (last, "last")  # reported but not on disk
    out.write_bytes(b"y")
    assert checkpoint_of_run(out, started, best=out) == (out, "best")


# -- integration on real EM data -------------------------------------------------------------------------
