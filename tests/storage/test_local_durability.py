"""Local storage durability: what reaches the disk before a ref moves, and torn chunk writes.

Power loss cannot be produced in a test, so it is simulated from the record of every
durability-relevant system call local storage makes, in every process and thread (the writers'
background write-back included; :mod:`tests.storage._durability_log`): for each ref or
``repo`` object moved into place, the power-loss model says which objects a power failure at
that instant would keep, and every object the ref can reach must be among them. Chunks
written by other processes (Dask workers, a writer killed right after returning its fork) are
covered. Torn writes are produced for real: a child process killed in the middle of writing a
chunk.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import pytest
import zarr

import icechunk
from icechunk.errors import StorageError
from icechunk.storage import LocalFileSystemStorage, WriteMode, _writeback
from icechunk.storage import local as local_module
from icechunk.storage._local_keys import TMP_DIR, is_immutable_key
from tests.storage import _durability_log
from tests.storage._durability_log import PowerLossModel

SPAWN = multiprocessing.get_context("spawn")
CHUNK = 256  # float32 values per chunk: 1 KiB, above the inline threshold
MODES = ["syncfs", "fdatasync", "commit"]


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[str]:
    """Record this process's calls (all threads) into a log; yields the log's path."""
    log = str(tmp_path / "calls.log")
    uninstall = _durability_log.install(log, str(tmp_path / "repo"))
    try:
        yield log
    finally:
        uninstall()


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each background write-back mode in turn (see :mod:`icechunk.storage._writeback`)."""
    monkeypatch.setattr(_writeback, "MODE", request.param)
    return str(request.param)


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


def _check_every_ref_move(model: PowerLossModel, expect_refs: set[str]) -> None:
    """Every object moved into place before a ref move survives a power loss at that move."""
    moves = list(model.moves())
    ref_moves = [m for m in moves if not is_immutable_key(m.dest)]
    assert {m.dest for m in ref_moves} >= expect_refs
    for ref in ref_moves:
        before = [m for m in moves if is_immutable_key(m.dest) and m.end < ref.start]
        lost = [m.dest for m in before if not model.object_durable(m, ref.start)]
        assert not lost, f"a power loss as {ref.dest} moved would lose {lost}"
        # the ref's own bytes are flushed before the move, its directory after it
        assert any(f.end < ref.start for f in model.flushes.get(ref.path, [])), ref.dest
        parent = ref.dest.rpartition("/")[0] or "."
        assert any(f.start > ref.end for f in model.flushes.get(parent, [])), ref.dest


@pytest.mark.parametrize("spec_version", [1, 2])
def test_a_power_loss_at_any_ref_move_keeps_every_object_before_it(
    tmp_path: Path, recorded: str, mode: str, spec_version: int
) -> None:
    _commit_some_chunks(tmp_path / "repo", spec_version)
    model = PowerLossModel(_durability_log.read(recorded))
    refs = {"repo"} if spec_version == 2 else {"refs/branch.main/ref.json", "refs/tag.v1/ref.json"}
    _check_every_ref_move(model, refs)
    immutable = [m for m in model.moves() if is_immutable_key(m.dest)]
    assert len(immutable) >= 9 + 2 * 2  # chunks, then a manifest and a snapshot each
    # immutable objects are never flushed on the write path (under their temporary names)
    for m in immutable:
        assert m.path not in model.flushes, m.dest
    if mode == "commit":
        assert model.syncfs, "the commit-time design syncs the filesystem"


async def test_without_syncfs_the_objects_and_their_directories_are_flushed_one_by_one(
    tmp_path: Path, recorded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_module, "_syncfs", None)
    storage = LocalFileSystemStorage(tmp_path / "repo")
    for name in ("chunks/A", "chunks/B", "manifests/M"):
        await storage.put(name, b"data " + name.encode())
    await storage.put("repo", b"points at A, B and M", WriteMode.CREATE)
    model = PowerLossModel(_durability_log.read(recorded))
    assert not model.syncfs
    _check_every_ref_move(model, {"repo"})
    for needed in ("chunks/A", "chunks/B", "manifests/M", "chunks", "manifests", "."):
        assert needed in model.flushes, needed
    # the next barrier has nothing left to flush
    assert storage._writeback.outstanding == 0


def _async_put_count(storage: LocalFileSystemStorage) -> int:
    return storage._writeback.outstanding


async def test_a_failed_barrier_writes_no_ref(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    storage = LocalFileSystemStorage(tmp_path / "repo")
    await storage.put("repo", b"old", WriteMode.CREATE)
    real_fdatasync = os.fdatasync

    def failing_syncfs(fd: int) -> int:
        ctypes.set_errno(errno.EIO)
        return -1

    def failing_fdatasync(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    with monkeypatch.context() as patch:
        patch.setattr(local_module, "_syncfs", failing_syncfs)
        patch.setattr(os, "fdatasync", failing_fdatasync)
        await storage.put("chunks/A", b"chunk")
        with pytest.raises(StorageError, match="Input/output error"):
            await storage.put("repo", b"new")
    assert await storage.get("repo") == b"old"
    assert list((tmp_path / "repo" / TMP_DIR).iterdir()) == []
    # the object stays queued: once the disk works again the next ref write flushes it
    assert os.fdatasync is real_fdatasync
    await storage.put("repo", b"new")
    assert await storage.get("repo") == b"new"
    assert storage._writeback.outstanding == 0


async def test_a_failed_background_write_back_fails_the_next_barrier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_writeback, "MODE", "syncfs")
    storage = LocalFileSystemStorage(tmp_path / "repo")
    await storage.put("repo", b"old", WriteMode.CREATE)
    failed = threading.Event()
    real_syncfs = local_module._syncfs
    assert real_syncfs is not None

    def failing_syncfs(fd: int) -> int:
        if threading.current_thread().name != "icechunk-local-writeback":
            return real_syncfs(fd)
        ctypes.set_errno(errno.EIO)
        failed.set()
        return -1

    monkeypatch.setattr(local_module, "_syncfs", failing_syncfs)
    await storage.put("chunks/A", b"chunk")
    assert failed.wait(60), "the background write-back never ran"
    with pytest.raises(StorageError, match="Input/output error"):
        await storage.put("repo", b"new")
    assert await storage.get("repo") == b"old"
    # the error was reported once; the object was queued again and the next barrier flushed it
    monkeypatch.setattr(local_module, "_syncfs", real_syncfs)
    await storage.put("repo", b"new")
    assert await storage.get("repo") == b"new"
    assert storage._writeback.outstanding == 0


async def test_a_commits_own_objects_are_flushed_at_once_chunks_wait_for_their_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorded: str
) -> None:
    monkeypatch.setattr(_writeback, "MODE", "fdatasync")
    monkeypatch.setattr(_writeback, "BATCH_DELAY", 3600.0)  # no background batch in this test
    storage = LocalFileSystemStorage(tmp_path / "repo")
    await storage.put("chunks/C", b"chunk")
    for key in ("manifests/M", "transactions/T", "snapshots/S", "overwritten/O"):
        await storage.put(key, b"commit object " + key.encode(), WriteMode.CREATE)
    wb = storage._writeback
    deadline = time.monotonic() + 60
    while wb.outstanding > 1 and time.monotonic() < deadline:
        with wb._cond:
            wb._cond.wait(0.05)
    # the four commit objects (and their directories) are durable without any barrier; the
    # chunk waits for its batch (here: for the barrier, the batch never comes)
    assert wb.outstanding == 1
    model = PowerLossModel(_durability_log.read(recorded))
    for needed in ("manifests/M", "transactions/T", "snapshots/S", "overwritten/O"):
        assert needed in model.flushes, needed
        assert needed.split("/")[0] in model.flushes, needed
    assert "chunks/C" not in model.flushes
    await storage.put("repo", b"names C, M, T, S and O", WriteMode.CREATE)
    model = PowerLossModel(_durability_log.read(recorded))
    _check_every_ref_move(model, {"repo"})
    assert wb.outstanding == 0


@pytest.mark.parametrize("signal", ["commit object", "pickled"])
async def test_a_near_barrier_starts_the_pending_chunk_batch_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorded: str, signal: str
) -> None:
    """In syncfs mode, a commit writing its first object, or the storage being pickled (a fork
    on its way to a committer), starts the chunks' batch instead of waiting out its delay."""
    assert local_module._syncfs is not None, "Linux has syncfs(2)"
    monkeypatch.setattr(_writeback, "MODE", "syncfs")
    monkeypatch.setattr(_writeback, "BATCH_DELAY", 3600.0)
    storage = LocalFileSystemStorage(tmp_path / "repo")
    for name in ("chunks/A", "chunks/B"):
        await storage.put(name, b"chunk " + name.encode())
    wb = storage._writeback
    assert wb.outstanding == 2  # waiting for a batch that, here, would never come by itself
    if signal == "commit object":
        await storage.put("transactions/T", b"log", WriteMode.OVERWRITE)
    else:
        pickle.dumps(storage)
    deadline = time.monotonic() + 60
    while wb.outstanding and time.monotonic() < deadline:
        with wb._cond:
            wb._cond.wait(0.05)
    assert wb.outstanding == 0
    model = PowerLossModel(_durability_log.read(recorded))
    assert model.syncfs, "the chunks' batch ran"


async def test_a_failed_eager_flush_fails_the_next_barrier_and_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_writeback, "MODE", "fdatasync")
    storage = LocalFileSystemStorage(tmp_path / "repo")
    await storage.put("repo", b"old", WriteMode.CREATE)
    real_fdatasync_path = _writeback._fdatasync_path
    failed = threading.Event()

    def failing(path: str) -> None:
        if path.endswith(os.path.join("snapshots", "S")):
            failed.set()
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fdatasync_path(path)

    monkeypatch.setattr(_writeback, "_fdatasync_path", failing)
    await storage.put("snapshots/S", b"snapshot", WriteMode.CREATE)
    assert failed.wait(60), "the eager flush never ran"
    with pytest.raises(StorageError, match="Input/output error"):
        await storage.put("repo", b"new")
    assert await storage.get("repo") == b"old"
    # the snapshot was queued again: once the disk works the next ref write flushes it
    monkeypatch.setattr(_writeback, "_fdatasync_path", real_fdatasync_path)
    await storage.put("repo", b"new")
    assert await storage.get("repo") == b"new"
    assert storage._writeback.outstanding == 0


# -- chunks written by other processes -------------------------------------------------------


def _write_in_child(
    root: str, log: str, fork_bytes: bytes, conn: Connection, child_mode: str
) -> None:
    """A writer process: records its calls, writes through the fork it was sent, sends the
    pickled fork back and is killed at once (nothing of it runs after the send)."""
    _writeback.MODE = child_mode
    _durability_log.install(log, root)
    fork = pickle.loads(fork_bytes)
    arr = zarr.open_array(fork.store, path="a", mode="r+")
    arr[:] = np.arange(8 * CHUNK, dtype="f4") + 100
    conn.send_bytes(pickle.dumps(fork))
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.parametrize("child_mode", ["commit", "syncfs"])
def test_chunks_of_a_writer_killed_after_returning_its_fork_are_flushed_by_the_commit(
    tmp_path: Path, recorded: str, mode: str, child_mode: str
) -> None:
    root = tmp_path / "repo"
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(root)))
    session = repo.writable_session("main")
    zarr.create_array(
        session.store, name="a", shape=(8 * CHUNK,), chunks=(CHUNK,), dtype="f4", compressors=None
    )
    session.commit("array")
    session = repo.writable_session("main")
    receiver, sender = SPAWN.Pipe(duplex=False)
    child = SPAWN.Process(
        target=_write_in_child,
        args=(str(root), recorded, pickle.dumps(session.fork()), sender, child_mode),
    )
    child.start()
    sender.close()
    assert receiver.poll(120), "the writer sent nothing"
    returned = receiver.recv_bytes()
    received_at = time.monotonic_ns()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    written = {m.dest for m in PowerLossModel(_durability_log.read(recorded)).moves()}
    if child_mode == "commit":
        # the writer flushed nothing itself: without the commit, a power loss loses them
        model = PowerLossModel(_durability_log.read(recorded))
        child_moves = [m for m in model.moves() if m.pid == child.pid]
        assert len(child_moves) == 8
        assert not any(model.object_durable(m, received_at) for m in child_moves)
    session.merge(pickle.loads(returned))
    session.commit("written by the child")
    model = PowerLossModel(_durability_log.read(recorded))
    child_chunks = [m for m in model.moves() if m.pid == child.pid]
    assert {m.dest for m in child_chunks} <= written and len(child_chunks) == 8
    (ref,) = [m for m in model.moves() if m.dest == "repo" and m.start > received_at]
    lost = [m.dest for m in child_chunks if not model.object_durable(m, ref.start)]
    assert not lost, f"a power loss as the commit moved the branch would lose {lost}"
    _check_every_ref_move(model, {"repo"})
    got = zarr.open_array(repo.readonly_session("main").store, path="a", mode="r")[:]
    np.testing.assert_array_equal(got, np.arange(8 * CHUNK, dtype="f4") + 100)


def _install_on_worker(log: str, root: str) -> None:
    _durability_log.install(log, root)


def test_store_dask_chunks_written_on_worker_processes_are_durable_before_the_commit(
    tmp_path: Path, recorded: str
) -> None:
    da = pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")
    import icechunk.dask

    root = tmp_path / "repo"
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(root)))
    session = repo.writable_session("main")
    zarr.create_array(
        session.store, name="a", shape=(128, 128), chunks=(16, 16), dtype="f4", compressors=None
    )  # 64 chunks of 1 KiB: native chunk files, not inline
    session.commit("array")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.run(_install_on_worker, recorded, str(root))
        workers = set(client.run(os.getpid).values())
        session = repo.writable_session("main")
        fork = session.fork()
        target = zarr.open_array(fork.store, path="a", mode="r+")
        src = da.arange(128 * 128, dtype="f4").reshape(128, 128).rechunk((32, 32))
        session.merge(icechunk.dask.store_dask(sources=[src], targets=[target]))
        session.commit("from the workers")
    model = PowerLossModel(_durability_log.read(recorded))
    worker_chunks = [m for m in model.moves() if m.pid in workers and m.dest.startswith("chunks/")]
    assert len(worker_chunks) == 64
    (ref,) = [m for m in model.moves() if m.dest == "repo" and m.pid == os.getpid()][-1:]
    lost = [m.dest for m in worker_chunks if not model.object_durable(m, ref.start)]
    assert not lost, f"a power loss as the commit moved the branch would lose {lost}"
    got = zarr.open_array(repo.readonly_session("main").store, path="a", mode="r")[:]
    np.testing.assert_array_equal(got, np.arange(128 * 128, dtype="f4").reshape(128, 128))


# -- the unsafe setting ----------------------------------------------------------------------


@pytest.mark.parametrize("spec_version", [1, 2])
def test_unsafe_use_fsync_false_never_flushes_and_still_commits(
    tmp_path: Path, recorded: str, spec_version: int
) -> None:
    config = icechunk.RepositoryConfig(storage=icechunk.StorageSettings(unsafe_use_fsync=False))
    repo = icechunk.Repository.create(
        icechunk.local_filesystem_storage(str(tmp_path / "repo")),
        config=config,
        spec_version=spec_version,
    )
    assert isinstance(repo.storage, LocalFileSystemStorage) and not repo.storage.durable
    session = repo.writable_session("main")
    arr = zarr.create_array(
        session.store, name="a", shape=(8 * CHUNK,), chunks=(CHUNK,), dtype="f4", compressors=None
    )
    arr[:] = 1.0
    fork = pickle.loads(pickle.dumps(session.fork()))  # the setting travels with forks
    assert not fork._repo.storage.durable
    zarr.open_array(fork.store, path="a", mode="r+")[:CHUNK] = 2.0
    session.merge(fork)
    session.commit("no sync")
    repo.create_tag("t", repo.lookup_branch("main"))
    model = PowerLossModel(_durability_log.read(recorded))
    assert not model.syncfs and not model.flushes
    assert repo.storage._writeback.outstanding == 0  # nothing even tracked
    # a handle opened without the setting is durable again (the default)
    reopened = icechunk.Repository.open(icechunk.local_filesystem_storage(str(tmp_path / "repo")))
    assert isinstance(reopened.storage, LocalFileSystemStorage) and reopened.storage.durable
    got = zarr.open_array(reopened.readonly_session(tag="t").store, path="a", mode="r")[:]
    assert float(got[0]) == 2.0 and float(got[-1]) == 1.0


def test_storage_settings_reject_a_non_boolean_unsafe_use_fsync() -> None:
    with pytest.raises(
        icechunk.IcechunkError, match="unsafe_use_fsync must be True, False or None"
    ):
        icechunk.StorageSettings(unsafe_use_fsync="no")  # type: ignore[arg-type]


# -- torn chunk writes ---------------------------------------------------------------------


def _die_halfway(fd: int, data: bytes) -> None:
    """Stands in for local storage's ``write_all``: half the bytes, then a real SIGKILL."""
    os.write(fd, data[: len(data) // 2])
    os.kill(os.getpid(), signal.SIGKILL)


def _write_and_die(root: str, write_all: Callable[[int, bytes], None]) -> None:
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(root))
    session = repo.writable_session("main")
    arr = zarr.open_array(session.store, path="a", mode="r+")
    local_module.write_all = write_all  # type: ignore[assignment]
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
        patch.setattr(local_module, "write_all", disk_full)
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
