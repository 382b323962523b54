"""``icechunk._core.maintenance.gc.garbage_collect``: unreachable and older than the cutoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from icechunk._core.maintenance import expire_snapshots, garbage_collect
from icechunk._sync import sync
from icechunk.format import layout
from icechunk.format.ids import encode_id
from tests.core.maintenance._history import committed_at, history


def _keys(objects: object, prefix: str) -> set[str]:
    storage = objects.storage  # type: ignore[attr-defined]

    async def listing() -> set[str]:
        return {entry.key async for entry in storage.list(prefix)}

    return sync(listing())


def test_collects_what_expiration_released_after_a_dry_run() -> None:
    objects, (_, c1, c2, c3) = history(2)
    sync(expire_snapshots(objects, committed_at(objects, c2)))
    later = datetime.now(UTC) + timedelta(seconds=5)
    chunks_before = _keys(objects, layout.CHUNKS)

    dry = sync(garbage_collect(objects, later, dry_run=True))
    assert (dry.snapshots_deleted, dry.chunks_deleted) == (1, 0)
    assert _keys(objects, layout.CHUNKS) == chunks_before  # nothing deleted

    summary = sync(garbage_collect(objects, later))
    assert summary == dry
    snapshots = _keys(objects, layout.SNAPSHOTS)
    assert not any(encode_id(c1) in k for k in snapshots)
    assert any(encode_id(c3) in k for k in snapshots)
    # c1's array is still in c2 and c3: its chunk and manifest stay reachable
    assert _keys(objects, layout.CHUNKS) == chunks_before


def test_unreachable_but_newer_than_the_cutoff_is_kept() -> None:
    objects, (_, c1, c2, c3) = history(2)
    sync(objects.refs.reset_branch("main", c1, c3))  # c2 and c3 are now unreachable
    early = committed_at(objects, c2) - timedelta(seconds=1)
    assert sync(garbage_collect(objects, early)).snapshots_deleted == 0
    late = datetime.now(UTC) + timedelta(seconds=5)
    summary = sync(garbage_collect(objects, late))
    assert summary.snapshots_deleted == 2
    assert summary.chunks_deleted == 2  # the arrays a1 and a2 were created by c2 and c3
    assert summary.manifests_deleted == 2
