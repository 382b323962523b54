"""Local filesystem storage: the conformance suite plus path safety, layout and multi-process races."""

from __future__ import annotations

import asyncio
import errno
import multiprocessing
import os
import pickle
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from icechunk.errors import (
    InvalidInputError,
    ObjectNotFoundError,
    PreconditionFailedError,
    StorageError,
)
from icechunk.storage import (
    IfMatch,
    LocalFileSystemStorage,
    Storage,
    WriteMode,
    local_filesystem_storage,
)
from icechunk.storage._local_keys import LOCK_DIR, TMP_DIR
from icechunk.testing.storage import INVALID_KEYS, StorageTests, cas_increment, listing

SPAWN = multiprocessing.get_context("spawn")
LOST = 3  # exit code of a process that lost the create-only race


class TestLocalFileSystemStorage(StorageTests[LocalFileSystemStorage]):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> LocalFileSystemStorage:
        return LocalFileSystemStorage(tmp_path / "repo")

    async def raw_get(self, storage: LocalFileSystemStorage, key: str) -> bytes | None:
        path = Path(storage.root, *key.split("/"))
        return path.read_bytes() if path.is_file() else None


def files_under(directory: Path) -> set[str]:
    """Every file below ``directory``, as ``/``-separated relative paths."""
    return {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}


# -- workers for the subprocess tests (module level, so "spawn" children can import them) ------


def _get_in_child(storage: Storage, key: str) -> bytes:
    return asyncio.run(storage.get(key))


def _put_in_child(storage: Storage, key: str, data: bytes) -> None:
    asyncio.run(storage.put(key, data))


async def _increments(storage: Storage, key: str, count: int) -> None:
    for _ in range(count):
        await cas_increment(storage, key)


def _cas_worker(storage: Storage, key: str, count: int, barrier: Barrier) -> None:
    barrier.wait(timeout=60)
    asyncio.run(_increments(storage, key, count))


def _create_worker(storage: Storage, key: str, payload: bytes, barrier: Barrier) -> None:
    barrier.wait(timeout=60)
    try:
        asyncio.run(storage.put(key, payload, WriteMode.CREATE))
    except PreconditionFailedError:
        sys.exit(LOST)


def _run_processes(processes: Sequence[BaseProcess]) -> list[int | None]:
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    codes = [process.exitcode for process in processes]
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join()
    return codes


# -- layout and path safety --------------------------------------------------------------------


async def test_keys_map_to_files(tmp_path: Path) -> None:
    storage = local_filesystem_storage(tmp_path / "repo")
    await storage.put("snapshots/ABC", b"snap")
    await storage.put("refs/branch.main/ref.json", b"{}", WriteMode.CREATE)
    assert (tmp_path / "repo" / "snapshots" / "ABC").read_bytes() == b"snap"
    assert (tmp_path / "repo" / "refs" / "branch.main" / "ref.json").read_bytes() == b"{}"


@pytest.mark.parametrize("key", [*INVALID_KEYS, "a/../../b", "../../etc/passwd"], ids=repr)
async def test_escaping_keys_write_nothing(tmp_path: Path, key: str) -> None:
    root = tmp_path / "inner" / "repo"
    root.mkdir(parents=True)
    storage = LocalFileSystemStorage(root)
    (root / "victim").write_bytes(b"safe")  # a file a "../" key could reach
    for mode in (WriteMode.OVERWRITE, WriteMode.CREATE):
        with pytest.raises(InvalidInputError):
            await storage.put(key, b"evil", mode)
    with pytest.raises(InvalidInputError):
        await storage.delete([key])
    assert files_under(tmp_path) == {"inner/repo/victim"}
    assert (root / "victim").read_bytes() == b"safe"


@pytest.mark.parametrize("key", [f"{TMP_DIR}/x", f"{LOCK_DIR}/000.lock", LOCK_DIR])
async def test_reserved_directories_are_not_keys(tmp_path: Path, key: str) -> None:
    storage = LocalFileSystemStorage(tmp_path / "repo")
    with pytest.raises(InvalidInputError, match="reserved"):
        await storage.put(key, b"x")
    with pytest.raises(InvalidInputError):
        await storage.get(key)


async def test_temp_and_lock_files_are_never_listed(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    storage = LocalFileSystemStorage(root)
    v = await storage.put("refs/branch.main/ref.json", b"1", WriteMode.CREATE)
    await storage.put("refs/branch.main/ref.json", b"2", IfMatch(v))
    await storage.put("chunks/A", b"a")
    await storage.delete(["chunks/A"])
    (root / TMP_DIR / "123-deadbeef.tmp").write_bytes(b"left over by a crash")
    assert (root / LOCK_DIR).is_dir()
    assert any((root / LOCK_DIR).iterdir())
    assert await listing(storage) == {"refs/branch.main/ref.json": 1}
    assert await listing(storage, ".icechunk") == {}
    assert await listing(storage, f"{TMP_DIR}/") == {}


async def test_no_temp_files_left_behind(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    storage = LocalFileSystemStorage(root)
    v = await storage.put("k", b"1", WriteMode.CREATE)
    with pytest.raises(PreconditionFailedError):
        await storage.put("k", b"2", WriteMode.CREATE)
    with pytest.raises(PreconditionFailedError):
        await storage.put("k", b"2", IfMatch(await storage.put("other", b"x")))
    await storage.put("k", b"3", IfMatch(v))
    await storage.put("k", b"4")
    with pytest.raises(StorageError):
        await storage.put("k/below-a-file", b"5")
    assert list((root / TMP_DIR).iterdir()) == []


async def test_root_is_created_by_the_first_write_only(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b" / "repo"
    storage = local_filesystem_storage(root)
    assert await storage.is_empty()
    assert not await storage.exists("k")
    with pytest.raises(KeyError):
        await storage.get("k")
    await storage.delete(["k"])
    assert not (tmp_path / "a").exists()
    await storage.put("k", b"v")
    assert (root / "k").read_bytes() == b"v"


async def test_a_key_below_a_file_is_a_storage_error(tmp_path: Path) -> None:
    storage = LocalFileSystemStorage(tmp_path / "repo")
    await storage.put("a", b"file")
    with pytest.raises(StorageError, match="repo"):
        await storage.put("a/b", b"x")
    with pytest.raises(StorageError, match="repo"):
        await storage.put("a/b", b"x", WriteMode.CREATE)


async def test_os_errors_become_storage_errors(tmp_path: Path) -> None:
    # (file permissions cannot produce errors here: CI runs as root) a key that is a
    # directory on disk: reading it finds no object, writing it is refused by the OS
    root = tmp_path / "repo"
    storage = LocalFileSystemStorage(root)
    await storage.put("refs/x/y", b"1")
    with pytest.raises(ObjectNotFoundError):
        await storage.get("refs/x")
    for mode in (WriteMode.OVERWRITE, WriteMode.CREATE):
        with pytest.raises(StorageError, match="refs") as info:
            await storage.put("refs/x", b"2", mode)
        assert str(root / "refs" / "x") in str(info.value)
    assert await storage.get("refs/x/y") == b"1"


async def test_failed_write_keeps_the_old_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "repo"
    storage = LocalFileSystemStorage(root)
    await storage.put("k", b"old")

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", disk_full)
        for mode in (WriteMode.OVERWRITE, WriteMode.CREATE):
            with pytest.raises(StorageError, match="No space left on device") as info:
                await storage.put("k", b"new", mode)
            assert str(root) in str(info.value)
    assert await storage.get("k") == b"old"
    assert list((root / TMP_DIR).iterdir()) == []


async def test_versions_are_content_hashes_shared_by_instances(tmp_path: Path) -> None:
    one = LocalFileSystemStorage(tmp_path / "repo")
    other = LocalFileSystemStorage(tmp_path / "repo")
    version = await one.put("k", b"same bytes")
    assert (await other.get_with_version("k"))[1] == version
    assert await one.put("j", b"same bytes") == version
    await other.put("k", b"new", IfMatch(version))
    assert await one.get("k") == b"new"


# -- pickling and processes --------------------------------------------------------------------


async def test_pickles_as_its_absolute_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    storage = LocalFileSystemStorage("relative/repo")
    assert storage.root == str(tmp_path / "relative" / "repo")
    copy = pickle.loads(pickle.dumps(storage))
    assert copy == storage
    assert copy.root == storage.root
    assert not (tmp_path / "relative").exists()


async def test_pickled_copy_works_in_another_process(tmp_path: Path) -> None:
    storage = LocalFileSystemStorage(tmp_path / "repo")
    await storage.put("from/parent", b"hello child")
    with ProcessPoolExecutor(1, mp_context=SPAWN) as pool:
        got = await asyncio.wrap_future(pool.submit(_get_in_child, storage, "from/parent"))
        await asyncio.wrap_future(pool.submit(_put_in_child, storage, "from/child", b"hi"))
    assert got == b"hello child"
    assert await storage.get("from/child") == b"hi"


async def test_compare_and_swap_across_processes_loses_no_update(tmp_path: Path) -> None:
    processes, increments = 4, 50
    storage = LocalFileSystemStorage(tmp_path / "repo")
    await storage.put("repo", b"0")
    barrier = SPAWN.Barrier(processes)
    workers = [
        SPAWN.Process(target=_cas_worker, args=(storage, "repo", increments, barrier))
        for _ in range(processes)
    ]
    codes = await asyncio.to_thread(_run_processes, workers)
    assert codes == [0] * processes
    assert await storage.get("repo") == str(processes * increments).encode()


async def test_create_only_across_processes_has_one_winner(tmp_path: Path) -> None:
    processes = 8
    storage = LocalFileSystemStorage(tmp_path / "repo")
    barrier = SPAWN.Barrier(processes)
    payloads = [f"process-{i}".encode() for i in range(processes)]
    workers = [
        SPAWN.Process(target=_create_worker, args=(storage, "refs/tag.v1/ref.json", p, barrier))
        for p in payloads
    ]
    codes = await asyncio.to_thread(_run_processes, workers)
    assert sorted(codes, key=lambda c: -1 if c is None else c) == [0] + [LOST] * (processes - 1)
    assert await storage.get("refs/tag.v1/ref.json") == payloads[codes.index(0)]


async def test_put_copy_links_the_source_when_it_holds_the_data(tmp_path: Path) -> None:
    """The ``repo`` backup of a commit is a hard link (no new file, no bytes written), and
    only while ``repo`` still holds the bytes read: a copy of other bytes is written."""
    storage = LocalFileSystemStorage(tmp_path)
    await storage.put("repo", b"state 1")
    await storage.put_copy("overwritten/repo.1", b"state 1", source="repo")
    assert os.stat(tmp_path / "overwritten" / "repo.1").st_ino == os.stat(tmp_path / "repo").st_ino
    await storage.put_copy("overwritten/repo.2", b"stale state", source="repo")
    assert os.stat(tmp_path / "overwritten" / "repo.2").st_ino != os.stat(tmp_path / "repo").st_ino
    assert (tmp_path / "overwritten" / "repo.2").read_bytes() == b"stale state"
    assert (tmp_path / "repo").read_bytes() == b"state 1"
    # the source is replaced by a rename, never rewritten: the linked backup keeps its bytes
    await storage.put("repo", b"state 2")
    assert (tmp_path / "overwritten" / "repo.1").read_bytes() == b"state 1"


async def test_lock_file_is_created_with_the_mutable_object(tmp_path: Path) -> None:
    """Creating ``repo`` creates its lock file, so a commit's compare-and-swap opens an
    existing one (creating a file is the slow part of a small commit on some filesystems)."""
    storage = LocalFileSystemStorage(tmp_path)
    await storage.put("chunks/c1", b"x", WriteMode.CREATE)
    assert not (tmp_path / LOCK_DIR).exists()
    await storage.put("repo", b"state", WriteMode.CREATE)
    (lock,) = (tmp_path / LOCK_DIR).iterdir()
    before = lock.stat().st_ino
    _, version = await storage.get_with_version("repo")
    await storage.put("repo", b"state 2", IfMatch(version))
    assert [p.stat().st_ino for p in (tmp_path / LOCK_DIR).iterdir()] == [before]
