"""The chunk write and read paths' shortcuts: zero-copy chunk writes, lazy manifest lookups.

* ``IcechunkStore.set`` hands chunk bytes to the session as a view of zarr's buffer (no copy);
  storages write it as is (local) or keep their own copy (memory).
* Reading a few chunks of a manifest that is not decoded yet binary-searches its flatbuffer
  (:class:`icechunk.format.manifest.ManifestView`) instead of decoding every ref; after
  ``LAZY_MANIFEST_LOOKUPS`` lookups the whole manifest is decoded once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.core.buffer import default_buffer_prototype

import icechunk
from icechunk._sync import sync
from icechunk.cache import default_cache
from icechunk.chunk_refs import payload_at
from icechunk.errors import FormatError
from icechunk.format.ids import decode_id
from icechunk.format.manifest import ManifestView, encode_manifest
from icechunk.format.model import ArrayManifest, ChunkKind, ChunkRefs, Manifest
from icechunk.repository import LAZY_MANIFEST_LOOKUPS
from icechunk.storage.local import LocalFileSystemStorage
from icechunk.storage.memory import InMemoryStorage
from icechunk.store import _byte_view

# -- zero-copy chunk writes ------------------------------------------------------------------


def test_byte_view_shares_the_buffer_memory_and_copies_only_what_it_must() -> None:
    proto = default_buffer_prototype()
    raw = np.arange(4096, dtype="u1")
    view = _byte_view(proto.buffer.from_array_like(raw))
    assert isinstance(view, memoryview) and view.format == "B" and len(view) == 4096
    raw[0] = 200  # the view is the buffer's memory, not a copy
    assert view[0] == 200
    assert bytes(view) == raw.tobytes()


async def test_local_storage_writes_a_memoryview_as_is(tmp_path: Path) -> None:
    storage = LocalFileSystemStorage(tmp_path / "s")
    data = bytearray(np.random.default_rng(1).integers(0, 256, 1 << 20, dtype="u1").tobytes())
    version = await storage.put("chunks/ABC", memoryview(data))
    assert version.etag == f"size-{1 << 20}"
    data[:4] = b"XXXX"  # after put returned, the object no longer depends on the buffer
    stored = await storage.get("chunks/ABC")
    assert stored[:4] != b"XXXX" and stored[4:] == bytes(data[4:])


async def test_memory_storage_keeps_its_own_copy_of_a_memoryview() -> None:
    storage = InMemoryStorage()
    data = bytearray(b"0123456789")
    await storage.put("chunks/ABC", memoryview(data))
    data[:] = b"xxxxxxxxxx"
    assert await storage.get("chunks/ABC") == b"0123456789"


@pytest.mark.parametrize("inline", [False, True], ids=["native", "inline"])
def test_chunks_written_through_the_store_read_back_after_the_buffer_changes(
    tmp_path: Path, inline: bool
) -> None:
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "r")))
    session = repo.writable_session("main")
    side = 4 if inline else 256  # 64 B chunks are inlined, 256 KiB ones are chunk objects
    arr = zarr.create_array(
        session.store, name="a", shape=(2 * side, side), chunks=(side, side), dtype="f4"
    )
    data = np.random.default_rng(2).random((2 * side, side), dtype="f4")
    arr[...] = data
    expected = data.copy()
    data[...] = -1  # the caller's array (and zarr's encoded buffers) may be reused at once
    session.commit("w")
    got = zarr.open_array(repo.readonly_session("main").store, path="a", mode="r")[...]
    np.testing.assert_array_equal(got, expected)
    kinds = {session.chunk_type("a", (i, 0)) for i in range(2)}
    assert kinds == {icechunk.ChunkType.inline if inline else icechunk.ChunkType.native}


# -- lazy manifest lookups -------------------------------------------------------------------


def _mixed_refs(n: int) -> ChunkRefs:
    """``n`` refs of a 2-d array (every third coordinate skipped): native, inline, virtual."""
    coords = np.array([(i // 7, 3 * (i % 7)) for i in range(n)], dtype=np.uint32)
    kind = np.array(
        [(ChunkKind.NATIVE, ChunkKind.INLINE, ChunkKind.VIRTUAL)[i % 3] for i in range(n)]
    )
    chunk_id = np.zeros((n, 12), dtype=np.uint8)
    chunk_id[kind == ChunkKind.NATIVE] = np.arange(12, dtype=np.uint8) + 1
    offset = np.where(kind == ChunkKind.INLINE, 0, np.arange(n) * 10).astype(np.uint64)
    length = np.where(kind == ChunkKind.INLINE, 3, 100 + np.arange(n)).astype(np.uint64)
    refs = ChunkRefs(coords, kind.astype(np.uint8), chunk_id, offset, length)
    refs.inline = [
        f"i{i:02d}".encode()[:3] if k == ChunkKind.INLINE else None for i, k in enumerate(kind)
    ]
    refs.location = [
        f"s3://b/f{i}.nc" if k == ChunkKind.VIRTUAL else None for i, k in enumerate(kind)
    ]
    refs.checksum_etag = [
        f"etag-{i}" if k == ChunkKind.VIRTUAL and i % 2 else None for i, k in enumerate(kind)
    ]
    refs.checksum_last_modified = np.where(
        kind == ChunkKind.VIRTUAL, 1000 + np.arange(n), 0
    ).astype(np.uint32)
    return refs


@pytest.mark.parametrize("spec", [1, 2])
def test_manifest_view_lookup_agrees_with_the_full_decode(spec: int) -> None:
    node_a, node_b = b"AAAAAAAA", b"BBBBBBBB"
    manifest = Manifest(
        b"M" * 12,
        [ArrayManifest(node_a, _mixed_refs(200)), ArrayManifest(node_b, _mixed_refs(5))],
        spec_version=spec,
    )
    data = encode_manifest(manifest, spec)
    view = ManifestView(data, "manifests/M")
    decoded = view.decode()
    assert [a.node_id for a in decoded.arrays] == [node_a, node_b]
    for array in decoded.arrays:
        refs = array.refs
        for i, row in enumerate(refs.coords.tolist()):
            one = view.lookup(array.node_id, tuple(row))
            assert one is not None and one.coords.tolist() == [row]
            assert payload_at(one, 0) == payload_at(refs, i)
        present = {tuple(r) for r in refs.coords.tolist()}
        for absent in [(0, 1), (0, 2), (1000, 0), (len(refs), 3)]:
            assert absent not in present
            assert view.lookup(array.node_id, absent) is None
    assert view.lookup(node_a, (0,)) is None  # another dimensionality
    assert view.lookup(node_a, (0, 0, 0)) is None
    assert view.lookup(b"CCCCCCCC", (0, 0)) is None  # no such array
    assert view.has_array(node_b) and not view.has_array(b"CCCCCCCC")


def test_manifest_view_refuses_a_corrupt_object() -> None:
    data = encode_manifest(Manifest(b"M" * 12, [], spec_version=2), 2)
    with pytest.raises(FormatError, match="manifests/M"):
        ManifestView(data[: len(data) // 2], "manifests/M")


def _inline_repo(root: Path, n: int) -> np.ndarray:
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(root)))
    session = repo.writable_session("main")
    data = (np.arange(n) % 251 + 1).astype("u1")
    zarr.create_array(session.store, name="a", shape=(n,), chunks=(1,), dtype="u1", fill_value=0)[
        ...
    ] = data
    session.commit("setup")
    return data


def test_reading_one_chunk_of_a_fresh_session_does_not_decode_the_manifest(
    tmp_path: Path,
) -> None:
    n = 600
    data = _inline_repo(tmp_path / "r", n)
    default_cache.clear()  # as in a new process
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(tmp_path / "r")))
    session = repo.readonly_session("main")
    arr = zarr.open_array(session.store, path="a", mode="r")
    (manifest_file,) = (tmp_path / "r" / "manifests").iterdir()
    manifest_id = decode_id(manifest_file.name, 12)
    assert arr[n // 2 + 7] == data[n // 2 + 7]
    assert default_cache.get("manifest", manifest_id) is None
    view = default_cache.get("manifestview", manifest_id)
    assert isinstance(view, ManifestView) and view.lookups == 1
    # the next lookups are served by the view, then the manifest is decoded once
    for i in range(LAZY_MANIFEST_LOOKUPS - 1):
        assert arr[3 * i] == data[3 * i]
    assert default_cache.get("manifest", manifest_id) is None
    assert arr[n - 1] == data[n - 1]
    assert default_cache.get("manifest", manifest_id) is not None
    np.testing.assert_array_equal(arr[...], data)


def test_missing_chunks_and_a_missing_manifest_through_the_lazy_path(tmp_path: Path) -> None:
    root = tmp_path / "r"
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(root)))
    session = repo.writable_session("main")
    arr = zarr.create_array(
        session.store, name="a", shape=(8,), chunks=(1,), dtype="u1", fill_value=9
    )
    arr[2:4] = 5
    session.commit("two chunks")
    default_cache.clear()
    ro = icechunk.Repository.open(icechunk.local_filesystem_storage(str(root))).readonly_session(
        "main"
    )
    assert not sync(ro.chunk_exists("/a", (0,)))
    assert sync(ro.chunk_exists("/a", (3,)))
    np.testing.assert_array_equal(
        zarr.open_array(ro.store, path="a", mode="r")[...], [9, 9, 5, 5, 9, 9, 9, 9]
    )
    default_cache.clear()
    (manifest,) = (root / "manifests").iterdir()
    manifest.unlink()
    ro = icechunk.Repository.open(icechunk.local_filesystem_storage(str(root))).readonly_session(
        "main"
    )
    with pytest.raises(FormatError, match="is missing"):
        sync(ro.get_chunk("/a", (2,)))
