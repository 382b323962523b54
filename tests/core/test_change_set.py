"""``icechunk._core.change_set.ChangeSet``: staged edits and the merge of forks."""

from __future__ import annotations

import pytest

from icechunk._core.change_set import ChangeSet, NodeChange
from icechunk._core.payloads import InlinePayload
from icechunk.errors import SessionStateError

A = b"\xaa" * 8
B = b"\xbb" * 8
META = b'{"zarr_format": 3, "node_type": "group"}'


def _new(path: str, node_id: bytes, user_data: bytes = META) -> NodeChange:
    return NodeChange(node_id, path, user_data, is_array=False, is_new=True)


def test_staging_and_lookups() -> None:
    cs = ChangeSet()
    assert cs.is_empty()
    cs.nodes["/g"] = _new("/g", A)
    cs.deleted["/old"] = (B, True)
    cs.set_chunk(A, (0,), InlinePayload(b"x"))
    cs.set_chunk(A, (1,), None)
    assert not cs.is_empty()
    assert cs.node_state("/g") == cs.nodes["/g"]
    assert cs.node_state("/old") == (B, True)
    assert cs.node_state("/nothing") is None
    assert cs.chunk_state(A, (0,)) == (True, InlinePayload(b"x"))
    assert cs.chunk_state(A, (1,)) == (True, None)  # staged deletion
    assert cs.chunk_state(A, (2,)) == (False, None)
    assert cs.node_id_at("/g", {}) == A
    assert cs.node_id_at("/old", {}) is None


def test_an_empty_chunk_map_is_still_empty() -> None:
    cs = ChangeSet(chunks={A: {}})
    assert cs.is_empty()


def test_copy_is_independent() -> None:
    cs = ChangeSet()
    cs.set_chunk(A, (0,), InlinePayload(b"x"))
    copy = cs.copy()
    copy.set_chunk(A, (1,), InlinePayload(b"y"))
    copy.nodes["/g"] = _new("/g", A)
    assert cs.chunk_state(A, (1,)) == (False, None)
    assert "/g" not in cs.nodes


def test_merge_other_wins_and_reports_overlaps() -> None:
    mine, theirs = ChangeSet(), ChangeSet()
    mine.set_chunk(A, (0,), InlinePayload(b"mine"))
    mine.set_chunk(A, (1,), InlinePayload(b"same"))
    theirs.set_chunk(A, (0,), InlinePayload(b"theirs"))
    theirs.set_chunk(A, (1,), InlinePayload(b"same"))
    theirs.set_chunk(A, (2,), InlinePayload(b"only theirs"))
    overlaps = mine.merge(theirs, node_path=lambda _: "/arr")
    assert overlaps == ["`/arr` [0]"]  # equal bytes do not overlap
    assert mine.chunk_state(A, (0,)) == (True, InlinePayload(b"theirs"))
    assert mine.chunk_state(A, (2,)) == (True, InlinePayload(b"only theirs"))


def test_merge_overlap_error_changes_nothing() -> None:
    mine, theirs = ChangeSet(), ChangeSet()
    mine.set_chunk(A, (0,), InlinePayload(b"mine"))
    theirs.set_chunk(A, (0,), InlinePayload(b"theirs"))
    with pytest.raises(SessionStateError, match="different data to the same chunks"):
        mine.merge(theirs, on_overlap="error")
    assert mine.chunk_state(A, (0,)) == (True, InlinePayload(b"mine"))
    assert mine.merge(theirs, on_overlap="ignore") == []
    with pytest.raises(ValueError, match="on_overlap"):
        mine.merge(theirs, on_overlap="sometimes")


def test_identical_creations_merge_into_one_node_different_ones_conflict() -> None:
    mine, theirs = ChangeSet(), ChangeSet()
    mine.nodes["/g"] = _new("/g", A)
    theirs.nodes["/g"] = _new("/g", B)
    theirs.set_chunk(B, (0,), InlinePayload(b"x"))
    mine.merge(theirs)
    assert mine.nodes["/g"].node_id == A  # this side's node is kept
    assert mine.chunk_state(A, (0,)) == (True, InlinePayload(b"x"))  # with the fork's chunks

    other = ChangeSet()
    other.nodes["/g"] = _new("/g", B, b'{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    with pytest.raises(SessionStateError, match="both sessions created `/g` with different"):
        mine.merge(other)


def test_delete_versus_modify_conflicts() -> None:
    mine, theirs = ChangeSet(), ChangeSet()
    mine.deleted["/a"] = (A, True)
    theirs.set_chunk(A, (0,), InlinePayload(b"x"))
    with pytest.raises(SessionStateError, match="`/a` was deleted in one session"):
        mine.merge(theirs)
    assert mine.chunks == {}


def test_changes_staged_before_the_fork_do_not_conflict() -> None:
    parent = ChangeSet()
    parent.set_chunk(A, (0,), InlinePayload(b"before fork"))
    fork_base = parent.copy()
    fork = ChangeSet()
    fork.set_chunk(A, (0,), InlinePayload(b"fork rewrote it"))
    assert parent.merge(fork, on_overlap="error", other_base=fork_base) == []
    assert parent.chunk_state(A, (0,)) == (True, InlinePayload(b"fork rewrote it"))
