"""Optimistic concurrency: stale commits, rebase, and every conflict type the public API can make.

"Ours" is the session being rebased, "theirs" the commit that reached the branch first.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest
import zarr
from zarr.core.sync import sync

import icechunk
from icechunk import (
    BasicConflictSolver,
    Conflict,
    ConflictDetector,
    ConflictType,
    ErrorKind,
    VersionSelection,
)

ARRAY = "foo/bar/some-array"


@pytest.fixture
def base(repo: icechunk.Repository) -> icechunk.Repository:
    """``/foo/bar/some-array`` (10x10, one element per chunk), ``/g/arr`` and ``/h``."""
    session = repo.writable_session("main")
    root = zarr.group(store=session.store)
    root.attrs["title"] = "base"
    root.create_group("foo/bar")
    arr = root.create_array(ARRAY, shape=(10, 10), chunks=(1, 1), dtype="i4", fill_value=0)
    arr[:] = 0
    g = root.create_group("g")
    g.create_array("arr", shape=(4,), chunks=(2,), dtype="i2", fill_value=0)[:] = [1, 2, 3, 4]
    root.create_group("h")
    session.commit("base")
    return repo


def _root(session: icechunk.Session) -> zarr.Group:
    return zarr.open_group(session.store, mode="r+")


def _array(session: icechunk.Session, path: str = ARRAY) -> zarr.Array[Any]:
    return zarr.open_array(session.store, path=path, mode="r+")


def _pair(repo: icechunk.Repository) -> tuple[icechunk.Session, icechunk.Session]:
    return repo.writable_session("main"), repo.writable_session("main")


def _rebase_conflicts(
    session: icechunk.Session, solver: icechunk.ConflictSolver | None = None
) -> list[tuple[ConflictType, str]]:
    with pytest.raises(icechunk.RebaseFailedError) as info:
        session.rebase(solver or ConflictDetector())
    return [(c.conflict_type, c.path) for c in info.value.conflicts]


def _read(repo: icechunk.Repository, path: str = ARRAY) -> np.ndarray[Any, Any]:
    return zarr.open_array(repo.readonly_session("main").store, path=path, mode="r")[:]


def _paths(repo: icechunk.Repository, **ref: str) -> set[str]:
    """Every node path of the snapshot, from the store's key listing (so orphans show too)."""
    session = repo.readonly_session(**ref) if ref else repo.readonly_session("main")

    async def keys() -> list[str]:
        return [k async for k in session.store.list()]

    found = {
        k.removesuffix("zarr.json").strip("/") for k in sync(keys()) if k.endswith("zarr.json")
    }
    return found - {""}


# -- commit conflicts ---------------------------------------------------------------------------


def test_stale_commit_raises_and_publishes_nothing(base: icechunk.Repository) -> None:
    ours, theirs = _pair(base)
    _array(theirs)[0, 0] = 1
    _array(ours)[5, 5] = 2
    history_before = [s.id for s in base.ancestry(branch="main")]
    tip = theirs.commit("theirs")
    with pytest.raises(icechunk.ConflictError) as info:
        ours.commit("ours", metadata={"who": "ours"})
    err = info.value
    assert not isinstance(err, icechunk.RebaseFailedError)
    assert err.kind == ErrorKind.COMMIT_CONFLICT
    assert err.expected_parent == ours.snapshot_id == history_before[0]
    assert err.actual_parent == tip
    assert tip in str(err) and ours.snapshot_id in str(err)
    # nothing became visible; the losing session keeps its changes and can still commit
    assert base.lookup_branch("main") == tip
    assert [s.id for s in base.ancestry(branch="main")] == [tip, *history_before]
    assert ours.has_uncommitted_changes and not ours.read_only and ours.branch == "main"
    if base.spec_version == 2:
        (newest, *_) = base.ops_log()
        assert newest.kind.new_snap_id == tip
    ours.rebase(ConflictDetector())
    assert ours.snapshot_id == tip
    new_tip = ours.commit("ours")
    data = _read(base)
    assert data[0, 0] == 1 and data[5, 5] == 2
    assert next(iter(base.ancestry(branch="main"))).parent_id == tip
    assert base.lookup_branch("main") == new_tip


def test_commit_with_rebase_tries_exhausted(base: icechunk.Repository) -> None:
    ours, theirs = _pair(base)
    _array(theirs)[0, 0] = 1
    _array(ours)[1, 1] = 2
    tip = theirs.commit("theirs")
    with pytest.raises(icechunk.ConflictError):
        ours.commit("ours", rebase_with=ConflictDetector(), rebase_tries=0)
    assert base.lookup_branch("main") == tip


def test_detector_lists_double_updated_chunks(base: icechunk.Repository) -> None:
    ours, theirs = _pair(base)
    _array(theirs)[0, 0] = 1
    _array(ours)[0, :] = 2
    tip = theirs.commit("theirs")
    with pytest.raises(icechunk.RebaseFailedError) as info:
        ours.commit("ours", rebase_with=ConflictDetector())
    err = info.value
    assert err.kind == ErrorKind.REBASE_FAILED
    assert err.snapshot == tip
    assert str(err) == f"Rebase failed on snapshot {tip}: 1 conflicts found"
    (conflict,) = err.conflicts
    assert conflict.conflict_type == ConflictType.ChunkDoubleUpdate
    assert conflict.path == "/" + ARRAY
    assert conflict.conflicted_chunks == [[0, 0]]
    assert base.lookup_branch("main") == tip


def test_detector_reports_metadata_and_chunks_in_order(base: icechunk.Repository) -> None:
    ours, theirs = _pair(base)
    arr = _array(theirs)
    arr[:] = 1
    arr.attrs["repo"] = 1
    theirs.commit("theirs")
    arr = _array(ours)
    arr[:] = 2
    arr.attrs["repo"] = 2
    with pytest.raises(icechunk.RebaseFailedError) as info:
        ours.rebase(ConflictDetector())
    kinds = [(c.conflict_type, c.path) for c in info.value.conflicts]
    assert kinds == [
        (ConflictType.ZarrMetadataDoubleUpdate, "/" + ARRAY),
        (ConflictType.ChunksUpdatedInUpdatedArray, "/" + ARRAY),
        (ConflictType.ChunkDoubleUpdate, "/" + ARRAY),
    ]
    chunks = info.value.conflicts[2].conflicted_chunks
    assert chunks == [[i, j] for i in range(10) for j in range(10)]
    # the basic solver cannot resolve metadata conflicts either, and reports all of them
    assert len(_rebase_conflicts(ours, BasicConflictSolver())) == 3


@pytest.mark.parametrize(
    "choice", [VersionSelection.UseOurs, VersionSelection.UseTheirs], ids=["ours", "theirs"]
)
def test_basic_solver_version_selection(
    base: icechunk.Repository, choice: VersionSelection
) -> None:
    ours, theirs = _pair(base)
    _array(theirs)[:] = 1
    _array(ours)[:, 0] = 2
    theirs.commit("theirs")
    with pytest.raises(icechunk.RebaseFailedError) as info:
        ours.commit(
            "ours", rebase_with=BasicConflictSolver(on_chunk_conflict=VersionSelection.Fail)
        )
    (conflict,) = info.value.conflicts
    assert conflict.conflicted_chunks == [[i, 0] for i in range(10)]
    ours.commit("ours", rebase_with=BasicConflictSolver(on_chunk_conflict=choice))
    data = _read(base)
    assert (data[:, 1:] == 1).all()
    assert (data[:, 0] == (2 if choice == VersionSelection.UseOurs else 1)).all()
    meta = next(iter(base.ancestry(branch="main"))).metadata
    assert meta["__icechunk"] == {"rebase_attempts": 1}


def test_use_theirs_keeps_our_other_chunks(base: icechunk.Repository) -> None:
    ours, theirs = _pair(base)
    _array(theirs)[0, 0] = 1
    _array(ours)[0, 0:2] = 2
    theirs.commit("theirs")
    ours.rebase(BasicConflictSolver(on_chunk_conflict=VersionSelection.UseTheirs))
    assert ours.status().updated_chunks == {"/" + ARRAY: [[0, 1]]}
    ours.commit("ours")
    np.testing.assert_array_equal(_read(base)[0, :3], [1, 2, 0])


def test_disjoint_writes_rebase_cleanly(base: icechunk.Repository) -> None:
    ours, theirs = _pair(base)
    _array(theirs)[0:5] = 1
    _array(ours)[5:10] = 2
    _root(ours).attrs["title"] = "ours"  # metadata of a node they did not touch
    theirs.commit("theirs")
    ours.commit("ours", rebase_with=ConflictDetector())
    data = _read(base)
    assert (data[0:5] == 1).all() and (data[5:10] == 2).all()
    assert zarr.open_group(base.readonly_session("main").store, mode="r").attrs["title"] == "ours"
    assert next(iter(base.ancestry(branch="main"))).metadata["__icechunk"]["rebase_attempts"] == 1


def test_rebase_over_several_commits_stops_at_the_failing_one(base: icechunk.Repository) -> None:
    ours = base.writable_session("main")
    _array(ours)[3, 3] = 7
    first = base.writable_session("main")
    _array(first)[0, 0] = 1
    first_id = first.commit("first")
    second = base.writable_session("main")
    _array(second)[3, 3] = 5
    second_id = second.commit("second")
    with pytest.raises(icechunk.RebaseFailedError) as info:
        ours.rebase(ConflictDetector())
    assert info.value.snapshot == second_id
    assert ours.snapshot_id == first_id  # rebased onto the last commit replayed successfully
    assert ours.status().updated_chunks == {"/" + ARRAY: [[3, 3]]}
    ours.commit("ours", rebase_with=BasicConflictSolver())
    data = _read(base)
    assert data[0, 0] == 1 and data[3, 3] == 7


# -- metadata conflicts --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["", "h", ARRAY], ids=["root", "group", "array"])
def test_attribute_double_edit(base: icechunk.Repository, path: str) -> None:
    ours, theirs = _pair(base)
    for session, value in ((theirs, 1), (ours, 2)):
        node = _root(session) if not path else _root(session)[path]
        node.attrs["edited"] = value
    theirs.commit("theirs")
    with pytest.raises(icechunk.ConflictError):
        ours.commit("ours")
    with pytest.raises(icechunk.RebaseFailedError) as info:
        ours.commit("ours", rebase_with=BasicConflictSolver())
    assert [(c.conflict_type, c.path) for c in info.value.conflicts] == [
        (ConflictType.ZarrMetadataDoubleUpdate, "/" + path)
    ]


def test_update_of_deleted_array(base: icechunk.Repository) -> None:
    ours, theirs = _pair(base)
    del _root(theirs)[ARRAY]
    theirs.commit("theirs")
    _array(ours).attrs["x"] = 1
    assert _rebase_conflicts(ours, BasicConflictSolver()) == [
        (ConflictType.ZarrMetadataUpdateOfDeletedArray, "/" + ARRAY)
    ]


def test_update_of_deleted_group(base: icechunk.Repository) -> None:
    ours, theirs = _pair(base)
    del _root(theirs)["h"]
    theirs.commit("theirs")
    _root(ours)["h"].attrs["x"] = 1
    assert _rebase_conflicts(ours, BasicConflictSolver()) == [
        (ConflictType.ZarrMetadataUpdateOfDeletedGroup, "/h")
    ]


# -- chunk conflicts ---------------------------------------------------------------------------


def test_chunks_in_deleted_array(base: icechunk.Repository) -> None:
    ours, theirs = _pair(base)
    del _root(theirs)[ARRAY]
    theirs.commit("theirs")
    _array(ours)[0, 0] = 1
    assert _rebase_conflicts(ours, BasicConflictSolver()) == [
        (ConflictType.ChunksUpdatedInDeletedArray, "/" + ARRAY)
    ]


@pytest.mark.parametrize("new_shape", [(20, 10), (5, 10)], ids=["grow", "shrink"])
def test_chunks_in_resized_array(base: icechunk.Repository, new_shape: tuple[int, int]) -> None:
    ours, theirs = _pair(base)
    _array(theirs).resize(new_shape)
    theirs.commit("theirs")
    _array(ours)[0, 0] = 1
    assert _rebase_conflicts(
        ours, BasicConflictSolver(on_chunk_conflict=VersionSelection.UseOurs)
    ) == [(ConflictType.ChunksUpdatedInUpdatedArray, "/" + ARRAY)]


def test_chunks_in_array_whose_attrs_changed(base: icechunk.Repository) -> None:
    """Any metadata rewrite counts as an update of the array, not just a resize."""
    ours, theirs = _pair(base)
    _array(theirs).attrs["units"] = "m"
    theirs.commit("theirs")
    _array(ours)[0, 0] = 1
    assert _rebase_conflicts(ours) == [(ConflictType.ChunksUpdatedInUpdatedArray, "/" + ARRAY)]


def test_attrs_edit_over_their_chunk_writes_is_fine(base: icechunk.Repository) -> None:
    ours, theirs = _pair(base)
    _array(theirs)[:] = 1
    theirs.commit("theirs")
    _array(ours).attrs["repo"] = 2
    ours.commit("ours", rebase_with=ConflictDetector())
    assert (_read(base) == 1).all()
    assert (
        zarr.open_array(base.readonly_session("main").store, path=ARRAY, mode="r").attrs["repo"]
        == 2
    )


# -- deletes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("their_change", ["chunks", "attrs"])
def test_delete_of_updated_array(base: icechunk.Repository, their_change: str) -> None:
    ours, theirs = _pair(base)
    if their_change == "chunks":
        _array(theirs)[0, 0] = 1
    else:
        _array(theirs).attrs["x"] = 1
    theirs.commit("theirs")
    del _root(ours)[ARRAY]
    expected = [(ConflictType.DeleteOfUpdatedArray, "/" + ARRAY)]
    assert _rebase_conflicts(ours) == expected
    assert (
        _rebase_conflicts(ours, BasicConflictSolver(fail_on_delete_of_updated_array=True))
        == expected
    )
    # the group flag does not cover arrays
    ours.commit("ours", rebase_with=BasicConflictSolver(fail_on_delete_of_updated_group=True))
    assert "foo/bar/some-array" not in _paths(base)
    assert "foo/bar" in _paths(base)


def test_delete_of_updated_group(base: icechunk.Repository) -> None:
    ours, theirs = _pair(base)
    _root(theirs)["h"].attrs["x"] = 1
    theirs.commit("theirs")
    del _root(ours)["h"]
    expected = [(ConflictType.DeleteOfUpdatedGroup, "/h")]
    assert _rebase_conflicts(ours) == expected
    assert (
        _rebase_conflicts(ours, BasicConflictSolver(fail_on_delete_of_updated_group=True))
        == expected
    )
    ours.commit("ours", rebase_with=BasicConflictSolver(fail_on_delete_of_updated_array=True))
    assert "h" not in _paths(base)


def test_delete_of_group_whose_array_changed(base: icechunk.Repository) -> None:
    """Deleting a group deletes its arrays: a change to one of them is a conflict on it."""
    ours, theirs = _pair(base)
    _array(theirs, "g/arr")[0] = 9
    theirs.commit("theirs")
    del _root(ours)["g"]
    assert _rebase_conflicts(ours) == [(ConflictType.DeleteOfUpdatedArray, "/g/arr")]
    ours.commit("ours", rebase_with=BasicConflictSolver())
    assert not {"g", "g/arr"} & _paths(base)


def test_delete_of_group_they_added_to(base: icechunk.Repository) -> None:
    """Nodes they created inside a group we delete go with it (never left without a parent)."""
    ours, theirs = _pair(base)
    _root(theirs).create_group("h/new")
    theirs.commit("theirs")
    del _root(ours)["h"]
    assert _rebase_conflicts(ours) == [(ConflictType.DeleteOfUpdatedGroup, "/h")]
    ours.commit("ours", rebase_with=BasicConflictSolver())
    paths = _paths(base)
    assert "h" not in paths and "h/new" not in paths


def test_delete_of_node_they_also_deleted(base: icechunk.Repository) -> None:
    ours, theirs = _pair(base)
    del _root(theirs)["h"]
    theirs.commit("theirs")
    del _root(ours)["h"]
    ours.commit("ours", rebase_with=ConflictDetector())
    assert "h" not in _paths(base)


# -- new nodes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["group", "array"])
def test_new_node_conflicts_with_existing_node(base: icechunk.Repository, kind: str) -> None:
    ours, theirs = _pair(base)
    for session in (theirs, ours):
        if kind == "group":
            _root(session).create_group("new")
        else:
            _root(session).create_array("new", shape=(2,), dtype="i1")
    theirs.commit("theirs")
    assert _rebase_conflicts(ours, BasicConflictSolver()) == [
        (ConflictType.NewNodeConflictsWithExistingNode, "/new")
    ]


def test_new_node_in_group_replaced_by_array(base: icechunk.Repository) -> None:
    ours, theirs = _pair(base)
    zarr.create_array(theirs.store, name="h", shape=(3,), dtype="i1", overwrite=True)
    theirs.commit("theirs")
    _root(ours).create_group("h/child")
    assert _rebase_conflicts(ours, BasicConflictSolver()) == [
        (ConflictType.NewNodeInInvalidGroup, "/h")
    ]


def test_new_node_in_deleted_group(base: icechunk.Repository) -> None:
    """Not detected by icechunk (the node would be left without a parent); we report it."""
    ours, theirs = _pair(base)
    del _root(theirs)["h"]
    theirs.commit("theirs")
    _root(ours).create_array("h/child", shape=(2,), dtype="i1")
    assert _rebase_conflicts(ours) == [(ConflictType.NewNodeInInvalidGroup, "/h")]


def test_new_nodes_in_distinct_places_rebase_cleanly(base: icechunk.Repository) -> None:
    ours, theirs = _pair(base)
    _root(theirs).create_group("h/theirs")
    theirs.commit("theirs")
    _root(ours).create_array("h/ours", shape=(2,), dtype="i1", fill_value=3)
    ours.commit("ours", rebase_with=ConflictDetector())
    assert {"h/theirs", "h/ours"} <= _paths(base)


def test_delete_and_recreate_of_untouched_array_is_not_a_conflict(
    base: icechunk.Repository,
) -> None:
    ours, theirs = _pair(base)
    _array(theirs, "g/arr")[0] = 5
    theirs.commit("theirs")
    root = _root(ours)
    del root[ARRAY]
    root.create_array(ARRAY, shape=(3,), dtype="f4", fill_value=1.5)
    ours.commit("ours", rebase_with=ConflictDetector())
    np.testing.assert_array_equal(_read(base), [1.5, 1.5, 1.5])
    np.testing.assert_array_equal(_read(base, "g/arr"), [5, 2, 3, 4])


def test_rebase_after_branch_reset_fails(base: icechunk.Repository) -> None:
    ours, theirs = _pair(base)
    _array(theirs)[0, 0] = 1
    tip = theirs.commit("theirs")
    root_id = list(base.ancestry(branch="main"))[-1].id
    base.reset_branch("main", root_id, from_snapshot_id=tip)
    _array(ours)[1, 1] = 1
    with pytest.raises(icechunk.SessionStateError):
        ours.rebase(ConflictDetector())


# -- value objects -----------------------------------------------------------------------------


def test_conflict_objects_pickle_and_print() -> None:
    conflict = Conflict(ConflictType.ChunkDoubleUpdate, "/my/array", [[0, 0], [1, 2]])
    again = pickle.loads(pickle.dumps(conflict))
    assert again == conflict
    assert again.conflict_type is ConflictType.ChunkDoubleUpdate
    assert again.conflicted_chunks == [[0, 0], [1, 2]]
    assert hash(again) == hash(conflict)
    assert "ChunkDoubleUpdate" in repr(conflict) and "/my/array" in repr(conflict)
    assert str(conflict) == "/my/array: Chunk double update"
    assert "metadata" in str(ConflictType.ZarrMetadataDoubleUpdate).lower()
    assert "ZarrMetadataDoubleUpdate" in repr(ConflictType.ZarrMetadataDoubleUpdate)
    assert Conflict(ConflictType.NewNodeInInvalidGroup, "/g").conflicted_chunks is None
    assert [int(t) for t in ConflictType] == list(range(1, 12))
    assert [int(v) for v in VersionSelection] == [0, 1, 2]


def test_errors_pickle(base: icechunk.Repository) -> None:
    ours, theirs = _pair(base)
    _array(theirs)[0, 0] = 1
    _array(ours)[0, 0] = 2
    tip = theirs.commit("theirs")
    with pytest.raises(icechunk.ConflictError) as conflict_info:
        ours.commit("ours")
    with pytest.raises(icechunk.RebaseFailedError) as rebase_info:
        ours.rebase(ConflictDetector())
    err = pickle.loads(pickle.dumps(conflict_info.value))
    assert type(err) is icechunk.ConflictError
    assert (err.expected_parent, err.actual_parent) == (ours.snapshot_id, tip)
    assert err.kind == ErrorKind.COMMIT_CONFLICT and str(err) == str(conflict_info.value)
    failed = pickle.loads(pickle.dumps(rebase_info.value))
    assert type(failed) is icechunk.RebaseFailedError
    assert isinstance(failed, icechunk.ConflictError)
    assert failed.snapshot == tip and failed.kind == ErrorKind.REBASE_FAILED
    assert failed.conflicts == rebase_info.value.conflicts
    assert failed.conflicts[0].conflicted_chunks == [[0, 0]]
    assert str(failed) == str(rebase_info.value)


@pytest.mark.parametrize("spec_version", [2], indirect=True)
def test_rebase_over_an_amended_commit_sees_its_changes(base: icechunk.Repository) -> None:
    """Rebase reads transaction logs: an amend's log must also cover the commit it replaced.

    Otherwise a chunk written by the amended commit is silently overwritten by a rebased
    session (icechunk merges the two logs when amending). Amend is spec 2 only.
    """
    ours = base.writable_session("main")
    _array(ours)[0, 0] = 2
    theirs = base.writable_session("main")
    _array(theirs)[0, 0] = 1
    theirs.commit("theirs")
    amender = base.writable_session("main")
    _root(amender).attrs["fixed"] = True
    amended = amender.amend("theirs, amended")
    with pytest.raises(icechunk.RebaseFailedError) as info:
        ours.rebase(ConflictDetector())
    assert info.value.snapshot == amended
    assert [(c.conflict_type, c.conflicted_chunks) for c in info.value.conflicts] == [
        (ConflictType.ChunkDoubleUpdate, [[0, 0]])
    ]


async def test_async_commit_conflict_and_rebase(base: icechunk.Repository) -> None:
    ours = await base.writable_session_async("main")
    theirs = await base.writable_session_async("main")
    _array(theirs)[:] = 3
    _array(ours)[:] = 2
    tip = await theirs.commit_async("theirs")
    with pytest.raises(icechunk.ConflictError):
        await ours.commit_async("ours")
    with pytest.raises(icechunk.RebaseFailedError) as info:
        await ours.rebase_async(ConflictDetector())
    (conflict,) = info.value.conflicts
    assert len(conflict.conflicted_chunks or []) == 100
    await ours.rebase_async(BasicConflictSolver(on_chunk_conflict=VersionSelection.UseOurs))
    assert ours.snapshot_id == tip
    await ours.commit_async("ours")
    assert (_read(base) == 2).all()
    history = [s.id async for s in base.ancestry(branch="main")]
    assert history[1] == tip
