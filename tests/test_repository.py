"""Repository life cycle, branches, tags and history, in both spec versions."""

from __future__ import annotations

import multiprocessing as mp
import pickle
from pathlib import Path

import numpy as np
import pytest
import zarr

import icechunk
from icechunk import ErrorKind

ROOT_ID = "1CECHNKREP0F1RSTCMT0"


def commit_something(repo: icechunk.Repository, branch: str, message: str, value: int = 1) -> str:
    session = repo.writable_session(branch)
    root = zarr.open_group(session.store, mode="a")
    root.attrs["value"] = value
    root.attrs["message"] = message
    return session.commit(message, metadata={"value": value})


def test_create_makes_main_at_root(repo: icechunk.Repository, spec_version: int) -> None:
    assert repo.spec_version == spec_version
    assert repo.list_branches() == {"main"}
    assert repo.lookup_branch("main") == ROOT_ID
    assert repo.list_tags() == set()
    (root,) = list(repo.ancestry(branch="main"))
    assert root.id == ROOT_ID
    assert root.parent_id is None
    assert root.message == "Repository initialized"


def test_exists_open_and_spec_detection(tmp_path: Path, spec_version: int) -> None:
    storage = icechunk.local_filesystem_storage(str(tmp_path / "r"))
    assert not icechunk.Repository.exists(storage)
    assert icechunk.Repository.fetch_spec_version(storage) is None
    with pytest.raises(icechunk.RepositoryNotFoundError) as info:
        icechunk.Repository.open(storage)
    assert info.value.kind == ErrorKind.REPOSITORY_NOT_FOUND
    icechunk.Repository.create(storage, spec_version=spec_version)
    assert icechunk.Repository.exists(storage)
    assert icechunk.Repository.fetch_spec_version(storage) == spec_version
    assert icechunk.Repository.open(storage).spec_version == spec_version
    assert icechunk.Repository.open_or_create(storage).spec_version == spec_version


def test_create_refuses_non_empty_location(repo: icechunk.Repository) -> None:
    with pytest.raises(icechunk.InvalidInputError) as info:
        icechunk.Repository.create(repo.storage)
    assert info.value.kind == ErrorKind.PARENT_DIRECTORY_NOT_CLEAN
    assert repo.lookup_branch("main") == ROOT_ID  # untouched


def test_unknown_spec_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(icechunk.InvalidInputError, match="spec version"):
        icechunk.Repository.create(icechunk.in_memory_storage(), spec_version=3)


def test_commits_build_history(repo: icechunk.Repository) -> None:
    first = commit_something(repo, "main", "first", 1)
    second = commit_something(repo, "main", "second", 2)
    history = list(repo.ancestry(branch="main"))
    assert [h.id for h in history] == [second, first, ROOT_ID]
    assert [h.message for h in history] == ["second", "first", "Repository initialized"]
    assert history[0].parent_id == first
    assert history[0].metadata == {"value": 2}
    assert history[0].written_at > history[1].written_at
    assert repo.lookup_snapshot(first).message == "first"


def test_branches(repo: icechunk.Repository) -> None:
    first = commit_something(repo, "main", "first")
    repo.create_branch("dev", first)
    assert repo.list_branches() == {"main", "dev"}
    dev_tip = commit_something(repo, "dev", "on dev")
    assert repo.lookup_branch("dev") == dev_tip
    assert repo.lookup_branch("main") == first
    with pytest.raises(icechunk.AlreadyExistsError) as info:
        repo.create_branch("dev", first)
    assert info.value.kind == ErrorKind.BRANCH_ALREADY_EXISTS
    repo.reset_branch("dev", first)
    assert repo.lookup_branch("dev") == first
    with pytest.raises(icechunk.ConflictError) as conflict:
        repo.reset_branch("dev", dev_tip, from_snapshot_id=ROOT_ID)
    assert conflict.value.kind == ErrorKind.BRANCH_UPDATE_CONFLICT
    repo.reset_branch("dev", dev_tip, from_snapshot_id=first)
    assert repo.lookup_branch("dev") == dev_tip
    repo.delete_branch("dev")
    assert repo.list_branches() == {"main"}
    with pytest.raises(icechunk.RefNotFoundError):
        repo.lookup_branch("dev")
    with pytest.raises(icechunk.RefNotFoundError):
        repo.delete_branch("dev")
    with pytest.raises(icechunk.SessionStateError) as main_err:
        repo.delete_branch("main")
    assert main_err.value.kind == ErrorKind.CANNOT_DELETE_MAIN


def test_branch_needs_existing_snapshot(repo: icechunk.Repository) -> None:
    with pytest.raises(icechunk.SnapshotNotFoundError):
        repo.create_branch("x", "AAAAAAAAAAAAAAAAAAA0")
    with pytest.raises(icechunk.InvalidInputError) as info:
        repo.create_branch("x", "garbage")
    assert info.value.kind == ErrorKind.INVALID_SNAPSHOT_ID
    assert repo.list_branches() == {"main"}


def test_tags_are_immutable_and_never_reused(repo: icechunk.Repository) -> None:
    first = commit_something(repo, "main", "first")
    repo.create_tag("v1", first)
    assert repo.lookup_tag("v1") == first
    with pytest.raises(icechunk.AlreadyExistsError) as dup:
        repo.create_tag("v1", ROOT_ID)
    assert dup.value.kind == ErrorKind.TAG_ALREADY_EXISTS
    repo.delete_tag("v1")
    assert repo.list_tags() == set()
    with pytest.raises(icechunk.RefNotFoundError):
        repo.lookup_tag("v1")
    with pytest.raises(icechunk.AlreadyExistsError) as reuse:
        repo.create_tag("v1", first)
    assert reuse.value.kind == ErrorKind.TAG_PREVIOUSLY_DELETED
    with pytest.raises(icechunk.RefNotFoundError):
        repo.delete_tag("never-existed")


@pytest.mark.parametrize("name", ["", "a/b", "..", ".", "bad\nname", "nul\x00"])
def test_invalid_ref_names(repo: icechunk.Repository, name: str) -> None:
    with pytest.raises(icechunk.InvalidInputError) as info:
        repo.create_branch(name, ROOT_ID)
    assert info.value.kind == ErrorKind.INVALID_REF_NAME
    with pytest.raises(icechunk.InvalidInputError):
        repo.create_tag(name, ROOT_ID)
    assert repo.list_branches() == {"main"}
    assert repo.list_tags() == set()


def test_readonly_session_arguments(repo: icechunk.Repository) -> None:
    first = commit_something(repo, "main", "first")
    repo.create_tag("t", first)
    for session in (
        repo.readonly_session("main"),
        repo.readonly_session(tag="t"),
        repo.readonly_session(snapshot_id=first),
    ):
        assert session.read_only
        assert session.snapshot_id == first
    with pytest.raises(ValueError, match="one of"):
        repo.readonly_session()
    with pytest.raises(ValueError, match="one of"):
        repo.readonly_session("main", tag="t")


def test_default_commit_metadata(repo: icechunk.Repository) -> None:
    repo.set_default_commit_metadata({"author": "ci", "value": 0})
    assert repo.default_commit_metadata() == {"author": "ci", "value": 0}
    snap = commit_something(repo, "main", "m", value=5)
    assert repo.lookup_snapshot(snap).metadata == {"author": "ci", "value": 5}


def test_ops_log_and_metadata_spec2(tmp_path: Path) -> None:
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "r")))
    first = commit_something(repo, "main", "first")
    repo.create_branch("dev", first)
    repo.create_tag("v1", first)
    repo.delete_tag("v1")
    repo.set_metadata({"project": "demo", "n": [1, 2.5, None]})
    assert repo.get_metadata() == {"project": "demo", "n": [1, 2.5, None]}
    log = list(repo.ops_log())
    kinds = [u.kind.kind for u in log]
    assert kinds == [
        "MetadataChanged",
        "TagDeleted",
        "TagCreated",
        "BranchCreated",
        "NewCommit",
        "RepoInitialized",
    ]
    stamps = [u.updated_at for u in log]
    assert stamps == sorted(stamps, reverse=True) and len(set(stamps)) == len(stamps)
    assert log[4].kind.new_snap_id == first
    # every older entry points at a backup of the repo object as it was right after it
    for update in log[1:]:
        assert update.backup_path is not None
        # named relative to `overwritten/`, as the real Icechunk names them
        assert update.backup_path.startswith("repo.")
        assert (tmp_path / "r" / "overwritten" / update.backup_path).exists()


def test_ops_log_refused_on_spec1(tmp_path: Path) -> None:
    repo = icechunk.Repository.create(
        icechunk.local_filesystem_storage(str(tmp_path / "r")), spec_version=1
    )
    with pytest.raises(icechunk.IcechunkError, match="spec version 2"):
        list(repo.ops_log())
    with pytest.raises(icechunk.IcechunkError, match="spec version 2"):
        repo.set_metadata({"a": 1})


def test_repository_pickles(local_repo: icechunk.Repository) -> None:
    first = commit_something(local_repo, "main", "first")
    clone = pickle.loads(pickle.dumps(local_repo))
    assert clone.lookup_branch("main") == first
    assert clone.spec_version == local_repo.spec_version


def _race_worker(path: str, targets: list[str], rounds: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(path))
    rng = np.random.default_rng()
    done: list[tuple[str, str]] = []
    while len(done) < rounds:
        current = repo.lookup_branch("main")
        target = str(rng.choice([t for t in targets if t != current]))
        try:
            repo.reset_branch("main", target, from_snapshot_id=current)
        except icechunk.ConflictError:
            continue
        done.append((current, target))
    out.put(done)


def test_concurrent_reset_branch_loses_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "race")
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(path))
    targets = [commit_something(repo, "main", f"c{i}", i) for i in range(4)]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_race_worker, args=(path, targets, 15, out)) for _ in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    successes = [pair for r in results for pair in r]
    assert len(successes) == 60
    resets = [u for u in repo.ops_log() if u.kind.kind == "BranchReset"]
    assert len(resets) == 60
    # The log, oldest first, is one unbroken chain: reset k started at the snapshot reset k-1
    # moved to. Rebuild the (from, to) pairs from it; they must be exactly the acknowledged ones.
    previous = [u.kind.previous_snap_id for u in reversed(resets)]
    final = repo.lookup_branch("main")
    logged = list(zip(previous, [*previous[1:], final], strict=True))
    assert previous[0] == targets[-1]
    assert sorted(logged) == sorted(successes)


# ---------------------------------------------------------------------------------------------
# public API details matched to the real Icechunk 2.3.0 (expected values captured from it)


def test_diff_text_form_matches_the_real_icechunk() -> None:
    repo = icechunk.Repository.create(icechunk.in_memory_storage())
    session = repo.writable_session("main")
    group = zarr.group(session.store)
    group.create_group("g1")
    a = group.create_array("a", shape=(4,), chunks=(1,), dtype="i4")
    a[:3] = 1
    group.create_array("b", shape=(20,), chunks=(1,), dtype="i4")[:] = 1
    expected = (
        "Groups created:\n    /\n    /g1\n\nArrays created:\n    /a\n    /b\n\n"
        "Chunks updated:\n    /a:\n        [0]\n        [1]\n        [2]\n    /b:\n"
        + "".join(f"        [{i}]\n" for i in range(10))
        + "        ... 10 more\n"
    )
    assert repr(session.status()) == str(session.status()) == expected
    session.commit("c1")
    session = repo.writable_session("main")
    assert repr(session.status()) == ""
    group = zarr.open_group(session.store)
    group.attrs["x"] = 1
    group["a"].attrs["y"] = 2
    del group["g1"]
    assert repr(session.status()) == (
        "Group definitions updated:\n    /\n\nArray definitions updated:\n    /a\n\n"
        "Groups deleted:\n    /g1\n\n"
    )
    with pytest.raises(icechunk.IcechunkError, match="doesn't include"):
        repo.diff(from_branch="main", to_snapshot_id=list(repo.ancestry(branch="main"))[-1].id)


async def test_ops_log_kinds_and_async_twins() -> None:
    repo = await icechunk.Repository.create_async(icechunk.in_memory_storage())
    root = await repo.lookup_branch_async("main")
    await repo.create_branch_async("dev", root)
    await repo.set_metadata_async({"user": "test"})
    assert await repo.update_metadata_async({"n": 1}) == {"user": "test", "n": 1}
    assert await repo.get_metadata_async() == {"user": "test", "n": 1}
    updates = [u async for u in repo.ops_log_async()]
    assert [type(u.kind).__name__ for u in updates] == [
        "MetadataChanged",
        "MetadataChanged",
        "BranchCreated",
        "RepoInitialized",
    ]
    assert isinstance(updates[2].kind, icechunk.UpdateType.BranchCreated)
    assert isinstance(updates[2].kind, icechunk.UpdateType)
    assert not isinstance(updates[2].kind, icechunk.UpdateType.TagCreated)
    assert updates[2].kind.name == "dev"
    assert [u.kind for u in repo.ops_log()] == [u.kind for u in updates]


async def test_list_prefix_of_slash_lists_the_root() -> None:
    repo = icechunk.Repository.create(icechunk.in_memory_storage())
    session = repo.writable_session("main")
    zarr.group(session.store).create_array("x", shape=(2,), chunks=(1,), dtype="i4")[:] = 1
    keys = sorted([k async for k in session.store.list_prefix("/")])
    assert keys == sorted([k async for k in session.store.list_prefix("")])
    assert keys == ["x/c/0", "x/c/1", "x/zarr.json", "zarr.json"]


async def test_list_prefix_has_directory_semantics() -> None:
    repo = icechunk.Repository.create(icechunk.in_memory_storage())
    session = repo.writable_session("main")
    group = zarr.group(session.store)
    group.create_array("z", shape=(1,), chunks=(1,), dtype="i4")
    group.create_array("z2", shape=(1,), chunks=(1,), dtype="i4")
    for prefix in ("z", "z/"):
        assert [k async for k in session.store.list_prefix(prefix)] == ["z/zarr.json"]


def test_storage_reprs_match_the_real_icechunk(tmp_path: Path) -> None:
    local = icechunk.local_filesystem_storage(str(tmp_path))
    assert repr(local) == f"<icechunk.Storage>\ntype: local filesystem\npath: {tmp_path}\n"
    assert repr(icechunk.in_memory_storage()) == "<icechunk.Storage>\ntype: in-memory\n"
    repo = icechunk.Repository.create(local)
    assert "\n" not in repr(repo) and str(tmp_path) in repr(repo)
