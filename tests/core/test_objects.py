"""``icechunk._core.objects.RepoObjects``: the object service behind ``Repository``."""

from __future__ import annotations

import pytest
import zarr

import icechunk as ic
from icechunk._core.objects import RepoObjects
from icechunk._core.tree import ReadTree
from icechunk._sync import sync
from icechunk.errors import SnapshotNotFoundError
from icechunk.format.ids import parse_snapshot_id


class _Refused(Exception):
    pass


def _repo_with_array() -> tuple[ic.Repository, str]:
    repo = ic.Repository.create(ic.in_memory_storage())
    session = repo.writable_session("main")
    zarr.create_array(session.store, name="a", shape=(4,), chunks=(2,), dtype="i4")[:] = 1
    return repo, session.commit("first")


def test_every_commit_path_passes_through_check_writable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo, first = _repo_with_array()

    def refuse(self: RepoObjects) -> None:
        raise _Refused

    monkeypatch.setattr(RepoObjects, "check_writable", refuse)
    for write in (
        lambda s: s.commit("second"),
        lambda s: s.amend("amended"),
        lambda s: s.flush("flushed"),
    ):
        session = repo.writable_session("main")
        zarr.open_array(session.store, path="a")[:2] = 7
        with pytest.raises(_Refused):
            write(session)
    with pytest.raises(_Refused):
        repo.rewrite_manifests("rewrite", branch="main")
    assert repo.lookup_branch("main") == first
    assert next(s.id for s in repo.ancestry(branch="main")) == first


def test_snapshots_and_trees_come_from_the_shared_cache() -> None:
    repo, first = _repo_with_array()
    objects = repo._objects
    sid = parse_snapshot_id(first)
    snap = sync(objects.load_snapshot(sid))
    assert sync(objects.load_snapshot(sid)) is snap
    tree = objects.tree_for(snap)
    assert isinstance(tree, ReadTree) and objects.tree_for(snap) is tree
    assert set(tree.by_path) == {"/", "/a"}
    assert tree.node_meta(tree.by_path["/a"]).is_array


def test_resolve_names_exactly_one_ref() -> None:
    repo, first = _repo_with_array()
    objects = repo._objects
    assert sync(objects.resolve("main", None, None)) == parse_snapshot_id(first)
    with pytest.raises(ValueError, match="one of branch, tag, or snapshot_id"):
        sync(objects.resolve("main", "t", None))
    with pytest.raises(SnapshotNotFoundError):
        sync(objects.load_snapshot(b"\0" * 12))


def test_chunk_bytes_are_served_by_fetch_payload() -> None:
    repo, first = _repo_with_array()
    objects = repo._objects
    snap = sync(objects.load_snapshot(parse_snapshot_id(first)))
    node = objects.tree_for(snap).by_path["/a"]
    assert node.array is not None
    (mref,) = node.array.manifests
    payload = sync(objects.manifest_ref(mref.object_id, node.id, None, (1,)))
    assert payload is not None
    data = sync(objects.fetch_payload(payload, None))
    session = repo.readonly_session(snapshot_id=first)
    assert data == sync(session.get_chunk("/a", (1,), None))
    assert data[2:5] == sync(objects.fetch_payload(payload, ic.storage.RangeRequest(2, 5)))
    assert sync(objects.manifest_ref(mref.object_id, node.id, None, (9,))) is None
