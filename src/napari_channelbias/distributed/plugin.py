"""A Dask worker plugin that loads a checkpoint once per worker process, not once per task.

Registered by the client (``client.register_plugin``); Dask runs :meth:`ModelPlugin.setup` on every
worker, including workers that join or are restarted later, and tasks fetch the model with
:func:`worker_model`. The model lives in this module's process-wide table, keyed by the plugin's name
(checkpoint path, its modification time, device and thread count), so two checkpoints can be in use.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from ..devices import resolve_device
from ..errors import ChannelBiasError
from ..models.factory import load_checkpoint

_MODELS: dict[str, tuple[Any, Any]] = {}
LOADS: dict[str, int] = {}  # how many times each plugin loaded its checkpoint in this process (tests)

try:  # a real WorkerPlugin where distributed is installed; a plain base class keeps imports light
    from distributed.diagnostics.plugin import WorkerPlugin as _Base
except ImportError:  # pragma: no cover - the engine refuses to start without distributed
    _Base = object  # type: ignore[assignment,misc]


def plugin_name(checkpoint: str | Path, device: str, torch_threads: int) -> str:
    p = Path(checkpoint).resolve()
    stamp = f"{p}|{p.stat().st_mtime_ns}|{device}|{torch_threads}"
    return "channelbias-model-" + hashlib.sha1(stamp.encode()).hexdigest()[:12]


class ModelPlugin(_Base):  # type: ignore[misc,valid-type]
    """Load ``checkpoint`` on each worker (torch limited to ``torch_threads`` intra-op threads).

    ``device="auto"`` takes the worker's accelerator if it has one: start one worker per GPU (each with
    its own ``CUDA_VISIBLE_DEVICES``, as dask-jobqueue or dask-cuda do) so every device gets one process.
    """

    def __init__(self, checkpoint: str | Path, device: str = "auto", torch_threads: int = 1) -> None:
        self.checkpoint = str(Path(checkpoint).resolve())
        self.device, self.torch_threads = device, int(torch_threads)
        self.name = plugin_name(checkpoint, device, torch_threads)

    def setup(self, worker: Any = None) -> None:


        torch.set_num_threads(self.torch_threads)
        _MODELS[self.name] = load_checkpoint(self.checkpoint, device=resolve_device(self.device))
        LOADS[self.name] = LOADS.get(self.name, 0) + 1

    def teardown(self, worker: Any = None) -> None:
        _MODELS.pop(self.name, None)


def has_model(name: str) -> bool:
    """Whether this worker process already holds the plugin ``name``'s model (run through ``client.run``)."""
    return name in _MODELS


def worker_model(name: str) -> tuple[Any, Any]:
    """``(model, card)`` loaded by the plugin ``name`` in this worker process."""
    if name not in _MODELS:
        raise ChannelBiasError(f"worker {os.getpid()} has no model {name}; register its ModelPlugin first")
    return _MODELS[name]
