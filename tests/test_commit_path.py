"""The commit path at scale: columnar staging to the encoders, one barrier, each object once.

Covers what makes a commit of 10^5-10^6 references fast without changing a byte of the format:
bulk-staged virtual references (no object per reference), transaction logs encoded from
coordinate arrays, the manifest encoder's strided scatter, single-call decompression of framed
objects, and the system calls a commit makes on local storage.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
import zstandard

import icechunk as ic
from icechunk._core.chunk_writes import ChunkWrites
from icechunk.errors import ErrorKind, FormatError, InvalidInputError
from icechunk.format.header import compress, decompress
from icechunk.format.manifest import decode_manifest, encode_manifest
from icechunk.format.model import ArrayManifest, ChunkKind, ChunkRefs, Manifest, TransactionLog
from icechunk.format.transaction_log import decode_transaction_log, encode_transaction_log
from icechunk.manifest_writer import unique_rows
from icechunk.storage import LocalFileSystemStorage
from icechunk.storage._writeback import WriteBack
from icechunk.virtual_refs import spec_columns

NODE = b"\x01" * 8
N_VIRTUAL = 400
"""Chunks of the virtual test array: batches this large are staged as columns."""
RNG = np.random.default_rng(7)


# -- unique_rows ---------------------------------------------------------------------------


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_unique_rows_equals_numpy_unique_over_rows(ndim: int) -> None:
    keys = RNG.integers(0, 7, size=(5000, ndim)).astype(np.int64)
    assert np.array_equal(unique_rows(keys), np.unique(keys, axis=0))


def test_unique_rows_falls_back_when_the_grid_is_too_large() -> None:
    keys = np.array([[1 << 40, 5, 1 << 30], [0, 0, 0], [1 << 40, 5, 1 << 30]], dtype=np.int64)
    assert unique_rows(keys).tolist() == [[0, 0, 0], [1 << 40, 5, 1 << 30]]


# -- transaction logs from coordinate arrays -----------------------------------------------


def _log() -> TransactionLog:
    return TransactionLog(id=b"\x02" * 12, new_arrays=[NODE])


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_tx_log_from_an_unsorted_array_is_byte_identical_to_sorted_tuples(ndim: int) -> None:
    coords = RNG.integers(0, 50, size=(3000, ndim)).astype(np.uint32)  # duplicates included
    as_tuples = sorted(set(map(tuple, coords.tolist())))
    by_tuples = _log()
    by_tuples.updated_chunks = {NODE: as_tuples}
    expected = encode_transaction_log(by_tuples, 2)
    got = encode_transaction_log(_log(), 2, chunk_coords={NODE: coords})
    assert got == expected
    decoded = decode_transaction_log(got, "transactions/x")
    assert decoded.updated_chunks == {NODE: as_tuples}


def test_tx_log_accepts_signed_arrays_within_uint32() -> None:
    coords = np.array([[3], [1], [0xFFFFFFFF]], dtype=np.int64)
    data = encode_transaction_log(_log(), 1, chunk_coords={NODE: coords})
    assert decode_transaction_log(data, "t").updated_chunks[NODE] == [(1,), (3,), (0xFFFFFFFF,)]


@pytest.mark.parametrize(
    ("coords", "kind"),
    [
        (np.array([[-1]], dtype=np.int64), ErrorKind.INVALID_CHUNK_INDEX),
        (np.array([[1 << 32]], dtype=np.int64), ErrorKind.INVALID_CHUNK_INDEX),
        (np.array([1, 2], dtype=np.uint32), ErrorKind.INVALID_ARGUMENT),
        (np.array([[1.5]]), ErrorKind.INVALID_ARGUMENT),
        ([(1, 2), (3,)], ErrorKind.INVALID_ARGUMENT),
        ([(1,), (2, 3)], ErrorKind.INVALID_ARGUMENT),
    ],
)
def test_tx_log_refuses_bad_coordinates(coords: Any, kind: ErrorKind) -> None:
    with pytest.raises(InvalidInputError) as err:
        encode_transaction_log(_log(), 2, chunk_coords={NODE: coords})
    assert err.value.kind == kind


# -- manifest scatter ----------------------------------------------------------------------


def _roundtrip(refs: ChunkRefs) -> ChunkRefs:
    data = encode_manifest(Manifest(b"\x03" * 12, [ArrayManifest(NODE, refs)], 2), 2)
    return decode_manifest(data, "manifests/x").arrays[0].refs


def test_manifest_of_uniform_virtual_refs_round_trips() -> None:
    n = 5000
    refs = ChunkRefs(
        coords=np.arange(n, dtype=np.uint32).reshape(n, 1),
        kind=np.full(n, ChunkKind.VIRTUAL, dtype=np.uint8),
        chunk_id=np.zeros((n, 12), dtype=np.uint8),
        offset=np.arange(n, dtype=np.uint64) * 8,  # ref 0 has no offset: another layout
        length=np.full(n, 8, dtype=np.uint64),
        location=["s3://bucket/one/file.nc"] * (n - 1) + ["s3://bucket/two.nc"],
        checksum_etag=[None, *(f'"etag-{i % 3}"' for i in range(n - 1))],
        checksum_last_modified=np.zeros(n, dtype=np.uint32),
    )
    back = _roundtrip(refs)
    assert back.location == refs.location
    assert back.checksum_etag == refs.checksum_etag
    assert np.array_equal(back.offset, refs.offset)


def test_manifest_of_inline_refs_of_every_length_round_trips() -> None:
    n = 3000
    data: list[bytes | None] = [
        bytes(RNG.integers(0, 256, i % 37 + 1, dtype=np.uint8)) for i in range(n)
    ]
    refs = ChunkRefs(
        coords=np.arange(n, dtype=np.uint32).reshape(n, 1),
        kind=np.full(n, ChunkKind.INLINE, dtype=np.uint8),
        chunk_id=np.zeros((n, 12), dtype=np.uint8),
        offset=np.zeros(n, dtype=np.uint64),
        length=np.array([len(d or b"") for d in data], dtype=np.uint64),
        inline=data,
    )
    assert _roundtrip(refs).inline == data


# -- decompression ---------------------------------------------------------------------------


def test_decompress_of_a_sized_frame_checks_its_end() -> None:
    payload = bytes(range(256)) * 400
    frame = compress(payload)
    assert decompress(frame, "k") == payload
    with pytest.raises(FormatError, match="after the zstd frame"):
        decompress(frame + b"\x00", "k")
    with pytest.raises(FormatError, match="truncated"):
        decompress(frame[:-6], "k")
    with pytest.raises(FormatError, match="declares"):
        decompress(frame, "k", max_size=len(payload) - 1)


def test_decompress_of_a_frame_declaring_an_impossible_size_is_refused() -> None:
    # a hand-made frame: 8-byte content size of 1 GiB, one raw block of 10 bytes
    data = b"0123456789"
    frame = (
        b"\x28\xb5\x2f\xfd"  # magic
        + bytes([0xC0, 0x00])  # 8-byte content size, window descriptor
        + (1 << 30).to_bytes(8, "little")
        + (1 | len(data) << 3).to_bytes(3, "little")  # last raw block
        + data
    )
    assert zstandard.get_frame_parameters(frame).content_size == 1 << 30
    # more than zstd could expand those bytes to: decoded piecewise, never allocated at once
    with pytest.raises(FormatError, match="corrupt object `k`"):
        decompress(frame, "k")


# -- virtual refs staged in bulk -----------------------------------------------------------


def _virtual_repo(tmp_path: Path) -> tuple[ic.Repository, str]:
    src = tmp_path / "src"
    src.mkdir()
    (src / "data.bin").write_bytes(np.arange(N_VIRTUAL, dtype="<f8").tobytes())
    config = ic.RepositoryConfig.default()
    config.set_virtual_chunk_container(
        ic.VirtualChunkContainer(f"file://{src}/", ic.local_filesystem_store(str(src)))
    )
    repo = ic.Repository.create(
        ic.local_filesystem_storage(str(tmp_path / "repo")),
        config=config,
        authorize_virtual_chunk_access={f"file://{src}/": ic.credentials.LocalFileSystemAccess},
    )
    session = repo.writable_session("main")
    zarr.create_array(
        session.store, name="a", shape=(N_VIRTUAL,), chunks=(1,), dtype="<f8", compressors=None
    )
    session.commit("array")
    return repo, f"file://{src}/data.bin"


def test_virtual_refs_are_staged_as_columns_and_the_last_duplicate_wins(tmp_path: Path) -> None:
    repo, location = _virtual_repo(tmp_path)
    session = repo.writable_session("main")
    specs = [ic.VirtualChunkSpec([i], location, 8 * i, 8) for i in range(N_VIRTUAL)]
    specs.append(ic.VirtualChunkSpec([5], location, 8 * 7, 8))  # chunk 5 now reads value 7
    specs.append(ic.VirtualChunkSpec([6], "file:///elsewhere/x.bin", 0, 8))  # no container
    failed = session.store.set_virtual_refs("a", specs, validate_containers=True)
    assert failed == [(6,)]
    staged = next(iter(session._changes.chunks.values()))
    assert isinstance(staged, ChunkWrites)
    assert staged.staged_in_bulk == len(staged)  # every reference in the bulk columns
    assert len(staged) == N_VIRTUAL
    session.commit("virtual")
    values = zarr.open_array(repo.readonly_session("main").store, path="a")[:]
    expected = np.arange(float(N_VIRTUAL))
    expected[5] = 7.0
    assert np.array_equal(values, expected)


def test_virtual_ref_specs_with_bad_fields_stage_nothing(tmp_path: Path) -> None:
    repo, location = _virtual_repo(tmp_path)
    session = repo.writable_session("main")
    for bad in (
        ic.VirtualChunkSpec([True], location, 0, 8),
        ic.VirtualChunkSpec([0], location, 1 << 70, 8),
        ic.VirtualChunkSpec([0], location, 0, 8.0),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidInputError):
            session.store.set_virtual_refs("a", [ic.VirtualChunkSpec([1], location, 0, 8), bad])
    assert not session.has_uncommitted_changes


def test_spec_columns_without_checksums_has_no_checksum_columns() -> None:
    specs = [ic.VirtualChunkSpec([i, 0], "s3://b/k", i, 4) for i in range(10)]
    coords, locations, offsets, lengths, etags, seconds = spec_columns(specs)
    assert coords.tolist() == [[i, 0] for i in range(10)]
    assert locations == ["s3://b/k"] * 10
    assert offsets.tolist() == list(range(10)) and lengths.tolist() == [4] * 10
    assert etags is None and seconds is None


# -- what a commit writes and syncs ----------------------------------------------------------


def test_a_commit_puts_each_object_once_and_syncs_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = ic.Repository.create(ic.local_filesystem_storage(str(tmp_path / "repo")))
    session = repo.writable_session("main")
    zarr.create_array(session.store, name="a", shape=(64,), chunks=(4,), dtype="<f4")
    session.commit("array")
    session = repo.writable_session("main")
    zarr.open_array(session.store, path="a")[:] = np.arange(64, dtype="<f4")

    puts: list[str] = []
    syncs: list[str] = []
    storage = repo.storage
    assert isinstance(storage, LocalFileSystemStorage)
    real_put = storage.put
    real_fsync = os.fsync
    real_barrier = WriteBack.barrier

    async def put(key: str, *args: Any, **kwargs: Any) -> Any:
        puts.append(key.split("/")[0])
        return await real_put(key, *args, **kwargs)

    def barrier(self: WriteBack) -> None:
        syncs.append("barrier")
        real_barrier(self)

    def fsync(fd: int) -> None:
        syncs.append(os.path.relpath(os.readlink(f"/proc/self/fd/{fd}"), storage.root))
        real_fsync(fd)

    monkeypatch.setattr(storage, "put", put)
    monkeypatch.setattr(WriteBack, "barrier", barrier)
    monkeypatch.setattr(os, "fsync", fsync)
    session.commit("data")

    for kind in ("manifests", "transactions", "snapshots"):
        assert puts.count(kind) == 1, puts
    # one barrier; the repo object itself is flushed (its temporary file), then its directory
    assert syncs.count("barrier") == 1, syncs
    tmp_flushes = [s for s in syncs if s.startswith(".icechunk-tmp/")]
    assert len(tmp_flushes) == 1 and syncs[-1] == ".", syncs
    assert storage._writeback.outstanding == 0


def test_virtual_locations_of_a_fork_read_its_layers_top_down(tmp_path: Path) -> None:
    repo, location = _virtual_repo(tmp_path)
    src = Path(location.removeprefix("file://")).parent
    copies = {}
    for name in ("b.bin", "c.bin"):
        copies[name] = src / name
        copies[name].write_bytes((src / "data.bin").read_bytes())
    session = repo.writable_session("main")
    session.store.set_virtual_refs(
        "a", [ic.VirtualChunkSpec([i], location, 8 * i, 8) for i in range(4)]
    )
    session.commit("base")
    session = repo.writable_session("main")
    session.store.set_virtual_refs(
        "a", [ic.VirtualChunkSpec([0], f"file://{copies['b.bin']}", 0, 8)]
    )
    fork = session.fork()
    fork.store.set_virtual_refs("a", [ic.VirtualChunkSpec([1], f"file://{copies['c.bin']}", 8, 8)])
    every = sorted([location, f"file://{copies['b.bin']}", f"file://{copies['c.bin']}"])
    assert fork.all_virtual_chunk_locations() == every
    zarr.open_array(fork.store, path="a")[0] = 1.0  # the fork's native write hides b.bin
    assert fork.all_virtual_chunk_locations() == sorted([location, f"file://{copies['c.bin']}"])
    assert session.all_virtual_chunk_locations() == sorted([location, f"file://{copies['b.bin']}"])


def test_a_few_virtual_refs_at_a_time_are_staged_one_by_one(tmp_path: Path) -> None:
    # set_virtual_ref in a loop must not re-merge the bulk columns at every call
    repo, location = _virtual_repo(tmp_path)
    session = repo.writable_session("main")
    for i in range(3):
        session.store.set_virtual_ref(f"a/c/{i}", location, offset=8 * i, length=8)
    staged = next(iter(session._changes.chunks.values()))
    assert isinstance(staged, ChunkWrites) and staged.staged_in_bulk == 0
    assert sorted(staged) == [(0,), (1,), (2,)]
    session.commit("three")
    values = zarr.open_array(repo.readonly_session("main").store, path="a")[:3]
    assert values.tolist() == [0.0, 1.0, 2.0]
