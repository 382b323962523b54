"""``icechunk._core.maintenance.stats.chunk_storage_stats``: bytes referenced from refs."""

from __future__ import annotations

import pytest

from icechunk._core.maintenance import ChunkStorageStats, chunk_storage_stats
from icechunk._sync import sync
from icechunk.errors import InvalidInputError
from tests.core.maintenance._history import history


def _chunk_sizes(objects: object) -> list[int]:
    storage = objects.storage  # type: ignore[attr-defined]

    async def sizes() -> list[int]:
        return [entry.size_bytes async for entry in storage.list("chunks/")]

    return sync(sizes())


def test_counts_each_reachable_native_chunk_once() -> None:
    objects, (_, _c1, _, c3) = history(2)
    stats = sync(chunk_storage_stats(objects))
    assert stats.native_bytes == sum(_chunk_sizes(objects)) > 0
    assert (stats.virtual_bytes, stats.inlined_bytes) == (0, 0)
    sync(objects.refs.create_tag("t", c3))  # a second ref to the same chunks: same count
    assert sync(chunk_storage_stats(objects)) == stats


def test_only_what_refs_reach_counts() -> None:
    objects, (initial, c1, _, c3) = history(2)
    sizes = _chunk_sizes(objects)
    assert len(sizes) == 3
    sync(objects.refs.reset_branch("main", c1, c3))  # c1 reaches the chunk of a0 only
    one = sync(chunk_storage_stats(objects))
    assert one.native_bytes in sizes and one.total_bytes() == one.native_bytes
    sync(objects.refs.reset_branch("main", initial, c1))
    assert sync(chunk_storage_stats(objects)) == ChunkStorageStats()


def test_limits_must_be_positive() -> None:
    objects, _ = history(2)
    with pytest.raises(InvalidInputError, match="max_snapshots_in_memory"):
        sync(chunk_storage_stats(objects, max_snapshots_in_memory=0))
