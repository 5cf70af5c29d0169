"""--scheduler text: local:N or an address; a local cluster starts and stops."""

from __future__ import annotations

import pytest

from napari_channelbias.distributed.cluster import connect, parse_scheduler
from napari_channelbias.errors import ChannelBiasError


def test_parse():
    assert parse_scheduler("local:3") == ("local", 3)
    assert parse_scheduler(" tcp://head:8786 ") == ("address", "tcp://head:8786")
    for bad in ("local", "local:x", "", "a b"):
        with pytest.raises(ChannelBiasError):
            parse_scheduler(bad)


def test_local_cluster_has_n_processes_and_is_closed_after():
    pytest.importorskip("distributed")
    with connect("local:1") as client:
        assert len(client.scheduler_info()["workers"]) == 1
        cluster = client.cluster
    assert cluster.status.name == "closed"
