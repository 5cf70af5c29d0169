"""Blocks of slices and the halo each reads."""

from __future__ import annotations

import pytest

from napari_channelbias.distributed.blocks import default_block_size, halo_reads, plan_blocks
from napari_channelbias.errors import ChannelBiasError


def test_blocks_keep_the_order_and_cover_every_slice_once():
    assert plan_blocks([5, 0, 1, 2, 9], 2) == [(5, 0), (1, 2), (9,)]
    with pytest.raises(ChannelBiasError, match=">= 1"):
        plan_blocks([1], 0)


def test_default_block_size_gives_about_four_blocks_per_worker():
    assert default_block_size(100, 2) == 13  # ceil(100 / 8)
    assert default_block_size(3, 4) == 1


def test_halo_is_the_window_radius_clipped_to_the_volume():
    assert halo_reads((4, 5, 6), 3, 10) == (3, 8)
    assert halo_reads((0, 1), 5, 10) == (0, 4)
    assert halo_reads((9,), 3, 10) == (8, 10)
