"""The worker plugin's name follows the checkpoint file; a task without it gets a clear error."""

from __future__ import annotations

import os

import pytest

from napari_channelbias.distributed.plugin import plugin_name, worker_model
from napari_channelbias.errors import ChannelBiasError


def test_name_changes_with_the_file_device_and_threads(tmp_path):
    path = tmp_path / "m.pt"
    path.write_bytes(b"x")
    first = plugin_name(path, "auto", 1)
    assert first == plugin_name(path, "auto", 1) != plugin_name(path, "cpu", 1) != plugin_name(path, "auto", 2)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a retrained checkpoint: a new plugin
    assert plugin_name(path, "auto", 1) != first


def test_a_task_without_its_plugin_is_told_so():
    with pytest.raises(ChannelBiasError, match="register its ModelPlugin"):
        worker_model("channelbias-model-missing")
