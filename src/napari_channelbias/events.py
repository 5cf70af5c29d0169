"""Progress events yielded by the long-running generators of the core.

The core's long work (training, prediction, saliency over a volume, studies) is written as generators
that yield these small dataclasses and *return* their result. Scripts drive a generator to the end with
:func:`run_to_end`; the napari bridge (``_qt/bridge.py``) wraps the same generator in a worker thread
and turns each event into a progress bar update or a plot point. Closing a generator (``gen.close()``)
between two events cancels the work; each generator leaves its files consistent when that happens.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

R = TypeVar("R")


@dataclass(frozen=True)
class Progress:
    """Generic progress: ``done`` of ``total`` units of a named task."""

    task: str
    done: int
    total: int
    message: str = ""


@dataclass(frozen=True)
class TrainStep:
    """One optimiser step finished."""

    step: int
    total: int
    loss: float
    lr: float
    seconds_left: float


@dataclass(frozen=True)
class Validation:
    """Validation metrics after ``step`` steps (means over the validation slices)."""

    step: int
    metrics: dict[str, float]
    is_best: bool


@dataclass(frozen=True)
class CheckpointSaved:
    """A checkpoint file was written atomically; ``kind`` is ``"best"`` or ``"last"``."""

    path: str
    kind: str
    step: int


@dataclass(frozen=True)
class SliceDone:
    """One slice of a volume-wide job is finished; ``result`` may carry the slice's output."""

    task: str
    z: int
    done: int
    total: int
    result: Any = field(default=None, compare=False, repr=False)


def run_to_end(gen: Generator[Any, None, R], on_event: Callable[[Any], None] | None = None) -> R:
    """Drive an event generator to completion and return its result.

    Parameters
    ----------
    gen
        A generator from the core (for example :func:`napari_channelbias.training.train_events`).
    on_event
        Optional callback receiving every yielded event (a CLI passes its progress bar here).

    Returns
    -------
    The value the generator returned.
    """
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_event is not None:
            on_event(event)
