"""Sessions: reads and writes through zarr, commit, conflicts, rebase, amend, flush, time travel."""

from __future__ import annotations

import pickle
import time
from datetime import UTC, datetime

import numpy as np
import pytest
import zarr

import icechunk
from icechunk import (
    BasicConflictSolver,
    ConflictDetector,
    ConflictType,
    ErrorKind,
    VersionSelection,
)


def make_array(repo: icechunk.Repository, *, chunk: int = 10) -> str:
    session = repo.writable_session("main")
    root = zarr.group(store=session.store)
    root.attrs["title"] = "t"
    arr = root.create_array("data", shape=(100, 20), chunks=(chunk, 20), dtype="f8", fill_value=0)
    arr[:] = np.arange(2000, dtype="f8").reshape(100, 20)
    small = root.create_array("small", shape=(4,), chunks=(2,), dtype="i2", fill_value=-1)
    small[:] = [1, 2, 3, 4]
    return session.commit("init")


def read(repo: icechunk.Repository, name: str = "data", **kw: str) -> np.ndarray:
    session = repo.readonly_session(**kw) if kw else repo.readonly_session("main")
    return zarr.open_array(session.store, path=name, mode="r")[:]


def test_round_trip_native_and_inline(repo: icechunk.Repository) -> None:
    make_array(repo)
    np.testing.assert_array_equal(read(repo), np.arange(2000).reshape(100, 20))
    np.testing.assert_array_equal(read(repo, "small"), [1, 2, 3, 4])
    group = zarr.open_group(repo.readonly_session("main").store, mode="r")
    assert group.attrs["title"] == "t"
    assert sorted(group.array_keys()) == ["data", "small"]


def test_session_isolation_and_read_your_writes(repo: icechunk.Repository) -> None:
    make_array(repo)
    reader = repo.readonly_session("main")
    writer = repo.writable_session("main")
    arr = zarr.open_array(writer.store, path="data")
    arr[0] = -1
    assert zarr.open_array(writer.store, path="data")[0, 0] == -1  # sees its own writes
    writer.commit("change")
    assert zarr.open_array(reader.store, path="data", mode="r")[0, 0] == 0  # snapshot isolation
    assert read(repo)[0, 0] == -1


def test_commit_makes_session_read_only(repo: icechunk.Repository) -> None:
    make_array(repo)
    session = repo.writable_session("main")
    zarr.open_array(session.store, path="data")[1] = 5
    snap = session.commit("c")
    assert session.read_only and session.branch is None and session.snapshot_id == snap
    with pytest.raises(icechunk.ReadOnlyError):
        zarr.open_array(session.store, path="data")[1] = 6


def test_empty_commit(repo: icechunk.Repository) -> None:
    session = repo.writable_session("main")
    with pytest.raises(icechunk.SessionStateError) as info:
        session.commit("nothing")
    assert info.value.kind == ErrorKind.NO_CHANGES_TO_COMMIT
    snap = session.commit("nothing", allow_empty=True)
    assert repo.lookup_branch("main") == snap


def test_bad_commit_metadata_writes_nothing(repo: icechunk.Repository) -> None:
    make_array(repo)
    before = repo.lookup_branch("main")
    session = repo.writable_session("main")
    zarr.open_array(session.store, path="data")[0] = 3
    with pytest.raises(TypeError, match="metadata"):
        session.commit("bad", metadata={"x": object()})
    with pytest.raises(icechunk.InvalidInputError):
        session.commit("bad", metadata={"x": float("nan")})
    assert repo.lookup_branch("main") == before
    assert session.has_uncommitted_changes
    session.commit("good", metadata={"x": [1, {"y": None}]})


def test_stale_commit_raises_conflict(repo: icechunk.Repository) -> None:
    make_array(repo)
    s1 = repo.writable_session("main")
    s2 = repo.writable_session("main")
    zarr.open_array(s1.store, path="data")[0, 0] = 1
    zarr.open_array(s2.store, path="data")[0, :] = 2
    tip = s1.commit("s1")
    with pytest.raises(icechunk.ConflictError) as info:
        s2.commit("s2")
    assert info.value.expected_parent == s2.snapshot_id
    assert info.value.actual_parent == tip
    assert repo.lookup_branch("main") == tip  # nothing published
    with pytest.raises(icechunk.RebaseFailedError) as failed:
        s2.rebase(ConflictDetector())
    (conflict,) = failed.value.conflicts
    assert conflict.conflict_type == ConflictType.ChunkDoubleUpdate
    assert conflict.path == "/data"
    assert conflict.conflicted_chunks == [[0, 0]]


@pytest.mark.parametrize("choice", [VersionSelection.UseOurs, VersionSelection.UseTheirs])
def test_basic_solver_version_selection(
    repo: icechunk.Repository, choice: VersionSelection
) -> None:
    session = repo.writable_session("main")
    zarr.create_array(session.store, name="cells", shape=(5, 5), chunks=(1, 1), dtype="i4")
    session.commit("init")
    s1 = repo.writable_session("main")
    s2 = repo.writable_session("main")
    zarr.open_array(s1.store, path="cells")[0, 0] = 1
    zarr.open_array(s2.store, path="cells")[0, :] = 2
    s1.commit("s1")
    with pytest.raises(icechunk.RebaseFailedError):
        s2.rebase(BasicConflictSolver(on_chunk_conflict=VersionSelection.Fail))
    s2.rebase(BasicConflictSolver(on_chunk_conflict=choice))
    s2.commit("s2")
    row = read(repo, "cells")[0]
    expected = [2, 2, 2, 2, 2] if choice == VersionSelection.UseOurs else [1, 2, 2, 2, 2]
    np.testing.assert_array_equal(row, expected)


def test_disjoint_writes_rebase_cleanly(repo: icechunk.Repository) -> None:
    make_array(repo)
    s1 = repo.writable_session("main")
    s2 = repo.writable_session("main")
    zarr.open_array(s1.store, path="data")[0:10] = 1
    zarr.open_array(s2.store, path="data")[90:100] = 2
    s1.commit("s1")
    s2.commit("s2", rebase_with=ConflictDetector())
    data = read(repo)
    assert (data[0:10] == 1).all() and (data[90:100] == 2).all()
    meta = next(iter(repo.ancestry(branch="main"))).metadata
    assert meta["__icechunk"]["rebase_attempts"] == 1


def test_status_and_discard(repo: icechunk.Repository) -> None:
    make_array(repo)
    session = repo.writable_session("main")
    zarr.open_array(session.store, path="data")[0] = 9
    root = zarr.open_group(session.store)
    root.create_group("newgroup")
    del root["small"]
    diff = session.status()
    assert diff.updated_chunks == {"/data": [[0, 0]]}
    assert diff.new_groups == {"/newgroup"}
    assert diff.deleted_arrays == {"/small"}
    session.discard_changes()
    assert not session.has_uncommitted_changes
    assert session.status().is_empty()


def test_delete_and_resize(repo: icechunk.Repository) -> None:
    make_array(repo)
    session = repo.writable_session("main")
    arr = zarr.open_array(session.store, path="data")
    arr.resize((50, 20))
    arr.resize((100, 20))
    session.commit("shrink and grow")
    data = read(repo)
    np.testing.assert_array_equal(data[:50], np.arange(1000).reshape(50, 20))
    assert (data[50:] == 0).all()  # the dropped region reads back as the fill value


def test_amend_and_flush(repo: icechunk.Repository, spec_version: int) -> None:
    first = make_array(repo)
    session = repo.writable_session("main")
    zarr.open_array(session.store, path="data")[0] = 7
    second = session.commit("second")
    if spec_version == 1:
        session = repo.writable_session("main")
        zarr.open_array(session.store, path="data")[0] = 8
        with pytest.raises(icechunk.SessionStateError):
            session.amend("amended")
        return
    session = repo.writable_session("main")
    zarr.open_array(session.store, path="data")[0] = 8
    amended = session.amend("amended")
    history = [h.id for h in repo.ancestry(branch="main")]
    assert history[:2] == [amended, first] and second not in history
    assert read(repo)[0, 0] == 8
    session = repo.writable_session("main")
    zarr.open_array(session.store, path="data")[0] = 9
    detached = session.flush("detached")
    assert repo.lookup_branch("main") == amended
    assert read(repo, snapshot_id=detached)[0, 0] == 9


def test_as_of(repo: icechunk.Repository) -> None:
    first = make_array(repo)
    time.sleep(0.01)
    middle = datetime.now(UTC)
    time.sleep(0.01)
    session = repo.writable_session("main")
    zarr.open_array(session.store, path="data")[0] = 3
    session.commit("later")
    assert repo.readonly_session("main", as_of=middle).snapshot_id == first
    with pytest.raises(icechunk.SnapshotNotFoundError):
        repo.readonly_session("main", as_of=datetime(2000, 1, 1, tzinfo=UTC))


def test_transaction_commits_only_on_clean_exit(repo: icechunk.Repository) -> None:
    make_array(repo)
    before = repo.lookup_branch("main")
    with pytest.raises(RuntimeError), repo.transaction("main", message="fails") as store:
        zarr.open_array(store, path="data")[0] = 1
        raise RuntimeError("boom")
    assert repo.lookup_branch("main") == before
    with repo.transaction("main", message="works") as store:
        zarr.open_array(store, path="data")[0] = 1
    assert repo.lookup_branch("main") != before
    assert read(repo)[0, 0] == 1


def test_diff(repo: icechunk.Repository) -> None:
    first = make_array(repo)
    session = repo.writable_session("main")
    root = zarr.open_group(session.store)
    root["data"][0] = 5
    root.create_group("g")
    second = session.commit("x")
    diff = repo.diff(from_snapshot_id=first, to_snapshot_id=second)
    assert diff.new_groups == {"/g"}
    assert diff.updated_chunks == {"/data": [[0, 0]]}
    with pytest.raises(icechunk.InvalidInputError) as info:
        repo.diff(from_snapshot_id=second, to_snapshot_id=first)
    assert info.value.kind == ErrorKind.BAD_SNAPSHOT_CHAIN_FOR_DIFF


def test_invalid_keys_and_chunk_indices(repo: icechunk.Repository) -> None:
    make_array(repo)
    session = repo.writable_session("main")
    store = session.store
    buf = zarr.core.buffer.default_buffer_prototype().buffer.from_bytes(b"x" * 10)
    for key in ["random_key", "../escape/zarr.json", "data/c/99/0", "/abs/zarr.json"]:
        with pytest.raises(icechunk.InvalidInputError):
            zarr.core.sync.sync(store.set(key, buf))
    with pytest.raises(icechunk.InvalidInputError) as info:
        zarr.core.sync.sync(
            store.set(
                "data/c/0/0", zarr.core.buffer.default_buffer_prototype().buffer.from_bytes(b"")
            )
        )
    assert info.value.kind == ErrorKind.ZERO_LENGTH_CHUNK
    assert not session.has_uncommitted_changes


def test_pickled_writable_session_is_a_read_only_view(repo: icechunk.Repository) -> None:
    make_array(repo)
    session = repo.writable_session("main")
    zarr.open_array(session.store, path="data")[0] = 42
    if isinstance(repo.storage, type(icechunk.in_memory_storage())):
        pass
    view = pickle.loads(pickle.dumps(session))
    assert view.read_only
    assert zarr.open_array(view.store, path="data", mode="r")[0, 0] == 42
    with pytest.raises(icechunk.ReadOnlyError, match="fork"):
        zarr.open_array(view.store, path="data")[0] = 1
