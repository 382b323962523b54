"""Print everything observable about an icechunk repository as one canonical JSON document.

Usage: ``dump_repo.py PATH`` or ``dump_repo.py PATH --diff FROM_SNAPSHOT TO_SNAPSHOT``

Runs unchanged under real icechunk 1.1.21 / 2.3.0 and under our implementation.  The document:

* ``branches`` / ``tags``: name -> snapshot id (deleted tags are absent);
* ``ancestry``: ``"branch/<name>"`` / ``"tag/<name>"`` -> newest-first list of
  ``{id, parent_id, message, metadata}``;
* ``snapshots``: for every snapshot in any ancestry, the store's sorted key list and every node
  reached by walking the zarr hierarchy: kind, the raw ``zarr.json`` parsed as JSON, the
  attributes, and for arrays shape, chunks, dtype, fill value, dimension names, the full data and
  the chunk type of every chunk in the grid;
* ``diffs``: for every non-root snapshot, ``Repository.diff`` from its parent; and
  ``diffs_from_root``: for every ref tip, the aggregated diff from the root snapshot;
* ``written_at`` and ``library``: informational only, tests do not compare them.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
from typing import Any

import numpy as np
import zarr
from common import chunk_type_name, emit, library_info, list_keys, open_repo, run_async
from zarr.core.buffer import default_buffer_prototype

LIST_LIMIT = 10_000  # arrays with more elements are dumped as base64 of their raw bytes


def snapshot_info(info: Any) -> dict[str, Any]:
    return {
        "id": info.id,
        "parent_id": info.parent_id,
        "message": info.message,
        "metadata": info.metadata,
    }


def diff_json(diff: Any) -> dict[str, Any]:
    moved = getattr(diff, "moved_nodes", None)  # absent in 1.x
    return {
        "new_groups": sorted(diff.new_groups),
        "new_arrays": sorted(diff.new_arrays),
        "deleted_groups": sorted(diff.deleted_groups),
        "deleted_arrays": sorted(diff.deleted_arrays),
        "updated_groups": sorted(diff.updated_groups),
        "updated_arrays": sorted(diff.updated_arrays),
        "updated_chunks": {
            path: sorted(list(c) for c in coords) for path, coords in diff.updated_chunks.items()
        },
        "moved_nodes": None if moved is None else sorted([a, b] for a, b in moved),
    }


async def _raw_metadata(store: Any, keys: list[str]) -> dict[str, Any]:
    out = {}
    for key in keys:
        buf = await store.get(key, prototype=default_buffer_prototype())
        out[key] = None if buf is None else json.loads(buf.to_bytes())
    return out


def array_data(arr: zarr.Array) -> dict[str, Any]:
    data = np.asarray(arr[...])
    if data.size <= LIST_LIMIT:
        return {"list": data.tolist()}
    raw = np.ascontiguousarray(data).tobytes()
    return {"base64": base64.b64encode(raw).decode(), "dtype": data.dtype.str}


def walk(group: zarr.Group, path: str) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = [(path, group)]
    for name, member in sorted(group.members(), key=lambda m: m[0]):
        child = f"{path.rstrip('/')}/{name}"
        if isinstance(member, zarr.Group):
            found.extend(walk(member, child))
        else:
            found.append((child, member))
    return found


def chunk_types(session: Any, path: str, arr: zarr.Array) -> dict[str, str]:
    grid = [range(-(-s // c)) for s, c in zip(arr.shape, arr.chunks, strict=True)]
    return {
        "/".join(map(str, coords)) or "()": chunk_type_name(session.chunk_type(path, list(coords)))
        for coords in itertools.product(*grid)
    }


def dump_snapshot(repo: Any, snapshot_id: str) -> dict[str, Any]:
    session = repo.readonly_session(snapshot_id=snapshot_id)
    store = session.store
    keys = list_keys(store)
    metadata_keys = [k for k in keys if k == "zarr.json" or k.endswith("/zarr.json")]
    raw = run_async(_raw_metadata(store, metadata_keys))
    nodes: dict[str, Any] = {}
    if "zarr.json" not in keys:  # e.g. the root snapshot: not even a root group yet
        return {"keys": keys, "nodes": nodes}
    for path, node in walk(zarr.open_group(store=store, mode="r"), "/"):
        key = "zarr.json" if path == "/" else f"{path[1:]}/zarr.json"
        entry: dict[str, Any] = {
            "zarr_json": raw.get(key),
            "attributes": dict(node.attrs),
        }
        if isinstance(node, zarr.Group):
            entry["kind"] = "group"
        else:
            entry.update(
                kind="array",
                shape=list(node.shape),
                chunks=list(node.chunks),
                dtype=str(node.dtype),
                fill_value=node.fill_value,
                dimension_names=node.metadata.dimension_names,
                data=array_data(node),
                chunk_types=chunk_types(session, path, node),
            )
        nodes[path] = entry
    return {"keys": keys, "nodes": nodes}


def dump(path: str) -> dict[str, Any]:
    repo = open_repo(path)
    branches = {b: repo.lookup_branch(b) for b in sorted(repo.list_branches())}
    tags = {t: repo.lookup_tag(t) for t in sorted(repo.list_tags())}
    refs = [("branch", b, {"branch": b}) for b in branches] + [("tag", t, {"tag": t}) for t in tags]
    ancestry: dict[str, list[dict[str, Any]]] = {}
    infos: dict[str, Any] = {}
    for kind, name, kwargs in refs:
        chain = list(repo.ancestry(**kwargs))
        ancestry[f"{kind}/{name}"] = [snapshot_info(i) for i in chain]
        infos.update((i.id, i) for i in chain)
    diffs = {
        sid: diff_json(repo.diff(from_snapshot_id=info.parent_id, to_snapshot_id=sid))
        for sid, info in sorted(infos.items())
        if info.parent_id is not None
    }
    root_ids = [i.id for i in infos.values() if i.parent_id is None]
    assert len(root_ids) == 1, root_ids
    diffs_from_root = {
        ref: diff_json(repo.diff(from_snapshot_id=root_ids[0], to_snapshot_id=chain[0]["id"]))
        for ref, chain in ancestry.items()
        if chain[0]["id"] != root_ids[0]
    }
    return {
        "library": library_info(),
        "written_at": {sid: info.written_at for sid, info in infos.items()},
        "branches": branches,
        "tags": tags,
        "ancestry": ancestry,
        "snapshots": {sid: dump_snapshot(repo, sid) for sid in sorted(infos)},
        "diffs": diffs,
        "diffs_from_root": diffs_from_root,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path")
    parser.add_argument("--diff", nargs=2, metavar=("FROM", "TO"))
    args = parser.parse_args()
    if args.diff:
        repo = open_repo(args.path)
        diff = repo.diff(from_snapshot_id=args.diff[0], to_snapshot_id=args.diff[1])
        emit({"library": library_info(), "diff": diff_json(diff)})
    else:
        emit(dump(args.path))


if __name__ == "__main__":
    main()
