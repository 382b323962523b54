"""``icechunk._core.diff.diff_snapshots``: what changed from an ancestor to a descendant."""

from __future__ import annotations

import pytest
import zarr

import icechunk as ic
from icechunk._core.diff import diff_snapshots
from icechunk._sync import sync
from icechunk.errors import InvalidInputError
from icechunk.format.ids import parse_snapshot_id


def _history() -> tuple[ic.Repository, list[bytes]]:
    repo = ic.Repository.create(ic.in_memory_storage())
    ids = []
    s = repo.writable_session("main")
    root = zarr.group(s.store)
    root.create_array("a", shape=(6,), chunks=(2,), dtype="i4")[:] = 0
    root.create_group("g")
    ids.append(parse_snapshot_id(s.commit("one")))
    s = repo.writable_session("main")
    root = zarr.open_group(s.store)
    zarr.open_array(s.store, path="a")[0:2] = 1
    root.create_array("tmp", shape=(2,), chunks=(2,), dtype="i4")
    root.create_group("h")
    ids.append(parse_snapshot_id(s.commit("two")))
    s = repo.writable_session("main")
    zarr.open_array(s.store, path="a")[4:6] = 2
    del zarr.open_group(s.store)["tmp"]  # created and deleted within the range
    del zarr.open_group(s.store)["g"]
    ids.append(parse_snapshot_id(s.commit("three")))
    return repo, ids


def test_changes_aggregate_over_the_whole_range() -> None:
    repo, (one, _, three) = _history()
    diff = sync(diff_snapshots(repo._objects, one, three))
    assert diff.new_groups == {"/h"}
    assert diff.new_arrays == set()  # /tmp was created and deleted inside the range
    assert diff.deleted_groups == {"/g"}
    assert diff.deleted_arrays == set()
    assert diff.updated_chunks == {"/a": [[0], [2]]}


def test_one_commit_and_an_empty_range() -> None:
    repo, (one, two, _) = _history()
    diff = sync(diff_snapshots(repo._objects, one, two))
    assert diff.new_arrays == {"/tmp"}
    assert diff.updated_chunks == {"/a": [[0]]}
    same = sync(diff_snapshots(repo._objects, two, two))
    assert same.is_empty()


def test_start_must_be_an_ancestor_of_end() -> None:
    repo, (one, _, three) = _history()
    with pytest.raises(InvalidInputError, match="is not an ancestor of"):
        sync(diff_snapshots(repo._objects, three, one))
