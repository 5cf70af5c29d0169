"""Atomic writes: a reader never sees a half-written file, a failed write leaves the old one.

The one rule, for everything the package writes (tables, reports, checkpoints, volumes): write to
:func:`temporary_path` beside the target, then :func:`commit` it over the target, or :func:`discard`
it on failure or cancel. :func:`atomic_path` wraps the three for a ``with`` block;
:class:`~napari_channelbias.io.write.VolumeWriter` calls them itself (it commits when its own ``with``
block ends). A file is moved with ``os.replace``, atomic on POSIX and Windows file systems; a folder
(a zarr store) cannot be replaced atomically, so the old one is first moved aside: at every moment the
old or the new store sits under the target name (or, briefly, beside it).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def temporary_path(target: str | Path) -> Path:
    """Where ``target`` is written before :func:`commit`: ``<name>.tmp-<pid>`` in the same folder.

    The same folder keeps the final rename on one file system; the process id keeps two processes
    writing one target apart. The folder is created and a stale temporary of this process removed.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    discard(tmp)
    return tmp


def discard(path: str | Path) -> None:
    """Remove a temporary file or folder, if it exists."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def commit(tmp: str | Path, target: str | Path) -> Path:
    """Move the complete ``tmp`` over ``target`` (a file atomically; a folder via the old one set aside)."""
    tmp, target = Path(tmp), Path(target)
    if tmp.is_dir() and (target.exists() or target.is_symlink()):
        old = target.with_name(f"{target.name}.old-{os.getpid()}")
        discard(old)
        os.replace(target, old)
        os.replace(tmp, target)
        discard(old)
    else:
        os.replace(tmp, target)
    return target


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit move it over ``path``, else delete it."""
    target = Path(path)
    tmp = temporary_path(target)
    try:
        yield tmp
        commit(tmp, target)
    finally:
        discard(tmp)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON atomically (NaN is written as null)."""
    return write_text(path, json.dumps(_nan_to_none(data), indent=2) + "\n")


def write_csv(path: str | Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write dictionaries as CSV rows atomically; the header is the union of keys in first-seen order."""
    fields: list[str] = []
    for row in rows:
        fields.extend(k for k in row if k not in fields)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj
