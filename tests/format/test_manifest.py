"""Chunk manifests: the vectorised codec, both spec versions, all ref kinds."""

from __future__ import annotations

import os
import sys
from typing import Any

import flatbuffers
import numpy as np
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from icechunk.errors import FormatError, InvalidInputError
from icechunk.format import decode_manifest, encode_manifest
from icechunk.format.flatbuf import Buffer, TableColumns
from icechunk.format.header import encode_object
from icechunk.format.model import ArrayManifest, ChunkKind, ChunkRefs, FileType, Manifest
from tests.format.helpers import (
    assert_manifests_equal,
    assert_refs_equal,
    chunk_refs,
    manifests,
    native_refs,
    payload,
    rid,
    sorted_refs,
)

NAME = "manifests/TEST"


def expected(m: Manifest, spec: int) -> Manifest:
    arrays = sorted(m.arrays, key=lambda a: a.node_id)
    return Manifest(m.id, [ArrayManifest(a.node_id, sorted_refs(a.refs)) for a in arrays], spec)


@given(st.data(), st.sampled_from([1, 2]))
def test_round_trip(data: st.DataObject, spec: int) -> None:
    m = data.draw(manifests(spec))
    encoded = encode_manifest(m, spec)
    decoded = decode_manifest(encoded, NAME)
    assert_manifests_equal(decoded, expected(m, spec))
    assert encode_manifest(decoded, spec) == encoded


@given(chunk_refs(max_refs=60, kinds=(ChunkKind.NATIVE,)))
def test_round_trip_native_only(refs: ChunkRefs) -> None:
    m = Manifest(rid(), [ArrayManifest(rid(8), refs)], 2)
    assert_manifests_equal(decode_manifest(encode_manifest(m, 2), NAME), expected(m, 2))


@given(chunk_refs(max_refs=60, kinds=(ChunkKind.INLINE,)))
def test_round_trip_inline_only(refs: ChunkRefs) -> None:
    m = Manifest(rid(), [ArrayManifest(rid(8), refs)], 1)
    assert_manifests_equal(decode_manifest(encode_manifest(m, 1), NAME), expected(m, 1))


def refs_layout(data: bytes) -> list[TableColumns]:
    buf = Buffer(payload(data), NAME, "manifest")
    root = buf.root()
    return [
        TableColumns(buf, t.child(1, "refs", required=True), "refs")
        for t in root.tables_req(1, "arrays")
    ]


def test_sort_order_in_bytes() -> None:
    ids = [bytes([3] * 8), bytes([1] * 8), bytes([2] * 8)]
    coords = np.array([[2, 0], [0, 5], [1, 1], [0, 4], [10, 0]], dtype=np.uint32)
    m = Manifest(rid(), [ArrayManifest(i, native_refs(coords)) for i in ids], 2)
    data = encode_manifest(m, 2)
    buf = Buffer(payload(data), NAME, "manifest")
    tables = buf.root().tables_req(1, "arrays")
    assert [t.struct_req(0, 8, "node_id") for t in tables] == sorted(ids)
    for cols in refs_layout(data):
        starts, lengths = cols.u32_vectors(0, "index")
        rows = [
            tuple(np.frombuffer(buf.data, "<u4", n, s).tolist())
            for s, n in zip(starts.tolist(), lengths.tolist(), strict=True)
        ]
        assert rows == [(0, 4), (0, 5), (1, 1), (2, 0), (10, 0)]


def test_native_layout_is_uniform_and_omits_zero_offsets() -> None:
    n = 1000
    coords = np.stack(np.unravel_index(np.arange(n), (10, 100)), axis=1)
    refs = native_refs(coords)
    data = encode_manifest(Manifest(rid(), [ArrayManifest(rid(8), refs)], 2), 2)
    (cols,) = refs_layout(data)
    assert cols.uniform  # one shared vtable
    assert not cols.field_offsets(2, 8).any()  # offset field absent
    assert cols.field_offsets(3, 8).all() and cols.field_offsets(4, 12).all()
    assert not (cols.pos % 8).any()  # tables 8-aligned: u64 fields are aligned
    refs.offset[5] = 7
    data = encode_manifest(Manifest(rid(), [ArrayManifest(rid(8), refs)], 2), 2)
    (cols,) = refs_layout(data)
    assert not cols.uniform
    assert cols.field_offsets(2, 8).nonzero()[0].tolist() == [5]


def test_native_2d_ref_is_48_bytes() -> None:
    n = 10_000
    coords = np.stack(np.unravel_index(np.arange(n), (100, 100)), axis=1)
    data = encode_manifest(Manifest(rid(), [ArrayManifest(rid(8), native_refs(coords))], 2), 2)
    assert 48 * n < len(payload(data)) < 48 * n + 4 * n + 512  # + the uoffset vector


def test_compression_algorithm_field() -> None:
    m = Manifest(rid(), [ArrayManifest(rid(8), native_refs(np.zeros((1, 1))))], 2)
    for spec, present in ((1, False), (2, True)):
        root = Buffer(payload(encode_manifest(m, spec)), NAME, "manifest").root()
        assert root.has(3) is present
        assert root.scalar(3, "u8", 1) == (0 if present else 1)
        assert not root.has(2)


def test_empty_manifest_and_empty_array() -> None:
    m = Manifest(rid(), [], 2)
    assert_manifests_equal(decode_manifest(encode_manifest(m, 2), NAME), m)
    empty = native_refs(np.zeros((0, 3)))
    m = Manifest(rid(), [ArrayManifest(rid(8), empty)], 1)
    decoded = decode_manifest(encode_manifest(m, 1), NAME)
    assert len(decoded.arrays[0].refs) == 0


def test_scalar_array_ref() -> None:
    refs = native_refs(np.zeros((1, 0)))
    m = Manifest(rid(), [ArrayManifest(rid(8), refs)], 2)
    decoded = decode_manifest(encode_manifest(m, 2), NAME)
    assert decoded.arrays[0].refs.coords.shape == (1, 0)
    assert_refs_equal(decoded.arrays[0].refs, refs)


def test_rejects_duplicates_and_bad_columns() -> None:
    coords = np.array([[1, 2], [0, 0], [1, 2]])
    with pytest.raises(InvalidInputError, match="same chunk coordinates"):
        encode_manifest(Manifest(rid(), [ArrayManifest(rid(8), native_refs(coords))], 2), 2)
    node = rid(8)
    ok = native_refs(np.zeros((1, 1)))
    with pytest.raises(InvalidInputError, match="same node id"):
        encode_manifest(Manifest(rid(), [ArrayManifest(node, ok), ArrayManifest(node, ok)], 2), 2)
    bad = native_refs(np.array([[0], [1]]))
    bad.kind[0] = 9
    with pytest.raises(InvalidInputError, match="unknown chunk kind"):
        encode_manifest(Manifest(rid(), [ArrayManifest(rid(8), bad)], 2), 2)
    with pytest.raises(InvalidInputError):
        encode_manifest(Manifest(b"short", [], 2), 2)
    with pytest.raises(InvalidInputError):
        encode_manifest(Manifest(rid(), [], 2), 5)


# ---------------------------------------------------------------------------------------------
# manifests written by a generic builder (other layouts, compressed locations)


def build_manifest(
    arrays: list[tuple[bytes, list[dict[str, Any]]]],
    dictionary: bytes | None = None,
    compression: int | None = None,
    spec: int = 2,
) -> bytes:
    """A manifest written field by field with flatbuffers.Builder, in an unusual field order."""
    b = flatbuffers.Builder(1024)
    array_tables = []
    for node_id, refs in arrays:
        ref_tables = []
        for ref in refs:
            index = b.CreateNumpyVector(np.array(ref["index"], dtype="<u4"))
            children: dict[str, int] = {}
            for key in ("inline", "compressed_location"):
                if key in ref:
                    children[key] = b.CreateByteVector(ref[key])
            for key in ("location", "etag"):
                if key in ref:
                    children[key] = b.CreateString(ref[key])
            b.StartObject(10)
            if "chunk_id" in ref:
                b.Prep(1, 12)
                b.head -= 12
                b.Bytes[b.head : b.head + 12] = ref["chunk_id"]
                b.PrependStructSlot(4, b.Offset(), 0)
            b.PrependUint32Slot(7, ref.get("last_modified", 0), 0)
            slots = {"inline": 1, "location": 5, "etag": 6, "compressed_location": 8}
            for key, off in children.items():
                b.PrependUOffsetTRelativeSlot(slots[key], off, 0)
            b.PrependUOffsetTRelativeSlot(0, index, 0)
            b.PrependUint64Slot(2, ref.get("offset", 0), 0)
            b.PrependUint64Slot(3, ref.get("length", 0), 0)
            ref_tables.append(b.EndObject())
        b.StartVector(4, len(ref_tables), 4)
        for t in reversed(ref_tables):
            b.PrependUOffsetTRelative(t)
        refs_vec = b.EndVector()
        b.StartObject(3)
        b.Prep(1, 8)
        b.head -= 8
        b.Bytes[b.head : b.head + 8] = node_id
        b.PrependStructSlot(0, b.Offset(), 0)
        b.PrependUOffsetTRelativeSlot(1, refs_vec, 0)
        array_tables.append(b.EndObject())
    b.StartVector(4, len(array_tables), 4)
    for t in reversed(array_tables):
        b.PrependUOffsetTRelative(t)
    arrays_vec = b.EndVector()
    dict_vec = b.CreateByteVector(dictionary) if dictionary is not None else None
    b.StartObject(5)
    b.PrependUOffsetTRelativeSlot(1, arrays_vec, 0)
    if dict_vec is not None:
        b.PrependUOffsetTRelativeSlot(2, dict_vec, 0)
    if compression is not None:
        b.ForceDefaults(True)
        b.PrependUint8Slot(3, compression, 1)
        b.ForceDefaults(False)
    b.Prep(1, 12)
    b.head -= 12
    b.Bytes[b.head : b.head + 12] = bytes(range(12))
    b.PrependStructSlot(0, b.Offset(), 0)
    b.Finish(b.EndObject(), file_identifier=b"Ichk")
    return encode_object(bytes(b.Output()), FileType.MANIFEST, spec)


def test_decodes_mixed_layouts_from_a_generic_builder() -> None:
    cid = bytes(range(100, 112))
    refs: list[dict[str, Any]] = [
        {"index": [0, 1], "chunk_id": cid, "length": 10},
        {"index": [0, 2], "inline": b"\x01\x02\x03"},
        {"index": [0, 3], "location": "s3://b/k", "offset": 5, "length": 6, "etag": "e"},
        {"index": [0, 4], "location": "gs://b/k", "length": 6, "last_modified": 42},
        {"index": [0, 5], "chunk_id": cid, "offset": 3, "length": 10},
    ]
    data = build_manifest([(b"nodeid01", refs)], spec=1)
    m = decode_manifest(data, NAME)
    r = m.arrays[0].refs
    assert m.spec_version == 1 and m.arrays[0].node_id == b"nodeid01"
    assert r.coords.tolist() == [[0, 1], [0, 2], [0, 3], [0, 4], [0, 5]]
    assert r.kind.tolist() == [1, 3, 2, 2, 1]
    assert r.offset.tolist() == [0, 0, 5, 0, 3]
    assert r.length.tolist() == [10, 3, 6, 6, 10]
    assert bytes(r.chunk_id[0]) == cid and not r.chunk_id[1:4].any()
    assert r.inline == [None, b"\x01\x02\x03", None, None, None]
    assert r.location == [None, None, "s3://b/k", "gs://b/k", None]
    assert r.checksum_etag == [None, None, "e", None, None]
    assert r.checksum_last_modified is not None
    assert r.checksum_last_modified.tolist() == [0, 0, 0, 42, 0]
    # and our encoder reproduces the same refs
    again = decode_manifest(encode_manifest(m, 1), NAME)
    assert_refs_equal(again.arrays[0].refs, r)


def test_decodes_dictionary_compressed_locations() -> None:
    urls = [f"s3://some-bucket/path/to/data/file{i % 7}.nc" for i in range(50)]
    dictionary = zstandard.ZstdCompressionDict(
        b"s3://some-bucket/path/to/data/file", dict_type=zstandard.DICT_TYPE_RAWCONTENT
    )
    cctx = zstandard.ZstdCompressor(dict_data=dictionary)
    refs = [
        {"index": [i], "compressed_location": cctx.compress(u.encode()), "length": 8}
        for i, u in enumerate(urls)
    ]
    data = build_manifest([(b"virtual1", refs)], dictionary=dictionary.as_bytes())
    r = decode_manifest(data, NAME).arrays[0].refs
    assert r.location == urls
    assert (r.kind == ChunkKind.VIRTUAL).all()
    # garbage in a compressed location is a FormatError naming the manifest
    refs[3]["compressed_location"] = b"\x28\xb5\x2f\xfd garbage"
    data = build_manifest([(b"virtual1", refs)], dictionary=dictionary.as_bytes())
    with pytest.raises(FormatError, match=NAME):
        decode_manifest(data, NAME)


def test_ref_without_payload_is_corrupt() -> None:
    data = build_manifest([(b"nodeid01", [{"index": [0], "length": 3}])])
    with pytest.raises(FormatError, match="neither a chunk id"):
        decode_manifest(data, NAME)


def test_mixed_dimensionality_is_corrupt() -> None:
    refs = [{"index": [0], "inline": b"a"}, {"index": [0, 1], "inline": b"b"}]
    with pytest.raises(FormatError, match="dimensionality"):
        decode_manifest(build_manifest([(b"nodeid01", refs)]), NAME)


def _codec_calls(n: int) -> tuple[int, ChunkRefs, Manifest]:
    """Python-level calls (Python functions and C functions called from Python) made by one
    encode + decode of a manifest of ``n`` native refs, and the decoded refs."""
    coords = np.stack(np.unravel_index(np.arange(n), (1000, -(-n // 1000))), axis=1)
    refs = native_refs(coords)
    m = Manifest(os.urandom(12), [ArrayManifest(os.urandom(8), refs)], 2)
    calls = 0

    def count(frame: object, event: str, arg: object) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    sys.setprofile(count)
    try:
        decoded = decode_manifest(encode_manifest(m, 2), NAME)
    finally:
        sys.setprofile(None)
    return calls, refs, decoded


@pytest.mark.slow
def test_million_refs_round_trip_is_vectorised() -> None:
    """A 1M-ref manifest round-trips exactly, and encoding + decoding it makes no more
    Python-level calls than a 1k-ref one (plus a small allowance): the codec does no
    per-reference Python work. Its speed is measured by the benchmarks (``commit 1M virtual
    refs`` encodes one, ``manifest`` encodes and decodes one), never here."""
    small, _, _ = _codec_calls(1000)
    big, refs, decoded = _codec_calls(1_000_000)
    assert_refs_equal(decoded.arrays[0].refs, refs)
    assert len(decoded.arrays[0].refs) == 1_000_000
    assert big <= small + 50, f"{big} calls for 1M refs vs {small} for 1k: per-ref Python work"
