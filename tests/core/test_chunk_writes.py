"""``icechunk._core.chunk_writes``: the columnar log of staged chunk writes against a dict model.

A stateful test drives one :class:`ChunkWrites` and a plain ``dict`` through the same writes,
overwrites, deletions, bulk stagings, folds (one by one, and joined from disjoint parts), copies,
compactions and pickle round trips, and
checks after every step that both map the same coordinates to the same payloads and that the
columns a commit reads (:meth:`ChunkWrites.columns`, :func:`changed_coords`) say the same as
the model.
"""

from __future__ import annotations

import pickle
import random

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from icechunk._core.chunk_refs import payload_at, refs_from_payloads
from icechunk._core.chunk_writes import ChunkWrites
from icechunk._core.payloads import ChunkPayload, InlinePayload, NativePayload, VirtualPayload
from icechunk._core.staged_changes import absorb_writes, changed_coords, merge_refs

NDIM = 2
coords_st = st.tuples(st.integers(0, 5), st.integers(0, 5))
native_st = st.builds(
    NativePayload, st.binary(min_size=12, max_size=12), st.sampled_from([0, 8]), st.integers(1, 99)
)
inline_st = st.builds(InlinePayload, st.binary(min_size=1, max_size=4))
virtual_st = st.builds(
    VirtualPayload,
    st.sampled_from(["s3://b/x", "file:///d/y"]),
    st.integers(0, 9),
    st.integers(1, 9),
    st.sampled_from([None, '"etag"']),
    st.sampled_from([0, 1700]),
)
payload_st = st.one_of(native_st, inline_st, virtual_st, st.none())
written_st = st.one_of(native_st, inline_st, virtual_st)

Model = dict[tuple[int, ...], ChunkPayload | None]


class ChunkWritesAgainstADict(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.writes = ChunkWrites()
        self.model: Model = {}

    @rule(coords=coords_st, payload=payload_st)
    def assign(self, coords: tuple[int, ...], payload: ChunkPayload | None) -> None:
        self.writes[coords] = payload
        self.model[coords] = payload

    @rule(coords=coords_st, payload=native_st)
    def set_native(self, coords: tuple[int, ...], payload: NativePayload) -> None:
        if payload.offset:
            return  # the fast path writes whole objects only
        self.writes.set_native(coords, payload.chunk_id, payload.length)
        self.model[coords] = payload

    @rule(coords=coords_st, data=st.binary(min_size=1, max_size=4))
    def set_inline(self, coords: tuple[int, ...], data: bytes) -> None:
        self.writes.set_inline(coords, data)
        self.model[coords] = InlinePayload(data)

    @rule(coords=coords_st)
    def delete(self, coords: tuple[int, ...]) -> None:
        if coords in self.model:
            del self.writes[coords]
            del self.model[coords]
        else:
            with pytest.raises(KeyError):
                del self.writes[coords]

    @rule(pairs=st.dictionaries(coords_st, written_st, max_size=12))
    def add_bulk(self, pairs: dict[tuple[int, ...], ChunkPayload]) -> None:
        if not pairs:
            return
        self.writes.add_refs(refs_from_payloads(sorted(pairs.items()), NDIM))
        self.model.update(pairs)

    @rule(pairs=st.dictionaries(coords_st, payload_st, max_size=8), bulk=st.booleans())
    def absorb(self, pairs: Model, bulk: bool) -> None:
        other = ChunkWrites()
        written = {c: p for c, p in pairs.items() if p is not None}
        if bulk and written:
            other.add_refs(refs_from_payloads(sorted(written.items()), NDIM))
            # single writes of `other` come after its bulk ones, as absorb applies them
            pairs = {c: p for c, p in pairs.items() if p is None}
            self.model.update(written)
        for c, p in pairs.items():
            other[c] = p
        before = dict(other.items())
        self.writes = absorb_writes(self.writes, other)  # type: ignore[assignment]
        self.model.update(pairs)
        assert dict(other.items()) == before  # the folded-in writes are left as they were

    @rule(
        parts=st.lists(st.dictionaries(coords_st, payload_st, max_size=6), max_size=4),
        bulk=st.booleans(),
    )
    def join_and_absorb_disjoint(self, parts: list[Model], bulk: bool) -> None:
        logs = []
        for pairs in parts:
            part = ChunkWrites()
            for c, p in pairs.items():
                part[c] = p
            logs.append(part)
        if bulk and logs:
            logs[0].add_refs(refs_from_payloads([((7, 7), InlinePayload(b"b"))], NDIM))
        before = [dict(part.items()) for part in logs]
        joined = ChunkWrites.join(logs)
        assert [dict(part.items()) for part in logs] == before  # parts are left as they were
        keys = [c for pairs in before for c in pairs]
        if (bulk and logs) or len(set(keys)) < len(keys):
            assert joined is None  # bulk writes, or two parts write the same coordinates
            return
        assert joined is not None
        combined = {c: p for pairs in before for c, p in pairs.items()}
        assert dict(joined.items()) == combined
        disjoint = not set(combined) & set(self.model)
        # the same join, refused if a part writes what this log (or a plain dict) holds
        for side in (self.writes, dict(self.model)):
            checked = ChunkWrites.join(logs, [None, side])
            assert (checked is not None) is (disjoint or not combined)
        if checked is not None:
            self.writes.absorb_disjoint(checked)
            self.model.update(combined)

    @rule(coords=coords_st, payload=payload_st)
    def write_after_a_round_trip(
        self, coords: tuple[int, ...], payload: ChunkPayload | None
    ) -> None:
        # a restored log builds its coordinate index only when written or read again
        self.writes = pickle.loads(pickle.dumps(self.writes))
        self.writes[coords] = payload
        self.model[coords] = payload

    @rule()
    def copy(self) -> None:
        copy = self.writes.copy()
        assert dict(copy.items()) == self.model
        copy[(9, 9)] = None  # independent of the original
        assert (9, 9) not in self.writes
        self.writes = copy
        del self.writes[(9, 9)]

    @rule()
    def pickle_round_trip(self) -> None:
        self.writes = pickle.loads(pickle.dumps(self.writes))

    @rule()
    def compact(self) -> None:
        self.writes.compact()

    @invariant()
    def same_mapping(self) -> None:
        assert dict(self.writes.items()) == self.model
        assert len(self.writes) == len(self.model)
        assert set(self.writes) == set(self.model)
        assert bool(self.writes) == bool(self.model)
        for c, p in self.model.items():
            assert c in self.writes and self.writes[c] == p

    @invariant()
    def same_columns(self) -> None:
        coords, refs = self.writes.columns(NDIM)
        assert sorted(map(tuple, coords.tolist())) == sorted(self.model)
        assert sorted(map(tuple, changed_coords(self.writes, NDIM).tolist())) == sorted(self.model)
        got = {tuple(c): payload_at(refs, i) for i, c in enumerate(refs.coords.tolist())}
        assert got == {c: p for c, p in self.model.items() if p is not None}
        merged = merge_refs([], self.writes, NDIM, (6, 6))
        expected = merge_refs([], dict(self.model), NDIM, (6, 6))
        assert merged.coords.tolist() == expected.coords.tolist()
        assert [payload_at(merged, i) for i in range(len(merged))] == [
            payload_at(expected, i) for i in range(len(expected))
        ]


ChunkWritesAgainstADict.TestCase.settings = settings(
    max_examples=150, stateful_step_count=30, deadline=None
)
test_chunk_writes_against_a_dict = ChunkWritesAgainstADict.TestCase


def test_a_write_makes_no_payload_object_and_the_log_keeps_one_row_per_write() -> None:
    writes = ChunkWrites()
    for i in range(1000):
        writes.set_native((i,), i.to_bytes(12, "big"), 1024)
    writes.set_inline((3,), b"x")  # overwrites leave a dead row until compaction
    coords, refs = writes.columns(1)
    assert len(coords) == len(refs) == 1000
    assert payload_at(refs, int(np.flatnonzero(refs.coords[:, 0] == 3)[0])) == InlinePayload(b"x")
    restored = pickle.loads(pickle.dumps(writes))  # pickling sends the compact log
    assert dict(restored.items()) == dict(writes.items())
    assert len(pickle.dumps(writes)) < 40 * 1000  # columns, not one pickled object per write


def test_writes_keep_no_key_per_chunk_and_overwrites_are_found_when_needed() -> None:
    """Writing builds no coordinates index (nothing per chunk to build or free); an overwrite
    among unindexed writes is found when the log is compacted, counted or read: the latest
    write wins, in either order of writing."""
    order = list(range(500))
    random.Random(7).shuffle(order)
    for unordered in (False, True):
        writes = ChunkWrites()
        for i in order if unordered else range(500):
            writes.set_inline((i, 0), bytes([i % 250 + 1]))
        assert writes._rows is None
        assert len(writes) == 500 and writes._rows is None  # (no overwrite seen yet: no index)
        writes.set_inline((7, 0), b"new")
        assert len(writes) == 500
        coords, refs = writes.columns(2)
        assert len(coords) == 500
        assert payload_at(refs, int(np.flatnonzero(refs.coords[:, 0] == 7)[0])) == InlinePayload(
            b"new"
        )
        assert writes[(7, 0)] == InlinePayload(b"new") and writes[(8, 0)] == InlinePayload(b"\t")


def test_coordinates_of_another_dimensionality_are_refused() -> None:
    writes = ChunkWrites()
    writes.set_inline((0, 0), b"a")
    with pytest.raises(ValueError, match="2"):
        writes.set_inline((1,), b"b")
    assert dict(writes.items()) == {(0, 0): InlinePayload(b"a")}


def test_zero_dimensional_arrays_stage_their_single_chunk() -> None:
    writes = ChunkWrites()
    writes.set_inline((), b"a")
    writes.set_inline((), b"b")
    coords, refs = writes.columns(0)
    assert coords.shape == (1, 0) and refs.inline == [b"b"]
    assert dict(pickle.loads(pickle.dumps(writes)).items()) == {(): InlinePayload(b"b")}
    many = ChunkWrites()  # more overwrites than a small log holds: found without the index
    for i in range(100):
        many.set_inline((), bytes([i + 1]))
    assert len(many) == 1 and many[()] == InlinePayload(bytes([100]))
    assert many.columns(0)[0].shape == (1, 0)
