"""From ``--scheduler`` text to a ``distributed.Client``: a running scheduler's address, or ``local:N``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import ChannelBiasError, ConfigError

_LOCAL = re.compile(r"^local:(\d+)$")


def parse_scheduler(text: str) -> tuple[str, int | str]:
    """``("local", N)`` for ``local:N``, else ``("address", text)`` (``tcp://host:8786``, ``host:8786``)."""
    text = str(text).strip()
    match = _LOCAL.match(text)
    if match:
        n = int(match.group(1))
        if n < 1:
            raise ConfigError("--scheduler local:N needs N >= 1 worker processes")
        return "local", n
    if text.startswith("local"):
        raise ConfigError(f"--scheduler {text!r}: write local:N with N worker processes, e.g. local:2")
    if not text or " " in text:
        raise ConfigError(f"--scheduler {text!r}: give a scheduler address (tcp://host:8786) or local:N")
    return "address", text


def _distributed() -> Any:
    try:
        # the `distributed` extra: imported only when a cluster is asked for
        import distributed
    except ImportError as exc:
        raise ChannelBiasError(
            "--scheduler needs dask.distributed: pip install napari-channelbias[distributed]") from exc
    return distributed


@contextmanager
def connect(text: str, *, threads_per_worker: int = 1) -> Iterator[Any]:
    """A client for ``text``; a ``local:N`` cluster (N processes) is started here and closed after."""
    kind, value = parse_scheduler(text)
    distributed = _distributed()
    if kind == "local":
        cluster = distributed.LocalCluster(n_workers=int(value), processes=True,
                                           threads_per_worker=threads_per_worker, dashboard_address=None)
        try:
            with distributed.Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    try:
        client = distributed.Client(str(value), timeout="20s")
    except (OSError, TimeoutError) as exc:
        raise ChannelBiasError(f"cannot reach the Dask scheduler at {value} ({exc})") from exc
    try:
        yield client
    finally:
        client.close()
