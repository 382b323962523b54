"""Corrupt, truncated and hostile objects: every decoder fails with a FormatError naming the
object, in bounded time and memory, and never with another exception."""

from __future__ import annotations

import random
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import flatbuffers
import numpy as np
import pytest

from icechunk.errors import FormatError
from icechunk.format import (
    decode_manifest,
    decode_repo_info,
    decode_snapshot,
    decode_transaction_log,
    encode_manifest,
    encode_repo_info,
    encode_snapshot,
    encode_transaction_log,
)
from icechunk.format.flatbuf import Buffer
from icechunk.format.header import HEADER_SIZE, encode_object
from icechunk.format.model import (
    ArrayManifest,
    FileType,
    Manifest,
    MoveOperation,
    RepoInfo,
    RepoRef,
    RepoStatus,
    SnapshotInfoRecord,
    TransactionLog,
    UpdateRecord,
)
from tests.format.helpers import native_refs, payload, rid, sample_snapshot

Decoder = Callable[[bytes, str], Any]


def mixed_manifest(spec: int) -> Manifest:
    refs = native_refs(np.array([[0, 0], [0, 1], [1, 0], [1, 1]]))
    refs.kind[1] = 3
    refs.kind[2] = 2
    refs.chunk_id[1:3] = 0
    refs.offset[3] = 12
    refs.inline = [None, b"inline bytes", None, None]
    refs.location = [None, None, "s3://bucket/key", None]
    refs.checksum_etag = [None, None, "etag", None]
    refs.checksum_last_modified = np.array([0, 0, 77, 0], dtype=np.uint32)
    other = native_refs(np.arange(20).reshape(20, 1))
    return Manifest(rid(), [ArrayManifest(rid(8), refs), ArrayManifest(rid(8), other)], spec)


def sample_tx(spec: int) -> TransactionLog:
    return TransactionLog(
        id=rid(),
        new_groups=[rid(8)],
        deleted_arrays=[rid(8), rid(8)],
        updated_chunks={rid(8): [(0, 1), (2, 3)], rid(8): [(5,)]},
        moved_nodes=[MoveOperation("/a", "/b", rid(8), True)] if spec == 2 else [],
    )


def sample_repo() -> RepoInfo:
    a, b = rid(), rid()
    return RepoInfo(
        branches=[RepoRef("main", a)],
        tags=[RepoRef("v1", b)],
        deleted_tags=["old"],
        snapshots=[
            SnapshotInfoRecord(b, None, 1, "init", {}),
            SnapshotInfoRecord(a, b, 2, "c", {"k": [1]}),
        ],
        status=RepoStatus(0, 5, None),
        metadata={"team": "x"},
        latest_updates=[
            UpdateRecord("NewCommit", {"branch": "main", "new_snap_id": a}, 3),
            UpdateRecord("RepoInitialized", {}, 1, "overwritten/repo.1.X"),
        ],
        config=b"\x00\x01\x02",
    )


SAMPLES: dict[str, tuple[bytes, Decoder, FileType]] = {
    "snapshot-1": (encode_snapshot(sample_snapshot(1), 1), decode_snapshot, FileType.SNAPSHOT),
    "snapshot-2": (encode_snapshot(sample_snapshot(2), 2), decode_snapshot, FileType.SNAPSHOT),
    "manifest-1": (encode_manifest(mixed_manifest(1), 1), decode_manifest, FileType.MANIFEST),
    "manifest-2": (encode_manifest(mixed_manifest(2), 2), decode_manifest, FileType.MANIFEST),
    "tx-1": (
        encode_transaction_log(sample_tx(1), 1),
        decode_transaction_log,
        FileType.TRANSACTION_LOG,
    ),
    "tx-2": (
        encode_transaction_log(sample_tx(2), 2),
        decode_transaction_log,
        FileType.TRANSACTION_LOG,
    ),
    "repo": (encode_repo_info(sample_repo()), decode_repo_info, FileType.REPO_INFO),
}
NAME = "objects/ZZZZZZZZZZZZZZZZZZZZ"


def decode_or_format_error(decode: Decoder, data: bytes) -> bool:
    """Decode; True if it worked, False on FormatError naming the object (else the test fails)."""
    t = time.perf_counter()
    try:
        decode(data, NAME)
    except FormatError as e:
        assert NAME in str(e), str(e)
        return False
    finally:
        assert time.perf_counter() - t < 2.0
    return True


@pytest.mark.parametrize("sample", list(SAMPLES))
def test_samples_decode(sample: str) -> None:
    data, decode, _ = SAMPLES[sample]
    decode(data, NAME)


@pytest.mark.parametrize("sample", list(SAMPLES))
def test_truncated_everywhere(sample: str) -> None:
    data, decode, _ = SAMPLES[sample]
    for cut in range(len(data)):
        assert not decode_or_format_error(decode, data[:cut]), cut


@pytest.mark.parametrize("sample", list(SAMPLES))
def test_flipped_bytes_in_the_object(sample: str) -> None:
    data, decode, _ = SAMPLES[sample]
    rng = random.Random(sample)
    for _ in range(300):
        pos = rng.randrange(len(data))
        corrupt = bytearray(data)
        corrupt[pos] ^= 1 << rng.randrange(8)
        decode_or_format_error(decode, bytes(corrupt))


def reframe(body: bytes | bytearray, file_type: FileType, spec: int) -> bytes:
    return encode_object(bytes(body), file_type, spec)


@pytest.mark.parametrize("sample", list(SAMPLES))
def test_corrupt_flatbuffers(sample: str) -> None:
    """Valid header and zstd frame around a damaged flatbuffer."""
    data, decode, file_type = SAMPLES[sample]
    spec = data[36]
    body = payload(data)
    rng = random.Random(sample)
    failures = 0
    for i in range(600):
        corrupt = bytearray(body)
        pos = rng.randrange(len(body))
        if i % 3 == 0:
            corrupt[pos] ^= 1 << rng.randrange(8)
        elif i % 3 == 1:  # a large 32-bit value: offsets and lengths far out of range
            corrupt[pos : pos + 4] = rng.choice(
                [b"\xff\xff\xff\xff", b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80"]
            )
        else:
            corrupt[pos : pos + 2] = rng.randbytes(2)
        failures += not decode_or_format_error(decode, reframe(corrupt, file_type, spec))
    assert failures > 100  # most damage is detected
    for cut in range(0, len(body) - 8, max(1, len(body) // 100)):  # the end may be padding
        assert not decode_or_format_error(decode, reframe(body[:cut], file_type, spec))


@pytest.mark.parametrize("sample", list(SAMPLES))
def test_out_of_range_root_and_garbage_payloads(sample: str) -> None:
    data, decode, file_type = SAMPLES[sample]
    spec = data[36]
    body = bytearray(payload(data))
    body[0:4] = (len(body) + 100).to_bytes(4, "little")
    assert not decode_or_format_error(decode, reframe(body, file_type, spec))
    assert not decode_or_format_error(decode, reframe(b"", file_type, spec))
    assert not decode_or_format_error(decode, reframe(b"\x00" * 64, file_type, spec))
    assert not decode_or_format_error(decode, reframe(b"\xff" * 64, file_type, spec))
    rng = random.Random(1)
    for _ in range(50):
        decode_or_format_error(decode, reframe(rng.randbytes(rng.randrange(200)), file_type, spec))
    # garbage in place of the zstd frame
    assert not decode_or_format_error(decode, data[:HEADER_SIZE] + rng.randbytes(100))
    wrong = bytearray(data)
    wrong[4:10] = b"xxxxxx"
    assert not decode_or_format_error(decode, bytes(wrong))


def test_missing_identifier_and_required_fields() -> None:
    data, decode, file_type = SAMPLES["snapshot-2"]
    body = bytearray(payload(data))
    body[4:8] = b"Xchk"
    with pytest.raises(FormatError, match="Ichk"):
        decode(reframe(body, file_type, 2), NAME)
    b = flatbuffers.Builder(64)
    b.StartObject(9)
    b.Finish(b.EndObject(), file_identifier=b"Ichk")
    with pytest.raises(FormatError, match=r"missing required field `Snapshot\.id`"):
        decode_snapshot(reframe(bytes(b.Output()), FileType.SNAPSHOT, 2), NAME)


def test_shared_tables_hit_the_budget() -> None:
    """Many references to one big table cannot multiply the decoding work."""
    n, copies = 2000, 5000
    b = flatbuffers.Builder(1 << 16)
    tables = []
    for i in range(n):
        index = b.CreateNumpyVector(np.array([i], dtype="<u4"))
        data = b.CreateByteVector(b"x")
        b.StartObject(2)
        b.PrependUOffsetTRelativeSlot(0, index, 0)
        b.PrependUOffsetTRelativeSlot(1, data, 0)
        tables.append(b.EndObject())
    b.StartVector(4, n, 4)
    for t in reversed(tables):
        b.PrependUOffsetTRelative(t)
    refs_vec = b.EndVector()
    b.StartObject(2)
    b.Prep(1, 8)
    b.head -= 8
    b.Bytes[b.head : b.head + 8] = b"nodenode"
    b.PrependStructSlot(0, b.Offset(), 0)
    b.PrependUOffsetTRelativeSlot(1, refs_vec, 0)
    table = b.EndObject()
    b.StartVector(4, copies, 4)
    for _ in range(copies):
        b.PrependUOffsetTRelative(table)
    arrays = b.EndVector()
    b.StartObject(2)
    b.Prep(1, 12)
    b.head -= 12
    b.Bytes[b.head : b.head + 12] = bytes(12)
    b.PrependStructSlot(0, b.Offset(), 0)
    b.PrependUOffsetTRelativeSlot(1, arrays, 0)
    b.Finish(b.EndObject(), file_identifier=b"Ichk")
    data = reframe(bytes(b.Output()), FileType.MANIFEST, 2)
    tracemalloc.start()
    t = time.perf_counter()
    try:
        with pytest.raises(FormatError, match="too many tables"):
            decode_manifest(data, NAME)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert time.perf_counter() - t < 2.0
    assert peak < 50 * len(data) + (20 << 20)


def test_huge_vector_lengths_do_not_allocate() -> None:
    """A refs vector claiming 2**32 - 1 elements fails before anything that size is built."""
    data, _, _ = SAMPLES["manifest-2"]
    body = bytearray(payload(data))
    buf = Buffer(bytes(body), NAME, "manifest")
    array_table = buf.root().tables_req(1, "arrays")[0]
    refs_pos = array_table.child(1, "refs", required=True)
    body[refs_pos : refs_pos + 4] = b"\xff\xff\xff\xff"
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match="runs past the end"):
            decode_manifest(reframe(body, FileType.MANIFEST, 2), NAME)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < 10 << 20
