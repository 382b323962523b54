"""The copy of the ``repo`` object a process keeps between updates (spec 2).

:meth:`RefStoreV2.update <icechunk._core.refs.v2.RefStoreV2.update>` starts from the bytes and
version it last read or wrote, instead of reading the object again. A copy made stale by
another writer (another process, or another ``Repository`` in this one) must never lose that
writer's change or refuse an operation the fresh object allows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

import icechunk
from icechunk.errors import ConflictError
from icechunk.storage import LocalFileSystemStorage


def _open_two(root: Path) -> tuple[icechunk.Repository, icechunk.Repository]:
    storage = icechunk.local_filesystem_storage(str(root))
    first = icechunk.Repository.create(storage)
    session = first.writable_session("main")
    zarr.create_array(session.store, name="a", shape=(4,), chunks=(1,), dtype="i4")
    session.commit("array")
    return first, icechunk.Repository.open(icechunk.local_filesystem_storage(str(root)))


def _write(repo: icechunk.Repository, branch: str, value: int) -> str:
    session = repo.writable_session(branch)
    zarr.open_array(session.store, path="a", mode="r+")[:] = value
    return session.commit(f"write {value}")


def test_a_commit_does_not_read_the_repo_object_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, _ = _open_two(tmp_path / "repo")
    _write(repo, "main", 1)
    reads: list[str] = []
    real = LocalFileSystemStorage.get_with_version

    async def counting(self: LocalFileSystemStorage, key: str):  # type: ignore[no-untyped-def]
        reads.append(key)
        return await real(self, key)

    session = repo.writable_session("main")  # reads the object: that copy serves the commit
    zarr.open_array(session.store, path="a", mode="r+")[:] = 2
    monkeypatch.setattr(LocalFileSystemStorage, "get_with_version", counting)
    session.commit("write 2")
    assert reads == []
    assert zarr.open_array(repo.readonly_session("main").store, path="a")[0] == 2


def test_a_stale_copy_keeps_the_other_writers_change(tmp_path: Path) -> None:
    first, second = _open_two(tmp_path / "repo")
    base = first.lookup_branch("main")
    second.create_branch("dev", base)  # second's copy: main and dev
    first.create_tag("t1", base)  # second's copy is stale now
    _write(second, "dev", 7)  # starts from the stale copy, must re-read and keep t1
    fresh = icechunk.Repository.open(icechunk.local_filesystem_storage(str(tmp_path / "repo")))
    assert fresh.list_tags() == {"t1"}
    assert fresh.list_branches() == {"main", "dev"}
    assert zarr.open_array(fresh.readonly_session("dev").store, path="a")[:].tolist() == [7] * 4


def test_a_stale_copy_never_refuses_what_the_object_allows(tmp_path: Path) -> None:
    first, second = _open_two(tmp_path / "repo")
    second.create_tag("mine", second.lookup_branch("main"))  # second keeps a copy
    first.create_branch("dev", first.lookup_branch("main"))  # unknown to second's copy
    second.delete_branch("dev")  # the copy says "no such branch"; the object has it
    assert "dev" not in first.list_branches()
    snapshot = _write(first, "main", 3)
    second.reset_branch("main", snapshot)  # the copy's main is older: no conflict, just moved
    assert second.lookup_branch("main") == snapshot


def test_a_stale_copy_still_reports_a_real_conflict(tmp_path: Path) -> None:
    first, second = _open_two(tmp_path / "repo")
    _write(second, "main", 1)  # second's copy is current
    session = second.writable_session("main")
    zarr.open_array(session.store, path="a", mode="r+")[:] = np.int32(5)
    winner = _write(first, "main", 2)  # main moves under second's session
    with pytest.raises(ConflictError):
        session.commit("loses")
    assert second.lookup_branch("main") == winner


def test_trying_the_copy_does_not_use_up_an_attempt(tmp_path: Path) -> None:
    first, second = _open_two(tmp_path / "repo")
    base = second.lookup_branch("main")  # second keeps a copy
    first.create_tag("t1", base)  # ... now stale
    second._objects.refs.max_attempts = 1  # type: ignore[attr-defined]
    second.create_branch("dev", base)  # the stale copy fails its put; the one real attempt wins
    assert first.list_branches() == {"main", "dev"}
    assert first.list_tags() == {"t1"}
