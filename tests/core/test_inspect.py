"""``icechunk._core.inspect``: on-disk objects as plain dicts, and the history as a graph."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

import icechunk as ic
from icechunk._core.inspect import (
    ancestry_graph,
    inspect_manifest,
    inspect_repo_info,
    inspect_snapshot,
    inspect_transaction_log,
)
from icechunk._core.objects import RepoObjects
from icechunk._sync import sync
from icechunk.errors import FormatError, SnapshotNotFoundError


def _repo(spec_version: int = 2) -> tuple[RepoObjects, str, str]:
    config = ic.RepositoryConfig(inline_chunk_threshold_bytes=8)
    repo = ic.Repository.create(ic.in_memory_storage(), config=config, spec_version=spec_version)
    session = repo.writable_session("main")
    array = zarr.create_array(session.store, name="a", shape=(4,), chunks=(2,), dtype="i8")
    array[:2] = np.arange(2)  # 16 bytes: native
    first = session.commit("first")
    session = repo.writable_session("main")
    zarr.open_array(session.store, path="a")[2:3] = 7  # the rest of the chunk is the fill value
    second = session.commit("second")
    repo.create_tag("v1", first)
    repo.create_branch("dev", first)
    return repo._objects, first, second


def test_snapshot_view_lists_nodes_and_manifests() -> None:
    objects, first, _ = _repo()
    view = sync(inspect_snapshot(objects, first))
    assert view["id"] == first and view["commit_message"] == "first"
    assert view["header"]["file_type"] == "snapshot"
    assert view["header"]["spec_version"] == "2.0"
    nodes = {n["path"]: n for n in view["nodes"]}
    assert nodes["/"]["node_type"] == "group"
    assert nodes["/a"]["shape"] == [{"array_length": 4, "num_chunks": 2}]
    (mref,) = nodes["/a"]["manifest_refs"]
    assert mref["extents"] == [[0, 1]]
    assert [m["id"] for m in view["manifests"]] == [mref["id"]]
    assert view["flushed_at"].endswith("Z")


def test_manifest_view_counts_refs_by_kind() -> None:
    objects, _, second = _repo()
    (mref,) = next(
        n for n in sync(inspect_snapshot(objects, second))["nodes"] if n["path"] == "/a"
    )["manifest_refs"]
    view = sync(inspect_manifest(objects, mref["id"]))
    assert view["header"]["file_type"] == "manifest"
    assert (view["num_arrays"], view["total_chunk_refs"]) == (1, 2)
    assert view["total_native"] + view["total_inline"] == 2 and view["total_virtual"] == 0


def test_transaction_log_view_names_the_changed_chunks() -> None:
    objects, _, second = _repo()
    view = sync(inspect_transaction_log(objects, second))
    assert view["header"]["file_type"] == "transaction-log"
    assert [u["chunks"] for u in view["updated_chunks"]] == [[[1]]]
    assert view["new_arrays"] == []


def test_repo_info_view_and_its_spec_1_refusal() -> None:
    objects, first, second = _repo()
    view = sync(inspect_repo_info(objects))
    assert view["branches"] == {"dev": first, "main": second}
    assert view["tags"] == {"v1": first}
    newest = view["latest_updates"][0]  # the branch `dev`, created last
    assert newest["update_type"] == {"type": "BranchCreatedUpdate", "name": "dev"}
    assert "backup_path" not in newest and "backup_path" in view["latest_updates"][1]
    by_id = {s["id"]: s for s in view["snapshots"]}
    assert by_id[second]["parent_id"] == first and by_id[second]["message"] == "second"
    objects_v1, _, _ = _repo(spec_version=1)
    with pytest.raises(FormatError, match=r"at least version 2\.0"):
        sync(inspect_repo_info(objects_v1))


def test_missing_snapshot() -> None:
    objects, _, _ = _repo()
    with pytest.raises(SnapshotNotFoundError):
        sync(inspect_snapshot(objects, "0" * 20))


def test_ancestry_graph_draws_branches_and_tags() -> None:
    objects, first, second = _repo()
    text = str(sync(ancestry_graph(objects, plain=True)))
    assert "\x1b[" not in text  # plain: no ANSI colours
    lines = [line for line in text.splitlines() if "●" in line]
    assert second[:8] in lines[0] and "main" in lines[0] and "second" in lines[0]
    first_line = next(line for line in lines if first[:8] in line)
    assert "dev" in first_line and "v1" in first_line
    only_tag = str(sync(ancestry_graph(objects, tag="v1", plain=True)))
    assert second[:8] not in only_tag and first[:8] in only_tag
    with pytest.raises(ValueError, match="at most one of"):
        sync(ancestry_graph(objects, branch="main", tag="v1"))
