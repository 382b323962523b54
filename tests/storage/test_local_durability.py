"""Local storage durability: what reaches the disk before a ref moves, and torn chunk writes.

Power loss cannot be produced in a test, so the ordering is proven by recording the system
calls local storage makes (``syncfs``, ``fsync``, ``rename``/``link``) around a real commit: no
ref or ``repo`` object may be moved into place before a barrier that follows the last immutable
object written, and the ref itself must be flushed before and its directory after the move.
Torn writes are produced for real: a child process killed in the middle of writing a chunk.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import zarr

import icechunk
from icechunk.errors import StorageError
from icechunk.storage import LocalFileSystemStorage, WriteMode
from icechunk.storage import local as local_module
from icechunk.storage.local import TMP_DIR, is_immutable_key

SPAWN = multiprocessing.get_context("spawn")
CHUNK = 256  # float32 values per chunk: 1 KiB, above the inline threshold


class SyscallLog:
    """Records the durability-relevant system calls of local storage, in order."""

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self.events: list[tuple[str, str]] = []

    def key(self, path: str) -> str:
        rel = os.path.relpath(path, self.root)
        return "." if rel == "." else rel.replace(os.sep, "/")

    def moves(self) -> Iterator[tuple[int, str, str]]:
        """``(position, source, destination key)`` of every rename or link into place."""
        for i, (what, arg) in enumerate(self.events):
            if what in ("replace", "link"):
                src, dst = arg.split(" -> ")
                yield i, src, dst


@pytest.fixture
def syscalls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SyscallLog:
    log = SyscallLog(tmp_path / "repo")
    real_fsync, real_replace, real_link = os.fsync, os.replace, os.link
    real_syncfs = local_module._syncfs
    assert real_syncfs is not None, "these tests need Linux's syncfs(2)"

    def fsync(fd: int) -> None:
        log.events.append(("fsync", log.key(os.readlink(f"/proc/self/fd/{fd}"))))
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        real_replace(src, dst)
        log.events.append(("replace", f"{log.key(src)} -> {log.key(dst)}"))

    def link(src: str, dst: str) -> None:
        real_link(src, dst)
        log.events.append(("link", f"{log.key(src)} -> {log.key(dst)}"))

    def syncfs(fd: int) -> int:
        log.events.append(("syncfs", log.key(os.readlink(f"/proc/self/fd/{fd}"))))
        return real_syncfs(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "link", link)
    monkeypatch.setattr(local_module, "_syncfs", syncfs)
    return log


def _commit_some_chunks(root: Path, spec_version: int) -> icechunk.Repository:
    repo = icechunk.Repository.create(
        icechunk.local_filesystem_storage(str(root)), spec_version=spec_version
    )
    session = repo.writable_session("main")
    arr = zarr.create_array(
        session.store, name="a", shape=(8 * CHUNK,), chunks=(CHUNK,), dtype="f4", compressors=None
    )
    arr[:] = np.arange(8 * CHUNK, dtype="f4")
    session.commit("chunks")
    session = repo.writable_session("main")
    zarr.open_array(session.store, path="a", mode="r+")[:CHUNK] = -1.0
    session.commit("more chunks")
    repo.create_tag("v1", repo.lookup_branch("main"))
    return repo


@pytest.mark.parametrize("spec_version", [1, 2])
def test_every_ref_write_follows_a_barrier_after_the_objects_it_may_name(
    tmp_path: Path, syscalls: SyscallLog, spec_version: int
) -> None:
    _commit_some_chunks(tmp_path / "repo", spec_version)
    events = syscalls.events
    ref_moves = [(i, src, dst) for i, src, dst in syscalls.moves() if not is_immutable_key(dst)]
    assert {dst for _, _, dst in ref_moves} >= (
        {"repo"} if spec_version == 2 else {"refs/branch.main/ref.json", "refs/tag.v1/ref.json"}
    )
    immutable_moves = [i for i, _, dst in syscalls.moves() if is_immutable_key(dst)]
    assert len(immutable_moves) >= 9 + 2 * 2  # chunks, then a manifest and a snapshot each
    for i, src, dst in ref_moves:
        last_object = max((j for j in immutable_moves if j < i), default=-1)
        barriers = [j for j in range(last_object + 1, i) if events[j] == ("syncfs", ".")]
        assert barriers, f"{dst} was moved into place without a barrier after the objects"
        # the ref's own bytes are flushed before the move, its directory after it
        assert ("fsync", src) in events[barriers[-1] : i], dst
        parent = dst.rpartition("/")[0] or "."
        assert ("fsync", parent) in events[i + 1 :], dst
    # immutable objects are not flushed one by one: the barrier covers them
    flushed = {arg for what, arg in events if what == "fsync"}
    for i in immutable_moves:
        src = events[i][1].split(" -> ")[0]
        assert src not in flushed


async def test_without_syncfs_the_barrier_fsyncs_the_written_objects(
    tmp_path: Path, syscalls: SyscallLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_module, "_syncfs", None)
    synced: list[int] = []
    monkeypatch.setattr(os, "sync", lambda: synced.append(len(syscalls.events)))
    storage = LocalFileSystemStorage(tmp_path / "repo")
    for name in ("chunks/A", "chunks/B", "manifests/M"):
        await storage.put(name, b"data " + name.encode())
    await storage.put("repo", b"points at A, B and M", WriteMode.CREATE)
    events = syscalls.events
    (ref_at,) = [i for i, _, dst in syscalls.moves() if dst == "repo"]
    before = events[:ref_at]
    for needed in ("chunks/A", "chunks/B", "manifests/M", "chunks", "manifests", "."):
        assert ("fsync", needed) in before, needed
    assert synced and synced[0] < ref_at  # sync(2) covers the other processes' objects
    # the next barrier has nothing left of this process to flush
    syscalls.events.clear()
    await storage.put("refs/branch.x/ref.json", b"{}")
    assert ("fsync", "chunks/A") not in syscalls.events


async def test_a_failed_barrier_writes_no_ref(
    tmp_path: Path, syscalls: SyscallLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = LocalFileSystemStorage(tmp_path / "repo")
    await storage.put("repo", b"old", WriteMode.CREATE)
    await storage.put("chunks/A", b"chunk")

    def failing_syncfs(fd: int) -> int:
        ctypes.set_errno(errno.EIO)
        return -1

    monkeypatch.setattr(local_module, "_syncfs", failing_syncfs)
    with pytest.raises(StorageError, match="Input/output error"):
        await storage.put("repo", b"new")
    assert await storage.get("repo") == b"old"
    assert list((tmp_path / "repo" / TMP_DIR).iterdir()) == []


# -- torn chunk writes ---------------------------------------------------------------------


def _die_halfway(fd: int, data: bytes) -> None:
    """Stands in for local storage's ``_write_all``: half the bytes, then a real SIGKILL."""
    os.write(fd, data[: len(data) // 2])
    os.kill(os.getpid(), signal.SIGKILL)


def _write_and_die(root: str, write_all: Callable[[int, bytes], None]) -> None:
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(root))
    session = repo.writable_session("main")
    arr = zarr.open_array(session.store, path="a", mode="r+")
    local_module._write_all = write_all  # type: ignore[assignment]
    arr[CHUNK : 2 * CHUNK] = 7.0  # killed in the middle of writing this chunk
    session.commit("never happens")


def test_a_process_killed_mid_chunk_write_leaves_no_readable_wrong_chunk(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    repo = _commit_some_chunks(root, 2)
    before = repo.lookup_branch("main")
    chunks_before = {p.name for p in (root / "chunks").iterdir()}
    child = SPAWN.Process(target=_write_and_die, args=(str(root), _die_halfway))
    child.start()
    child.join(timeout=300)
    assert child.exitcode == -signal.SIGKILL
    # the torn bytes sit in a temporary file; no object under chunks/ is partial
    assert [p.stat().st_size for p in (root / TMP_DIR).iterdir()] == [4 * CHUNK // 2]
    assert {p.name for p in (root / "chunks").iterdir()} == chunks_before
    assert all(p.stat().st_size == 4 * CHUNK for p in (root / "chunks").iterdir())
    reopened = icechunk.Repository.open(icechunk.local_filesystem_storage(str(root)))
    assert reopened.lookup_branch("main") == before
    arr = zarr.open_array(reopened.readonly_session("main").store, path="a", mode="r")
    expected = np.arange(8 * CHUNK, dtype="f4")
    expected[:CHUNK] = -1.0
    np.testing.assert_array_equal(arr[:], expected)


async def test_a_failed_chunk_write_is_neither_stored_nor_staged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "repo"
    repo = _commit_some_chunks(root, 2)
    session = repo.writable_session("main")
    arr = zarr.open_array(session.store, path="a", mode="r+")

    def disk_full(fd: int, data: bytes) -> None:
        os.write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    chunks_before = {p.name for p in (root / "chunks").iterdir()}
    with monkeypatch.context() as patch:
        patch.setattr(local_module, "_write_all", disk_full)
        with pytest.raises(StorageError, match="No space left on device"):
            await asyncio.to_thread(arr.__setitem__, slice(CHUNK, 2 * CHUNK), 7.0)
    assert {p.name for p in (root / "chunks").iterdir()} == chunks_before
    assert list((root / TMP_DIR).iterdir()) == []
    assert not session.has_uncommitted_changes
    arr[2 * CHUNK : 3 * CHUNK] = 5.0
    session.commit("after the failure")
    got = np.asarray(zarr.open_array(repo.readonly_session("main").store, path="a", mode="r")[:])
    np.testing.assert_array_equal(got[CHUNK : 2 * CHUNK], np.arange(CHUNK, 2 * CHUNK))
    np.testing.assert_array_equal(got[2 * CHUNK : 3 * CHUNK], 5.0)
