"""Leave the GUI a CPU core while torch works in a worker thread.

torch runs its CPU operators on an intra-op thread pool as large as the machine's cores. When training
or saliency runs in a napari worker, those threads compete with the Qt event loop for the same cores and
the viewer stutters (what micro-sam issue #740 reports). The Python GIL is not the problem: torch
releases it inside every operator. Capping torch's pool at one core fewer than the process may use for
the duration of a job keeps the event loop responsive at a small cost in throughput (measured in
``benchmarks/bench_gui_latency.py``).
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar

R = TypeVar("R")


def usable_cores() -> int:
    """Cores this process may run on (CPU affinity where the OS reports it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ThreadBudget:
    """How many torch intra-op threads a GUI job may use; :meth:`wrap` applies it around a generator."""

    threads: int

    def wrap(self, gen: Generator[Any, None, R]) -> Generator[Any, None, R]:
        """``gen`` with torch's thread count set to :attr:`threads` while it runs, restored after.

        The count is set on the first ``next()`` (in the worker thread) and restored in ``finally``,
        so a cancelled or failed job restores it too.
        """
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            return (yield from gen)
        finally:
            torch.set_num_threads(previous)


def gui_friendly_threads(reserve: int = 1) -> ThreadBudget:
    """A budget of all usable cores but ``reserve`` (at least one thread, at most torch's default)."""
    import torch

    return ThreadBudget(max(1, min(torch.get_num_threads(), usable_cores() - reserve)))
