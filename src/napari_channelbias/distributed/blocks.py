"""Blocks of slices for the distributed tasks, and the input slices (block plus halo) each one reads.

A block is a run of consecutive selected slices. Its task reads its own slices and, for the 2D+
windows, up to ``r = K // 2`` more on either side (the halo); mirrored ends read inside the volume. The
halo is read from the input, never exchanged between tasks, so blocks are independent.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ConfigError


def default_block_size(n_slices: int, n_workers: int, per_worker: int = 4) -> int:
    """Slices per block: about ``per_worker`` blocks for each worker (so a lost worker costs little)."""
    return max(1, -(-int(n_slices) // max(1, int(n_workers) * per_worker)))


def plan_blocks(slices: Sequence[int], block_size: int) -> list[tuple[int, ...]]:
    """Cut ``slices`` (in their order) into blocks of at most ``block_size`` slices."""
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ConfigError(f"block size must be an int >= 1 slices, got {block_size!r}")
    chosen = [int(z) for z in slices]
    return [tuple(chosen[i : i + block_size]) for i in range(0, len(chosen), block_size)]


def halo_reads(block: Sequence[int], window: int, n: int) -> tuple[int, int]:
    """``(first, stop)``: the input slices the windows of ``block`` read, half-open, clipped to the volume."""
    r = window // 2
    return max(0, min(block) - r), min(n, max(block) + r + 1)
