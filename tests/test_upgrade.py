"""``upgrade_icechunk_repository``: spec 1 -> spec 2 in place, and safe against a crash anywhere.

The crash test runs the upgrade once per storage mutation it makes, killing it just before and
just after that mutation (``FaultyStorage``): every intermediate state opens (as spec 1 before
``repo`` exists, as spec 2 after) with the full history, and a second run finishes the job.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import zarr

import icechunk as ic
from icechunk.errors import SessionStateError
from icechunk.testing.faults import FaultyStorage, InjectedCrash, StorageCall


def _write_v1(path: Path) -> None:
    repo = ic.Repository.create(
        ic.local_filesystem_storage(str(path)),
        spec_version=1,
        config=ic.RepositoryConfig(inline_chunk_threshold_bytes=5),
    )
    s = repo.writable_session("main")
    zarr.create_array(s.store, name="a", shape=(4,), chunks=(2,), dtype="i4")[:] = [1, 2, 3, 4]
    c1 = s.commit("c1", metadata={"k": 1})
    repo.create_branch("dev", c1)
    repo.create_tag("t1", c1)
    repo.create_tag("gone", c1)
    repo.delete_tag("gone")
    s = repo.writable_session("dev")
    zarr.open_array(s.store, path="a")[0:2] = 9
    s.commit("d1")


def _history(repo: ic.Repository) -> dict[str, Any]:
    out: dict[str, Any] = {"branches": repo.list_branches(), "tags": repo.list_tags()}
    for ref in sorted(out["branches"]):
        out[ref] = []
        for info in repo.ancestry(branch=ref):
            session = repo.readonly_session(snapshot_id=info.id)
            try:
                data = zarr.open_array(session.store, path="a", mode="r")[:].tolist()
            except zarr.errors.NodeNotFoundError:  # the root snapshot is empty
                data = None
            out[ref].append((info.id, info.message, info.parent_id, info.metadata, data))
    return out


@pytest.fixture
def v1_repo(tmp_path: Path) -> Path:
    path = tmp_path / "v1"
    _write_v1(path)
    return path


def test_upgrade(v1_repo: Path) -> None:
    storage = ic.local_filesystem_storage(str(v1_repo))
    repo = ic.Repository.open(storage)
    before = _history(repo)
    dry = ic.upgrade_icechunk_repository(repo, dry_run=True)
    assert dry.spec_version == 1 and (v1_repo / "refs").exists() and not (v1_repo / "repo").exists()
    new = ic.upgrade_icechunk_repository(repo, dry_run=False)
    assert new.spec_version == 2
    assert _history(new) == before
    with pytest.raises(RuntimeError, match="invalidated by upgrade_icechunk_repository"):
        repo.list_branches()
    assert not [p for p in (v1_repo / "refs").rglob("*") if p.is_file()]
    assert not (v1_repo / "config.yaml").exists()
    assert new.config.inline_chunk_threshold_bytes == 5
    with pytest.raises(ic.AlreadyExistsError, match="tag was already deleted"):
        new.create_tag("gone", new.lookup_tag("t1"))
    kinds = [type(u.kind).__name__ for u in new.ops_log()]
    assert kinds[0] == "RepoMigrated" and kinds[-1] == "RepoInitialized"
    assert sorted(kinds) == sorted(
        [
            "RepoMigrated",
            "BranchCreated",
            "NewCommit",
            "NewCommit",
            "TagDeleted",
            "TagCreated",
            "TagCreated",
            "RepoInitialized",
        ]
    )
    with pytest.raises(SessionStateError, match=r"invalid repository version \(2.0\)") as info:
        ic.upgrade_icechunk_repository(new, dry_run=False)
    assert info.value.kind == "invalid-repository-migration"


def _mutations(storage: Any) -> int:
    calls: list[StorageCall] = []

    def count(call: StorageCall) -> bool:
        if call.op in ("put", "delete"):
            calls.append(call)
        return False

    faulty = FaultyStorage(storage, seed=0, crash_at=count)
    ic.upgrade_icechunk_repository(ic.Repository.open(faulty), dry_run=False)
    return len(calls)


@pytest.mark.parametrize("crash_after", [False, True])
def test_crash_at_every_step_leaves_an_openable_repository_and_a_rerun_finishes(
    v1_repo: Path, tmp_path: Path, crash_after: bool
) -> None:
    before = _history(ic.Repository.open(ic.local_filesystem_storage(str(v1_repo))))
    probe = tmp_path / "probe"
    shutil.copytree(v1_repo, probe)
    steps = _mutations(ic.local_filesystem_storage(str(probe)))
    assert steps >= 5  # the repo object, then each spec-1 ref and the config
    for step in range(steps):
        path = tmp_path / f"crash-{int(crash_after)}-{step}"
        shutil.copytree(v1_repo, path)
        inner = ic.local_filesystem_storage(str(path))
        seen = [0]

        def at_step(call: StorageCall, step: int = step, seen: list[int] = seen) -> bool:
            if call.op not in ("put", "delete"):
                return False
            seen[0] += 1
            return seen[0] == step + 1

        faulty = FaultyStorage(inner, seed=0, crash_at=at_step, crash_after=crash_after)
        with pytest.raises(InjectedCrash):
            ic.upgrade_icechunk_repository(ic.Repository.open(faulty), dry_run=False)
        # the state the crash left opens, with the whole history
        reopened = ic.Repository.open(inner)
        assert reopened.spec_version == (2 if (step > 0 or crash_after) else 1), step
        assert _history(reopened) == before, step
        # a second run finishes the job (when the crash came after the very last deletion the
        # job was done: a rerun then refuses like on any spec-2 repository)
        leftovers = [p for p in (path / "refs").rglob("*") if p.is_file()]
        if not leftovers and not (path / "config.yaml").exists():
            with pytest.raises(SessionStateError, match="invalid repository version"):
                ic.upgrade_icechunk_repository(reopened, dry_run=False)
            finished = ic.Repository.open(inner)
        else:
            finished = ic.upgrade_icechunk_repository(reopened, dry_run=False)
        assert finished.spec_version == 2
        assert _history(finished) == before, step
        assert not [p for p in (path / "refs").rglob("*") if p.is_file()], step
        assert not (path / "config.yaml").exists(), step
        assert finished.config.inline_chunk_threshold_bytes == 5
