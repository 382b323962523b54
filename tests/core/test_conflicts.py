"""``icechunk._core.conflicts``: detecting a change set's conflicts with one commit, and solvers."""

from __future__ import annotations

import pytest
import zarr

import icechunk as ic
from icechunk._core.change_set import ChangeSet
from icechunk._core.conflicts import (
    BasicConflictSolver,
    ConflictDetector,
    ConflictType,
    VersionSelection,
    detect_conflicts,
)
from icechunk._core.payloads import InlinePayload
from icechunk._core.tree import ReadTree
from icechunk._sync import sync
from icechunk.errors import RebaseFailedError
from icechunk.format.ids import parse_snapshot_id
from icechunk.format.model import TransactionLog


def _their_commit(
    edit: str,
) -> tuple[ReadTree, TransactionLog, ReadTree, bytes]:
    """A base commit with array ``/a`` (4 chunks), then a commit that does ``edit`` to it."""
    repo = ic.Repository.create(ic.in_memory_storage())
    session = repo.writable_session("main")
    root = zarr.group(session.store)
    root.create_array("a", shape=(8,), chunks=(2,), dtype="i4")[:] = 1
    root.create_group("g")
    base_id = parse_snapshot_id(session.commit("base"))
    session = repo.writable_session("main")
    if edit == "chunk":
        zarr.open_array(session.store, path="a")[0:2] = 5
    elif edit == "delete":
        zarr.open_group(session.store).__delitem__("a")
    elif edit == "attrs":
        zarr.open_group(session.store, path="g").attrs["k"] = 1
    their_id = parse_snapshot_id(session.commit(edit))
    objects = repo._objects
    base = objects.tree_for(sync(objects.load_snapshot(base_id)))
    theirs = objects.tree_for(sync(objects.load_snapshot(their_id)))
    return base, sync(objects.load_transaction_log(their_id)), theirs, their_id


def test_chunk_double_update_names_only_the_chunks_both_wrote() -> None:
    base, tx, theirs, _ = _their_commit("chunk")
    a = base.by_path["/a"].id
    cs = ChangeSet()
    cs.set_chunk(a, (0,), InlinePayload(b"ours"))
    cs.set_chunk(a, (3,), InlinePayload(b"ours"))
    conflicts = detect_conflicts(cs, base, tx, theirs)
    assert [(c.conflict_type, c.path, c.conflicted_chunks) for c in conflicts] == [
        (ConflictType.ChunkDoubleUpdate, "/a", [[0]])
    ]
    disjoint = ChangeSet()
    disjoint.set_chunk(a, (3,), InlinePayload(b"ours"))
    assert detect_conflicts(disjoint, base, tx, theirs) == []


def test_chunks_written_in_an_array_they_deleted() -> None:
    base, tx, theirs, _ = _their_commit("delete")
    cs = ChangeSet()
    cs.set_chunk(base.by_path["/a"].id, (1,), InlinePayload(b"ours"))
    conflicts = detect_conflicts(cs, base, tx, theirs)
    assert [(c.conflict_type, c.path) for c in conflicts] == [
        (ConflictType.ChunksUpdatedInDeletedArray, "/a")
    ]


def test_deleting_what_they_updated() -> None:
    base, tx, theirs, _ = _their_commit("chunk")
    cs = ChangeSet()
    cs.deleted["/a"] = (base.by_path["/a"].id, True)
    assert [c.conflict_type for c in detect_conflicts(cs, base, tx, theirs)] == [
        ConflictType.DeleteOfUpdatedArray
    ]
    base, tx, theirs, _ = _their_commit("attrs")
    cs = ChangeSet()
    cs.deleted["/g"] = (base.by_path["/g"].id, False)
    assert [c.conflict_type for c in detect_conflicts(cs, base, tx, theirs)] == [
        ConflictType.DeleteOfUpdatedGroup
    ]


def test_detector_refuses_and_basic_solver_selects_a_version() -> None:
    base, tx, theirs, their_id = _their_commit("chunk")
    a = base.by_path["/a"].id
    cs = ChangeSet()
    cs.set_chunk(a, (0,), InlinePayload(b"ours"))
    cs.set_chunk(a, (2,), InlinePayload(b"ours too"))
    conflicts = detect_conflicts(cs, base, tx, theirs)

    with pytest.raises(RebaseFailedError):
        ConflictDetector()._resolve(cs, base, conflicts, their_id)
    ConflictDetector()._resolve(cs, base, [], their_id)  # nothing to refuse

    with pytest.raises(RebaseFailedError):
        BasicConflictSolver(on_chunk_conflict=VersionSelection.Fail)._resolve(
            cs, base, conflicts, their_id
        )
    assert cs.chunk_state(a, (0,)) == (True, InlinePayload(b"ours"))  # untouched on failure

    BasicConflictSolver(on_chunk_conflict=VersionSelection.UseOurs)._resolve(
        cs, base, conflicts, their_id
    )
    assert cs.chunk_state(a, (0,)) == (True, InlinePayload(b"ours"))
    BasicConflictSolver(on_chunk_conflict=VersionSelection.UseTheirs)._resolve(
        cs, base, conflicts, their_id
    )
    assert cs.chunk_state(a, (0,)) == (False, None)  # ours dropped: theirs shows through
    assert cs.chunk_state(a, (2,)) == (True, InlinePayload(b"ours too"))


def test_basic_solver_can_refuse_deletes_of_updated_arrays() -> None:
    base, tx, theirs, their_id = _their_commit("chunk")
    cs = ChangeSet()
    cs.deleted["/a"] = (base.by_path["/a"].id, True)
    conflicts = detect_conflicts(cs, base, tx, theirs)
    BasicConflictSolver()._resolve(cs, base, conflicts, their_id)  # default: the delete wins
    with pytest.raises(RebaseFailedError):
        BasicConflictSolver(fail_on_delete_of_updated_array=True)._resolve(
            cs, base, conflicts, their_id
        )
