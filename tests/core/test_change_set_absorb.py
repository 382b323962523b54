"""ChangeSet.absorb_disjoint_chunks: the fast path of merging chunk-only forks."""

from __future__ import annotations

import pytest

from icechunk._core.change_set import ChangeSet, NodeChange
from icechunk._core.payloads import InlinePayload

NODE = b"node0001"


def _writes(*coords: int, data: bytes = b"x") -> dict[tuple[int, ...], InlinePayload | None]:
    return {(c,): InlinePayload(data) for c in coords}


def test_absorbs_disjoint_chunks_as_a_copy() -> None:
    mine = ChangeSet(chunks={NODE: _writes(0, 1)})
    other = ChangeSet(chunks={NODE: _writes(2, 3), b"node0002": _writes(0)})
    assert mine.absorb_disjoint_chunks(other)
    assert sorted(mine.chunks[NODE]) == [(0,), (1,), (2,), (3,)]
    assert mine.chunks[b"node0002"] == other.chunks[b"node0002"]
    assert mine.chunks[b"node0002"] is not other.chunks[b"node0002"]
    other.chunks[b"node0002"][(5,)] = None  # the fork's later writes do not leak in
    assert (5,) not in mine.chunks[b"node0002"]


@pytest.mark.parametrize(
    ("mine", "base", "other"),
    [
        # the same coordinates written here, or in the layer under this change set
        (ChangeSet(chunks={NODE: _writes(1)}), None, ChangeSet(chunks={NODE: _writes(1)})),
        (ChangeSet(), ChangeSet(chunks={NODE: _writes(1)}), ChangeSet(chunks={NODE: _writes(1)})),
        # a deletion of a chunk counts as a write of it
        (ChangeSet(chunks={NODE: {(1,): None}}), None, ChangeSet(chunks={NODE: _writes(1)})),
        # node changes or deletions need the full merge's conflict checks
        (
            ChangeSet(),
            None,
            ChangeSet(nodes={"/a": NodeChange(NODE, "/a", b"{}", True, True)}),
        ),
        (ChangeSet(), None, ChangeSet(deleted={"/a": (NODE, True)})),
        (ChangeSet(deleted={"/a": (NODE, True)}), None, ChangeSet(chunks={b"n2": _writes(0)})),
    ],
)
def test_refuses_and_changes_nothing(
    mine: ChangeSet, base: ChangeSet | None, other: ChangeSet
) -> None:
    before = (dict(mine.nodes), dict(mine.deleted), {k: dict(v) for k, v in mine.chunks.items()})
    assert not mine.absorb_disjoint_chunks(other, base)
    assert (mine.nodes, mine.deleted, mine.chunks) == before


def test_merge_of_chunk_only_forks_still_reports_overlaps() -> None:
    """Overlapping forks take the full merge (the fast path refuses them): later fork wins."""
    mine = ChangeSet()
    first = ChangeSet(chunks={NODE: _writes(0, 1, data=b"a")})
    second = ChangeSet(chunks={NODE: _writes(1, 2, data=b"b")})
    assert mine.absorb_disjoint_chunks(first)
    assert not mine.absorb_disjoint_chunks(second)
    overlaps = mine.merge(second, on_overlap="warn")
    assert overlaps == [f"`{NODE.hex()}` [1]"]
    assert mine.chunks[NODE][(1,)] == InlinePayload(b"b")
