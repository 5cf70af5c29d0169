"""The files a training run leaves: the best checkpoint, the last state, and which one a run left to use."""

from __future__ import annotations

from pathlib import Path


def last_path_for(out: str | Path) -> Path:
    """``model.pt`` -> ``model.last.pt``: where the final training state goes."""
    out = Path(out)
    return out.with_name(f"{out.stem}.last{out.suffix or '.pt'}")


# A file time written during a run may read up to this much before the run's start time (file systems
# keep mtimes at 1 s or 2 s granularity, FAT even coarser), so a run's own last state is never missed.
MTIME_SLACK_S = 2.0


def checkpoint_of_run(out: str | Path, started: float, best: str | Path | None = None) -> tuple[Path, str] | None:
    """Which checkpoint a (finished, stopped or failed) run left to use, and what kind it is.

    Parameters
    ----------
    out
        The run's best-checkpoint path (as given to :func:`train_events`).
    started
        When the run started (``time.time()``), to tell this run's last state from an older run's file
        at the same path.
    best
        The best checkpoint the run reported (``CheckpointSaved(kind="best")``), if any.

    Returns
    -------
    tuple or None
        ``(path, "best")`` if the best checkpoint exists; else ``(last_path_for(out), "last")`` if that
        file was written by this run (modified at or after ``started``, less :data:`MTIME_SLACK_S`);
        else None (the run stopped before saving anything).
    """
    if best is not None and Path(best).is_file():
        return Path(best), "best"
    last = last_path_for(out)
    if last.is_file() and last.stat().st_mtime >= started - MTIME_SLACK_S:
        return last, "last"
    return None
