"""Snapshot objects, spec 1 and spec 2."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from icechunk.errors import ErrorKind, InvalidInputError
from icechunk.format import decode_snapshot, encode_snapshot
from icechunk.format.flatbuf import Buffer, Table
from icechunk.format.metadata import decode_flexbuffer, decode_msgpack
from icechunk.format.model import ArrayData, DimensionShape, NodeSnapshot, Snapshot
from tests.format.helpers import expected_snapshot, payload, rid, sample_snapshot, snapshots

NAME = "snapshots/TEST"


def root_of(data: bytes) -> Table:
    return Buffer(payload(data), NAME, "snapshot").root()


@given(st.data(), st.sampled_from([1, 2]))
def test_round_trip(data: st.DataObject, spec: int) -> None:
    s = data.draw(snapshots(spec))
    encoded = encode_snapshot(s, spec)
    decoded = decode_snapshot(encoded, NAME)
    assert decoded == expected_snapshot(s, spec)
    assert encode_snapshot(decoded, spec) == encoded  # deterministic and stable


@pytest.mark.parametrize("spec", [1, 2])
def test_header_and_identifier(spec: int) -> None:
    data = encode_snapshot(sample_snapshot(spec), spec)
    assert data[36:39] == bytes([spec, 1, 1])
    assert data[12:36].rstrip() == b"ic-py-0.1.0"
    assert payload(data)[4:8] == b"Ichk"


def test_nodes_sorted_by_utf8_path_bytes() -> None:
    paths = ["/ab", "/a/b", "/b", "/a-b", "/", "/a", "/é", "/z"]
    s = dataclasses.replace(
        sample_snapshot(2), nodes=[NodeSnapshot(rid(8), p, b"{}", None) for p in paths]
    )
    root = root_of(encode_snapshot(s, 2))
    written = [t.string_req(1, "path") for t in root.tables_req(2, "nodes")]
    assert written == ["/", "/a", "/a-b", "/a/b", "/ab", "/b", "/z", "/é"]
    assert [n.path for n in decode_snapshot(encode_snapshot(s, 2), NAME).nodes] == written


@pytest.mark.parametrize("spec", [1, 2])
def test_metadata_and_manifest_files_sorted(spec: int) -> None:
    s = sample_snapshot(spec)
    ids = [bytes([9] * 12), bytes([1] * 12), bytes([5] * 12)]
    s.manifest_files = [dataclasses.replace(s.manifest_files[0], id=i) for i in ids]
    s.metadata = {"zeta": 1, "alpha": 2, "Beta": 3, "ä": 4}
    root = root_of(encode_snapshot(s, spec))
    names = [t.string_req(0, "name") for t in root.tables_req(5, "metadata")]
    assert names == ["Beta", "alpha", "zeta", "ä"]
    if spec == 1:
        written = [raw[:12] for raw in root.structs(6, 32, "mf") or []]
        assert root.tables(7, "mf2") is None
    else:
        assert root.structs(6, 32, "mf", required=True) == []
        written = [t.struct_req(0, 12, "id") for t in root.tables_req(7, "mf2")]
    assert written == sorted(ids)


def test_metadata_encoding_per_spec() -> None:
    for spec, decode in ((1, decode_msgpack), (2, decode_flexbuffer)):
        root = root_of(encode_snapshot(sample_snapshot(spec), spec))
        values = {
            t.string_req(0, "name"): decode(t.blob_req(1, "value"), NAME)
            for t in root.tables_req(5, "metadata")
        }
        assert values == {"author": "me", "n": [1, 2.5, None]}


def test_spec_differences_in_bytes() -> None:
    s = sample_snapshot(1)
    v1 = root_of(encode_snapshot(s, 1))
    v2 = root_of(encode_snapshot(s, 2))
    assert v1.struct(1, 12) == s.parent_id
    assert v2.struct(1, 12) is None  # parentage lives in the repo info file
    array_v1 = v1.tables_req(2, "nodes")[1].table_req(4, "data")
    array_v2 = v2.tables_req(2, "nodes")[1].table_req(4, "data")
    assert array_v1.structs(0, 16, "shape") == [
        (10).to_bytes(8, "little") + (4).to_bytes(8, "little"),
        (5).to_bytes(8, "little") + (5).to_bytes(8, "little"),
    ]
    assert array_v1.tables(3, "shape_v2") is None
    assert array_v2.structs(0, 16, "shape", required=True) == []  # present but empty
    dims = array_v2.tables(3, "shape_v2") or []
    assert [(t.scalar(0, "u64"), t.scalar(1, "u32")) for t in dims] == [(10, 3), (5, 1)]


@pytest.mark.parametrize(
    ("length", "num_chunks", "chunk_length"),
    [(6, 2, 3), (100, 2, 50), (10, 4, 3), (7, 7, 1), (0, 0, 1), (1, 1, 1)],
)
def test_v1_chunk_length_defaults_to_ceil(length: int, num_chunks: int, chunk_length: int) -> None:
    """Without a recorded chunk length, spec 1 gets ceil(length / num_chunks), like real 2.x."""
    node = NodeSnapshot(
        rid(8), "/x", b"{}", ArrayData((DimensionShape(length, num_chunks),), None, ())
    )
    s = dataclasses.replace(sample_snapshot(1), nodes=[node])
    decoded = decode_snapshot(encode_snapshot(s, 1), NAME)
    array = decoded.nodes[0].array
    assert array is not None
    assert array.shape == (DimensionShape(length, num_chunks, chunk_length),)


def test_group_array_and_dimension_names() -> None:
    names = ("x", None, "")
    shape = (DimensionShape(1, 1, 1),) * 3
    nodes = [
        NodeSnapshot(rid(8), "/g", b'{"a":1}', None),
        NodeSnapshot(rid(8), "/n", b"{}", ArrayData(shape, names, ())),
        NodeSnapshot(rid(8), "/u", b"{}", ArrayData(shape, None, ())),
        NodeSnapshot(rid(8), "/s", b"{}", ArrayData((), None, ())),  # a 0-d array
    ]
    s = dataclasses.replace(sample_snapshot(2), nodes=nodes)
    decoded = {n.path: n for n in decode_snapshot(encode_snapshot(s, 2), NAME).nodes}
    assert decoded["/g"].array is None and decoded["/g"].user_data == b'{"a":1}'
    assert decoded["/n"].array is not None and decoded["/n"].array.dimension_names == names
    assert decoded["/u"].array is not None and decoded["/u"].array.dimension_names is None
    assert decoded["/s"].array == ArrayData((), None, ())


def test_initial_snapshot_shape() -> None:
    s = Snapshot(
        id=bytes.fromhex("0b1cc8d6787580f0e33a6534"),
        parent_id=None,
        nodes=[],
        flushed_at=0,
        message="Repository initialized",
        metadata={"__icechunk": {"is_root": True}},
        manifest_files=[],
    )
    for spec in (1, 2):
        assert decode_snapshot(encode_snapshot(s, spec), NAME) == dataclasses.replace(
            s, spec_version=spec
        )


@pytest.mark.parametrize(
    "change",
    [
        {"id": b"short"},
        {"parent_id": b"x" * 13},
        {"nodes": [NodeSnapshot(b"1234567", "/a", b"", None)]},
        {"nodes": [NodeSnapshot(b"12345678", "relative", b"", None)]},
        {"metadata": {"k": b"bytes"}},
    ],
)
def test_invalid_records_rejected(change: dict[str, object]) -> None:
    s = dataclasses.replace(sample_snapshot(1), **change)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        encode_snapshot(s, 1)


def test_unsupported_spec_version() -> None:
    with pytest.raises(InvalidInputError) as e:
        encode_snapshot(sample_snapshot(2), 3)
    assert e.value.kind == ErrorKind.UNSUPPORTED_SPEC_VERSION


def test_too_many_chunks_per_dimension_is_refused() -> None:
    """A u32 holds the number of chunks per dimension: beyond it the encoder refuses clearly."""
    import pytest

    from icechunk.errors import InvalidInputError

    node = NodeSnapshot(
        rid(8), "/x", b"{}", ArrayData((DimensionShape(2**33, 2**33, 1),), None, ())
    )
    snap = Snapshot(rid(12), None, [node], 0, "", {}, [], 2)
    with pytest.raises(InvalidInputError, match="2\\*\\*32"):
        encode_snapshot(snap, 2)
