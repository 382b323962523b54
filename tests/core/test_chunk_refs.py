"""``icechunk._core.chunk_refs``: columnar chunk references (lookup, build, merge, bulk writes)."""

from __future__ import annotations

import numpy as np

from icechunk._core.chunk_refs import (
    RefIndex,
    coord_keys,
    empty_refs,
    payload_at,
    refs_from_payloads,
)
from icechunk._core.chunk_writes import ChunkWrites
from icechunk._core.payloads import InlinePayload, NativePayload, VirtualPayload
from icechunk._core.staged_changes import merge_refs
from icechunk.format.model import ChunkKind

CID = b"\x07" * 12


def test_coord_keys_sort_like_coordinates() -> None:
    coords = np.array([[1, 0], [0, 300], [0, 2], [256, 0]], dtype=np.uint32)
    order = np.argsort(coord_keys(coords), kind="stable")
    assert coords[order].tolist() == [[0, 2], [0, 300], [1, 0], [256, 0]]


def test_refs_from_payloads_sorts_and_fills_each_kind_column() -> None:
    refs = refs_from_payloads(
        [
            ((2, 0), VirtualPayload("s3://b/k", 5, 6, '"etag"', 1700)),
            ((0, 1), NativePayload(CID, 10, 20)),
            ((1, 0), InlinePayload(b"abc")),
        ],
        ndim=2,
    )
    assert len(refs) == 3
    assert refs.coords.tolist() == [[0, 1], [1, 0], [2, 0]]
    assert refs.kind.tolist() == [ChunkKind.NATIVE, ChunkKind.INLINE, ChunkKind.VIRTUAL]
    assert bytes(refs.chunk_id[0]) == CID
    assert refs.inline[1] == b"abc"
    assert refs.location[2] == "s3://b/k"
    assert payload_at(refs, 0) == NativePayload(CID, 10, 20)
    assert payload_at(refs, 1) == InlinePayload(b"abc")
    assert payload_at(refs, 2) == VirtualPayload("s3://b/k", 5, 6, '"etag"', 1700)


def test_ref_index_finds_present_coordinates_only() -> None:
    refs = refs_from_payloads(
        [((i, j), NativePayload(CID, i, j + 1)) for i in range(3) for j in range(2)], ndim=2
    )
    index = RefIndex(refs)
    i = index.find((2, 1))
    assert i is not None and payload_at(refs, i) == NativePayload(CID, 2, 2)
    assert index.find((3, 0)) is None
    assert index.find((0,)) is None  # wrong dimensionality
    assert RefIndex(empty_refs(2)).find((0, 0)) is None


def test_merge_refs_applies_writes_deletions_and_bounds() -> None:
    old = refs_from_payloads([((i,), NativePayload(CID, i, 1)) for i in range(5)], ndim=1)
    merged = merge_refs(
        [old], {(1,): InlinePayload(b"new"), (3,): None, (7,): InlinePayload(b"out")}, 1, (6,)
    )
    assert merged.coords[:, 0].tolist() == [0, 1, 2, 4]  # 3 deleted, 7 outside the grid
    assert payload_at(merged, 1) == InlinePayload(b"new")
    assert payload_at(merged, 3) == NativePayload(CID, 4, 1)


def test_chunk_writes_overlay_bulk_refs_with_single_writes() -> None:
    writes = ChunkWrites({(0,): InlinePayload(b"single")})
    writes.add_refs(refs_from_payloads([((i,), NativePayload(CID, i, 1)) for i in range(3)], 1))
    assert len(writes) == 3
    assert writes[(0,)] == NativePayload(CID, 0, 1)  # the bulk refs replace staged writes
    writes[(1,)] = None  # a deletion is a staged entry too
    assert (1,) in writes and writes[(1,)] is None
    del writes[(2,)]
    assert (2,) not in writes and len(writes) == 2
    copy = writes.copy()
    copy[(5,)] = InlinePayload(b"x")
    assert (5,) not in writes  # copies are independent
    assert dict(writes.items()) == {(0,): NativePayload(CID, 0, 1), (1,): None}
