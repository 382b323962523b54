"""The commit family runs on the calling thread's own event loop (``icechunk._sync.sync_here``).

A synchronous ``commit``/``amend``/``flush`` must not hop to zarr's I/O thread and back, nor to
a worker thread for the ``repo`` write, yet behave exactly as before: inside a running loop it
falls back to the shared loop, threads commit independently, a thread's loop is closed when the
thread ends, and a forked child gets loops of its own.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

import icechunk as ic
from icechunk import _sync
from icechunk.storage import LocalFileSystemStorage


def _repo(path: Path) -> ic.Repository:
    repo = ic.Repository.create(ic.local_filesystem_storage(str(path)))
    s = repo.writable_session("main")
    zarr.create_array(s.store, name="a", shape=(8,), chunks=(2,), dtype="i4", fill_value=0)
    s.commit("array")
    return repo


def _write(repo: ic.Repository, branch: str, value: int) -> ic.Session:
    s = repo.writable_session(branch)
    zarr.open_array(s.store, path="a", mode="r+")[:] = np.full(8, value, dtype="i4")
    return s


@pytest.fixture
def repo_writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """``(key, thread id)`` of every local-storage write of the ``repo`` object."""
    seen: list[tuple[str, int]] = []
    original = LocalFileSystemStorage._write

    def recording(self: LocalFileSystemStorage, key: str, data: Any, mode: Any) -> Any:
        if key == "repo":
            seen.append((key, threading.get_ident()))
        return original(self, key, data, mode)

    monkeypatch.setattr(LocalFileSystemStorage, "_write", recording)
    return seen


def test_sync_commit_writes_the_ref_on_the_calling_thread(
    tmp_path: Path, repo_writes: list[tuple[str, int]]
) -> None:
    repo = _repo(tmp_path / "r")
    repo_writes.clear()
    s = _write(repo, "main", 7)
    sid = s.commit("seven")
    assert repo_writes == [("repo", threading.get_ident())]
    assert repo.lookup_branch("main") == sid
    read = repo.readonly_session("main").store
    assert zarr.open_array(read, path="a", mode="r")[:].tolist() == [7] * 8


def test_sync_commit_inside_a_running_loop_uses_the_shared_loop(
    tmp_path: Path, repo_writes: list[tuple[str, int]]
) -> None:
    repo = _repo(tmp_path / "r")
    s = _write(repo, "main", 3)
    repo_writes.clear()

    async def main() -> str:
        assert not _sync.may_block()
        return s.commit("from a coroutine")  # a sync call inside a running loop

    sid = asyncio.run(main())
    assert repo.lookup_branch("main") == sid
    # not on the caller's (busy) loop thread: the shared loop's worker wrote it
    assert len(repo_writes) == 1 and repo_writes[0][1] != threading.get_ident()


def test_may_block_only_inside_sync_here() -> None:
    async def probe() -> bool:
        return _sync.may_block()

    assert not _sync.may_block()
    assert _sync.sync_here(probe()) is True
    assert _sync.sync(probe()) is False
    assert not _sync.may_block()  # nothing leaks into the caller's context


def test_sync_here_sees_the_callers_context_and_raises_its_errors() -> None:
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("caller")

    async def read() -> str:
        return var.get()

    async def fail() -> None:
        raise KeyError("inside")

    assert _sync.sync_here(read()) == "caller"
    with pytest.raises(KeyError, match="inside"):
        _sync.sync_here(fail())
    assert _sync.sync_here(read()) == "caller"  # the loop survives an error


def test_threads_commit_to_their_own_branches_concurrently(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "r")
    tip = repo.lookup_branch("main")
    names = [f"b{i}" for i in range(4)]
    for name in names:
        repo.create_branch(name, tip)
    sessions = {name: _write(repo, name, i) for i, name in enumerate(names)}
    start = threading.Barrier(len(names))
    results: dict[str, str] = {}
    errors: list[BaseException] = []

    def commit(name: str) -> None:
        try:
            start.wait()
            results[name] = sessions[name].commit(f"on {name}")
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=commit, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for i, name in enumerate(names):
        assert repo.lookup_branch(name) == results[name]
        read = repo.readonly_session(name).store
        assert zarr.open_array(read, path="a", mode="r")[:].tolist() == [i] * 8


def test_a_threads_loop_is_closed_when_the_thread_ends(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "r")
    s = _write(repo, "main", 5)
    loops: list[asyncio.AbstractEventLoop] = []

    async def running_loop() -> None:
        loops.append(asyncio.get_running_loop())

    def work() -> None:
        _sync.sync_here(running_loop())
        s.commit("from a thread")

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unclosed loop would warn (ResourceWarning)
        t = threading.Thread(target=work)
        t.start()
        t.join()
        gc.collect()
    assert len(loops) == 1 and loops[0].is_closed()
    assert zarr.open_array(repo.readonly_session("main").store, path="a")[:].tolist() == [5] * 8


def test_a_forked_child_commits_on_a_loop_of_its_own(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "r")
    _write(repo, "main", 1).commit("parent, before the fork")  # the parent's loop exists now
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() of a threaded process
        pid = os.fork()
    if pid == 0:  # the child: commit, report through the exit status only
        code = 1
        try:
            child = ic.Repository.open(ic.local_filesystem_storage(str(tmp_path / "r")))
            _write(child, "main", 2).commit("child")
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert next(iter(repo.ancestry(branch="main"))).message == "child"
    # the parent's own loop still works after the child used (and dropped) its copy
    sid = _write(repo, "main", 3).commit("parent, after the fork")
    assert repo.lookup_branch("main") == sid
    assert zarr.open_array(repo.readonly_session("main").store, path="a")[:].tolist() == [3] * 8
