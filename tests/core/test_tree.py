"""``icechunk._core.tree.ReadTree``: one snapshot's nodes by path, with parsed metadata."""

from __future__ import annotations

import zarr

import icechunk as ic
from icechunk._core.tree import ReadTree
from icechunk._core.zarr_metadata import NodeMetadata
from icechunk._sync import sync
from icechunk.format.ids import parse_snapshot_id


def _tree() -> ReadTree:
    repo = ic.Repository.create(ic.in_memory_storage())
    session = repo.writable_session("main")
    root = zarr.group(session.store)
    root.create_group("g").create_array("a", shape=(5, 2), chunks=(2, 2), dtype="f4")[:2] = 1.0
    snapshot_id = session.commit("tree")
    snapshot = sync(repo._objects.load_snapshot(parse_snapshot_id(snapshot_id)))
    return ReadTree(snapshot)


def test_nodes_are_looked_up_by_absolute_path() -> None:
    tree = _tree()
    assert set(tree.by_path) == {"/", "/g", "/g/a"}
    assert tree.by_path["/g/a"].array is not None
    assert tree.by_path["/g"].array is None
    assert len(tree.manifest_files) == 1  # one chunk written: one manifest
    assert set(tree.manifest_files) == {m.id for m in tree.snapshot.manifest_files}


def test_node_meta_parses_once_and_caches() -> None:
    tree = _tree()
    meta = tree.node_meta(tree.by_path["/g/a"])
    assert meta == NodeMetadata(True, (5, 2), (2, 2), None)
    assert meta.num_chunks == (3, 1)
    assert tree.node_meta(tree.by_path["/g/a"]) is meta
    assert tree.node_meta(tree.by_path["/g"]) == NodeMetadata(is_array=False)
