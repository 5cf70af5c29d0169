"""What every command shares: a progress bar fed by core events, the generator driver and small parsers."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .. import events as ev
from ..events import run_to_end


class Progress:
    """A tqdm progress bar on stderr fed by core events; ``quiet`` silences it.

    Inner jobs (training steps, slices) get one bar at a time, titled by their task; a study's
    :class:`~napari_channelbias.events.Progress` events with a message are printed as lines instead,
    so nested work reads as a log of stages with one live bar.
    """

    def __init__(self, desc: str, quiet: bool = False) -> None:
        self._tqdm = tqdm
        self.bar: Any = None
        self.task = ""
        self.desc = desc
        self.quiet = quiet

    def __call__(self, event: Any) -> None:
        if self.quiet:
            return
        if isinstance(event, ev.TrainStep):
            self._advance("train", event.step, event.total, loss=f"{event.loss:.4f}")
        elif isinstance(event, ev.SliceDone):
            self._advance(event.task, event.done, event.total)
        elif isinstance(event, ev.Progress):
            if event.message:
                self.close()
                self._write(f"[{event.task} {event.done}/{event.total}] {event.message}")
            else:
                self._advance(event.task, event.done, event.total)
        elif isinstance(event, ev.Validation):
            dice = event.metrics.get("dice", float("nan"))
            if isinstance(dice, dict):
                dice = dice.get("mean", float("nan"))
            self._write(f"step {event.step}: validation Dice {dice:.4f}" + (" (best)" if event.is_best else ""))

    def _advance(self, task: str, done: int, total: int, **postfix: str) -> None:
        if self.bar is None or self.task != task or self.bar.total != total:
            self.close()
            self.task = task
            self.bar = self._tqdm(total=total, desc=task or self.desc, unit="it", dynamic_ncols=True,
                                  file=sys.stderr)
        self.bar.n = done
        if postfix:
            self.bar.set_postfix(postfix, refresh=False)
        self.bar.refresh()
        if done >= total:
            self.close()

    def _write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def run_with_progress(gen: Any, desc: str, quiet: bool) -> Any:
    bar = Progress(desc, quiet)
    try:
        return run_to_end(gen, bar)
    finally:
        gen.close()
        bar.close()


def csv_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [t.strip() for t in text.split(",") if t.strip()]


def jsonable(obj: Any) -> Any:
    """Turn dataclasses, numpy scalars and paths into plain JSON types."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(obj.to_dict() if hasattr(obj, "to_dict") else dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


# --------------------------------------------------------------------------------------------- parser
