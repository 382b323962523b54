"""Columnar chunk refs: merging staged changes, and bulk staging through ``ChunkWrites``."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
import zarr

import icechunk
from icechunk._core.chunk_writes import ChunkWrites
from icechunk._core.staged_changes import changed_coords, merge_refs
from icechunk.change_set import ChangeSet, InlinePayload, NativePayload, VirtualPayload
from icechunk.chunk_refs import refs_from_payloads
from icechunk.errors import InvalidInputError
from icechunk.format.model import ChunkKind, ChunkRefs


def _payload(rng: random.Random) -> NativePayload | InlinePayload | VirtualPayload:
    match rng.randrange(3):
        case 0:
            return NativePayload(rng.randbytes(12), rng.choice([0, 7]), rng.randrange(1, 99))
        case 1:
            return InlinePayload(rng.randbytes(rng.choice([1, 1, 3])))
        case _:
            etag = rng.choice([None, "abc"])
            return VirtualPayload("s3://b/f", rng.randrange(9), rng.randrange(1, 9), etag, 5)


def _as_pairs(refs: ChunkRefs) -> list[tuple[tuple[int, ...], object]]:
    from icechunk.chunk_refs import payload_at

    return [(tuple(c), payload_at(refs, i)) for i, c in enumerate(refs.coords.tolist())]


def _bulk(pairs: list[tuple[tuple[int, ...], object]], ndim: int) -> ChunkRefs:
    return refs_from_payloads(pairs, ndim)  # type: ignore[arg-type]


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_merge_gives_the_same_refs_for_dicts_and_bulk_writes(ndim: int) -> None:
    rng = random.Random(ndim)
    grid = [tuple(rng.randrange(6) for _ in range(ndim)) for _ in range(300)]
    cells = sorted(set(grid))
    old = _bulk([(c, _payload(rng)) for c in cells[::2]], ndim)
    bulk_part = {c: _payload(rng) for c in rng.sample(cells, len(cells) // 2)}
    later: dict[tuple[int, ...], object] = {
        c: rng.choice([None, _payload(rng)]) for c in rng.sample(cells, len(cells) // 3)
    }
    as_dict = {**bulk_part, **later}
    writes = ChunkWrites()
    writes.add_refs(_bulk(sorted(bulk_part.items()), ndim))
    writes.update(later)  # type: ignore[arg-type]
    assert dict(writes.items()) == as_dict
    assert len(writes) == len(as_dict) and set(writes) == set(as_dict)
    assert sorted(map(tuple, changed_coords(writes, ndim).tolist())) == sorted(as_dict)
    bounds = (5,) * ndim
    expected = merge_refs([old], as_dict, ndim, bounds)  # type: ignore[arg-type]
    got = merge_refs([old], writes, ndim, bounds)
    assert _as_pairs(got) == _as_pairs(expected)
    coords = [tuple(c) for c in got.coords.tolist()]
    assert coords == sorted(coords) and all(max(c) < 5 for c in coords)


def test_chunk_writes_behave_as_a_mapping() -> None:
    a, b, c = NativePayload(b"a" * 12, 0, 4), InlinePayload(b"b"), InlinePayload(b"c")
    writes = ChunkWrites({(9,): c})
    writes.add_refs(_bulk([((1,), a), ((2,), b), ((9,), a)], 1))
    assert writes[(9,)] == a  # a later bulk write replaces a single one
    writes[(2,)] = None  # a single write shadows the bulk one
    assert writes[(2,)] is None and (2,) in writes and (3,) not in writes
    copy = writes.copy()
    del writes[(1,)]
    assert (1,) not in writes and copy[(1,)] == a
    with pytest.raises(KeyError):
        del writes[(1,)]
    with pytest.raises(KeyError):
        writes[(5,)]
    assert sorted(writes.items()) == [((2,), None), ((9,), a)]
    restored = pickle.loads(pickle.dumps(copy))
    assert dict(restored.items()) == dict(copy.items()) and len(restored) == 3


def test_bulk_refs_are_checked_before_anything_is_staged() -> None:
    cs = ChangeSet()
    cs.set_chunk(b"n" * 8, (0,), InlinePayload(b"x"))
    duplicate = ChunkRefs(
        coords=np.array([[1], [1]], dtype=np.uint32),
        kind=np.full(2, ChunkKind.INLINE, dtype=np.uint8),
        chunk_id=np.zeros((2, 12), dtype=np.uint8),
        offset=np.zeros(2, dtype=np.uint64),
        length=np.ones(2, dtype=np.uint64),
        inline=[b"a", b"b"],
    )
    with pytest.raises(InvalidInputError, match="same chunk coordinates"):
        cs.set_chunk_refs(b"n" * 8, duplicate)
    no_bytes = ChunkRefs(
        coords=np.array([[1]], dtype=np.uint32),
        kind=np.full(1, ChunkKind.INLINE, dtype=np.uint8),
        chunk_id=np.zeros((1, 12), dtype=np.uint8),
        offset=np.zeros(1, dtype=np.uint64),
        length=np.ones(1, dtype=np.uint64),
    )
    with pytest.raises(InvalidInputError, match="inline"):
        cs.set_chunk_refs(b"n" * 8, no_bytes)
    assert dict(cs.chunks[b"n" * 8].items()) == {(0,): InlinePayload(b"x")}


def test_bulk_staged_refs_commit_merge_and_read_back() -> None:
    n = 5000
    inline: list[bytes | None] = [bytes([i % 200 + 1]) for i in reversed(range(n))]
    repo = icechunk.Repository.create(icechunk.in_memory_storage())
    session = repo.writable_session("main")
    zarr.create_array(
        session.store, name="a", shape=(n,), chunks=(1,), dtype="u1", fill_value=0, compressors=None
    )
    fork = session.fork()
    node = fork._node("/a")
    assert node is not None
    refs = ChunkRefs(
        coords=np.arange(n, dtype=np.uint32)[::-1].reshape(n, 1).copy(),
        kind=np.full(n, ChunkKind.INLINE, dtype=np.uint8),
        chunk_id=np.zeros((n, 12), dtype=np.uint8),
        offset=np.zeros(n, dtype=np.uint64),
        length=np.ones(n, dtype=np.uint64),
        inline=inline,
    )
    fork._changes.set_chunk_refs(node.node_id, refs)
    zarr.open_array(fork.store, path="a", mode="r+")[3] = 250  # shadows a bulk ref
    session.merge(pickle.loads(pickle.dumps(fork)))
    session.commit("bulk")
    got = zarr.open_array(repo.readonly_session("main").store, path="a", mode="r")[:]
    expected = np.arange(n) % 200 + 1
    expected[3] = 250
    np.testing.assert_array_equal(np.asarray(got), expected)
