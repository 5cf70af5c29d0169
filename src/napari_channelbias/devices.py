"""Which torch device runs a model: turn a user's device string into a ``torch.device``.

Users type ``auto``, ``cpu``, ``cuda``, ``cuda:1`` or ``mps`` in the GUI, the CLI or a config. A device
that is not there must fail at once with a message naming what *is* available, not deep inside the first
forward pass with a CUDA stack trace.
"""

from __future__ import annotations

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
