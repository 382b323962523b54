"""``icechunk._core.commit.write_commit``: a change set becomes manifests, a log and a snapshot."""

from __future__ import annotations

import numpy as np
import zarr

import icechunk as ic
from icechunk._core.change_set import ChangeSet
from icechunk._core.chunk_refs import RefIndex, payload_at
from icechunk._core.commit import write_commit
from icechunk._core.payloads import InlinePayload
from icechunk._core.tree import Node, ReadTree
from icechunk._sync import sync
from icechunk.format.ids import encode_id, parse_snapshot_id


def _base() -> tuple[ic.Repository, ReadTree]:
    repo = ic.Repository.create(ic.in_memory_storage())
    s = repo.writable_session("main")
    zarr.create_array(s.store, name="a", shape=(4,), chunks=(2,), dtype="i4")[:] = 3
    sid = parse_snapshot_id(s.commit("base"))
    return repo, repo._objects.tree_for(sync(repo._objects.load_snapshot(sid)))


def _live(tree: ReadTree) -> list[Node]:
    return [
        Node(n.path, n.id, n.user_data, tree.node_meta(n), n, None)
        for n in sorted(tree.snapshot.nodes, key=lambda n: n.path)
    ]


def test_writes_snapshot_manifest_and_log_without_moving_the_branch() -> None:
    repo, base = _base()
    objects = repo._objects
    a = base.by_path["/a"].id
    cs = ChangeSet()
    cs.set_chunk(a, (1,), InlinePayload(np.full(2, 9, "<i4").tobytes()))
    snap, _ = sync(
        write_commit(
            objects, base, cs, _live(base), message="direct", props={"k": 1}, rewrite=False
        )
    )
    assert snap.id != base.snapshot.id
    assert snap.message == "direct"
    assert snap.metadata == {"k": 1}
    assert repo.lookup_branch("main") == encode_id(base.snapshot.id)  # nothing published

    stored = sync(objects.load_snapshot(snap.id))
    assert [n.path for n in stored.nodes] == ["/", "/a"]
    tree = objects.tree_for(stored)
    mref = tree.by_path["/a"].array.manifests  # type: ignore[union-attr]
    assert len(mref) == 1 and mref[0].object_id in tree.manifest_files
    view = sync(objects.manifest_view(mref[0].object_id))
    (array,) = view.decode().arrays
    assert array.node_id == a
    refs = array.refs
    index = RefIndex(refs)
    i = index.find((1,))
    assert i is not None and payload_at(refs, i) == InlinePayload(np.full(2, 9, "<i4").tobytes())
    assert index.find((0,)) is not None  # the untouched chunk is carried over

    log = sync(objects.load_transaction_log(snap.id))
    assert {k: [list(c) for c in v] for k, v in log.updated_chunks.items()} == {a: [[1]]}


def test_an_unchanged_array_keeps_its_manifest() -> None:
    repo, base = _base()
    snap, _ = sync(
        write_commit(
            repo._objects, base, ChangeSet(), _live(base), message="empty", props={}, rewrite=False
        )
    )
    before = base.by_path["/a"].array.manifests  # type: ignore[union-attr]
    after = {n.path: n for n in snap.nodes}["/a"].array.manifests  # type: ignore[union-attr]
    assert [m.object_id for m in after] == [m.object_id for m in before]
