"""``icechunk._core.maintenance.common``: summaries, statistics and argument checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from icechunk._core.maintenance.common import ChunkStorageStats, GCSummary, cutoff_us
from icechunk.errors import InvalidInputError


def test_cutoff_is_microseconds_and_naive_means_utc() -> None:
    assert cutoff_us(datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=UTC), "x") == 1_000_005
    naive = datetime(2024, 5, 6, 7, 8, 9)
    assert cutoff_us(naive, "x") == cutoff_us(naive.replace(tzinfo=UTC), "x")
    plus_two = datetime(2024, 5, 6, 9, 8, 9, tzinfo=timezone(timedelta(hours=2)))
    assert cutoff_us(plus_two, "x") == cutoff_us(naive, "x")


def test_cutoff_must_be_a_datetime() -> None:
    with pytest.raises(InvalidInputError, match=r"`older_than` must be a datetime\.datetime"):
        cutoff_us("2024-01-01", "older_than")


def test_stats_arithmetic() -> None:
    a = ChunkStorageStats(native_bytes=10, virtual_bytes=20, inlined_bytes=3)
    assert a.non_virtual_bytes() == 13
    assert a.total_bytes() == 33
    assert a + ChunkStorageStats(1, 2, 3) == ChunkStorageStats(11, 22, 6)
    assert "native_bytes: 10" in str(a)


def test_gc_summary_lists_every_field() -> None:
    text = str(GCSummary(chunks_deleted=4))
    assert text.splitlines()[0] == "<icechunk.ops.GCSummary>"
    assert "chunks_deleted: 4" in text and "skipped_phases: []" in text
