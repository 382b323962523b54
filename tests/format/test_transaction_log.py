"""Transaction logs, spec 1 and spec 2."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from icechunk.errors import InvalidInputError
from icechunk.format import decode_transaction_log, encode_transaction_log
from icechunk.format.flatbuf import Buffer
from icechunk.format.model import MoveOperation, TransactionLog
from tests.format.helpers import node_paths, payload, rid

NAME = "transactions/TEST"
ids8 = st.lists(st.binary(min_size=8, max_size=8), max_size=5)


@st.composite
def chunk_lists(draw: st.DrawFn) -> list[tuple[int, ...]]:
    ndim = draw(st.integers(0, 3))
    coord = st.tuples(*[st.integers(0, 2**32 - 1) | st.integers(0, 4)] * ndim)
    return draw(st.lists(coord, max_size=1 if ndim == 0 else 40))


@st.composite
def transaction_logs(draw: st.DrawFn) -> TransactionLog:
    moves = draw(
        st.lists(
            st.builds(
                MoveOperation,
                node_paths,
                node_paths,
                st.binary(min_size=8, max_size=8),
                st.booleans(),
            ),
            max_size=4,
        )
    )
    return TransactionLog(
        id=draw(st.binary(min_size=12, max_size=12)),
        new_groups=draw(ids8),
        new_arrays=draw(ids8),
        deleted_groups=draw(ids8),
        deleted_arrays=draw(ids8),
        updated_arrays=draw(ids8),
        updated_groups=draw(ids8),
        updated_chunks=draw(
            st.dictionaries(st.binary(min_size=8, max_size=8), chunk_lists(), max_size=4)
        ),
        moved_nodes=moves,
    )


def normalized(t: TransactionLog, spec: int) -> TransactionLog:
    def seg(path: str) -> list[bytes]:
        return [s.encode() for s in path.split("/")]

    lists: dict[str, Any] = {
        f: sorted(set(getattr(t, f)))
        for f in (
            "new_groups",
            "new_arrays",
            "deleted_groups",
            "deleted_arrays",
            "updated_arrays",
            "updated_groups",
        )
    }
    return dataclasses.replace(
        t,
        **lists,
        updated_chunks={k: sorted(set(v)) for k, v in sorted(t.updated_chunks.items())},
        moved_nodes=sorted(t.moved_nodes, key=lambda m: seg(m.to_path)),
        spec_version=spec,
    )


@given(transaction_logs(), st.sampled_from([1, 2]))
def test_round_trip(t: TransactionLog, spec: int) -> None:
    encoded = encode_transaction_log(t, spec)
    decoded = decode_transaction_log(encoded, NAME)
    assert decoded == normalized(t, spec)
    assert list(decoded.updated_chunks) == sorted(decoded.updated_chunks)
    assert encode_transaction_log(decoded, spec) == encoded


def test_sorted_in_bytes_and_moves_per_spec() -> None:
    a, b, c = bytes([3] * 8), bytes([1] * 8), bytes([2] * 8)
    t = TransactionLog(
        id=rid(),
        new_arrays=[a, b, c],
        updated_chunks={a: [(2, 0), (0, 9), (1, 1)], b: [(5,)]},
    )
    for spec in (1, 2):
        root = Buffer(payload(encode_transaction_log(t, spec)), NAME, "tx").root()
        assert root.structs(2, 8, "new_arrays") == [b, c, a]
        tables = root.tables_req(7, "updated_chunks")
        assert [x.struct_req(0, 8, "node_id") for x in tables] == [b, a]
        coords = [y.scalars(0, "<u4", "coords") for y in tables[1].tables_req(1, "chunks")]
        assert coords == [[0, 9], [1, 1], [2, 0]]
        moves = root.tables(8, "moved_nodes")
        assert (moves == []) if spec == 2 else (moves is None)


def test_moves_sorted_segment_wise_by_destination() -> None:
    targets = ["/b", "/a-b", "/a/b", "/a", "/aa"]
    t = TransactionLog(
        id=rid(), moved_nodes=[MoveOperation("/x" + p, p, rid(8), False) for p in targets]
    )
    decoded = decode_transaction_log(encode_transaction_log(t, 2), NAME)
    assert [m.to_path for m in decoded.moved_nodes] == ["/a", "/a/b", "/a-b", "/aa", "/b"]


def test_large_chunk_lists() -> None:
    chunks = [(i // 1000, i % 1000) for i in range(200_000)]
    t = TransactionLog(id=rid(), updated_chunks={rid(8): list(reversed(chunks))})
    decoded = decode_transaction_log(encode_transaction_log(t, 2), NAME)
    assert next(iter(decoded.updated_chunks.values())) == chunks


def test_invalid_records() -> None:
    with pytest.raises(InvalidInputError, match="dimensionality"):
        encode_transaction_log(TransactionLog(id=rid(), updated_chunks={rid(8): [(1,), (1, 2)]}), 2)
    with pytest.raises(InvalidInputError):
        encode_transaction_log(TransactionLog(id=rid(), updated_chunks={rid(8): [(-1,)]}), 2)
    with pytest.raises(InvalidInputError):
        encode_transaction_log(TransactionLog(id=rid(), new_groups=[b"short"]), 2)
    with pytest.raises(InvalidInputError):
        encode_transaction_log(TransactionLog(id=rid()), 0)
