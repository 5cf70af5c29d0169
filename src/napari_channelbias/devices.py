"""Where and how wide torch runs: a user's device string as a ``torch.device``, and the CPU thread budget.

Users type ``auto``, ``cpu``, ``cuda``, ``cuda:1`` or ``mps`` in the GUI, the CLI or a config. A device
that is not there must fail at once with a message naming what *is* available, not deep inside the first
forward pass with a CUDA stack trace.

torch runs its CPU operators on an intra-op thread pool as large as the machine's cores. When training
or saliency runs in a napari worker, those threads compete with the Qt event loop for the same cores and
the viewer stutters (what micro-sam issue #740 reports; the GIL is not the problem, torch releases it
inside every operator). :class:`ThreadBudget` is the one way the package caps that pool for the length
of a job and restores it after: training applies ``TrainConfig.num_threads`` with it, the GUI wraps its
other jobs in :func:`gui_friendly_threads` (measured in ``benchmarks/bench_gui_latency.py``).
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

from .errors import ConfigError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available_devices() -> list[str]:
    """Device names usable on this machine, e.g. ``["cpu", "cuda:0", "cuda:1"]``."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        names.append("mps")
    return names


def _unavailable(name: str, why: str) -> ConfigError:
    return ConfigError(
        f"device {name!r} is not usable here ({why}); available devices: {', '.join(available_devices())} "
        "(or 'auto' to pick the best of them)"
    )


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Turn a device name into a ``torch.device`` that exists on this machine.

    Parameters
    ----------
    name
        ``"auto"`` (first CUDA GPU, else Apple MPS, else CPU), ``"cpu"``, ``"cuda"`` (= ``cuda:0``),
        ``"cuda:N"`` or ``"mps"``; a ``torch.device`` is checked the same way.

    Returns
    -------
    torch.device
        With an explicit index for CUDA, so two calls compare equal.

    Raises
    ------
    ConfigError
        For an unknown name or a device this machine does not have; the message lists the available ones.
    """
    text = str(name).strip().lower() if not isinstance(name, torch.device) else str(name)
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", 0)
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise ConfigError(
            f"unknown device {name!r}; valid forms: {', '.join(DEVICE_CHOICES)} "
            f"(available here: {', '.join(available_devices())})"
        ) from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise _unavailable(text, "this torch build or machine has no CUDA GPU")
        index = 0 if device.index is None else device.index
        count = torch.cuda.device_count()
        if index >= count:
            raise _unavailable(text, f"only {count} CUDA device(s), numbered 0..{count - 1}")
        return torch.device("cuda", index)
    if device.type == "mps":
        if not _mps_available():
            raise _unavailable(text, "Apple MPS is not available")
        return torch.device("mps")
    raise ConfigError(
        f"unsupported device type {device.type!r} in {name!r}; valid forms: {', '.join(DEVICE_CHOICES)}"
    )


def describe_device(device: str | torch.device) -> str:
    """One human-readable line about a device, e.g. ``"cuda:0 (NVIDIA H100, 79.1 GiB)"``."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        index = 0 if device.index is None else device.index
        props = torch.cuda.get_device_properties(index)
        return f"cuda:{index} ({props.name}, {props.total_memory / 2**30:.1f} GiB)"
    if device.type == "mps":
        return "mps (Apple Metal)"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)


# ------------------------------------------------------------------------------------ CPU threads
R = TypeVar("R")


def usable_cores() -> int:
    """Cores this process may run on (CPU affinity where the OS reports it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


@dataclass
class ThreadBudget:
    """torch's intra-op thread count set to :attr:`threads` from :meth:`apply` until :meth:`restore`.

    ``threads=None`` leaves torch's setting alone. :meth:`wrap` applies the budget around a generator.
    """

    threads: int | None
    _previous: int | None = field(default=None, init=False, repr=False)

    def apply(self) -> None:
        """Set torch's thread count (remembering the one in force)."""
        if self.threads is not None:
            self._previous = torch.get_num_threads()
            torch.set_num_threads(self.threads)

    def restore(self) -> None:
        """Put back the thread count :meth:`apply` replaced (nothing if it replaced none)."""
        if self._previous is not None:
            torch.set_num_threads(self._previous)
            self._previous = None

    def wrap(self, gen: Generator[Any, None, R]) -> Generator[Any, None, R]:
        """``gen`` with the budget applied while it runs, restored after.

        Applied on the first ``next()`` (in the worker thread) and restored in ``finally``, so a
        cancelled or failed job restores it too.
        """
        self.apply()
        try:
            return (yield from gen)
        finally:
            self.restore()


def gui_friendly_threads(reserve: int = 1) -> ThreadBudget:
    """A budget of all usable cores but ``reserve`` (at least one thread, at most torch's default)."""
    return ThreadBudget(max(1, min(torch.get_num_threads(), usable_cores() - reserve)))
