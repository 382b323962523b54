"""Expiration and garbage collection across implementations.

Usage:

* ``maintenance_repo.py write PATH --spec N``: create a repository, write a fixed history, expire
  the snapshots older than the fourth commit on ``main`` and garbage-collect with the same cutoff.
  Prints the commit ids by message, the messages of the expired snapshots and the GC counts.
* ``maintenance_repo.py dump PATH``: print what the repository holds: refs, every ref's ancestry
  (by message), the data of every snapshot in any ancestry, and the object count per prefix.

The history (``a`` is an 8-element array in chunks of 2, every commit rewrites all of it)::

    root - c0 (tag t1) - c1 - c2 - c3 - c4 (main)
                           \\
                            d1 (dev)

Runs unchanged under real icechunk 1.1.21 / 2.3.0 and under our implementation.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import numpy as np
import zarr
from common import commit, emit, library_info, supports_spec_version

import icechunk


def _config() -> Any:
    config = icechunk.RepositoryConfig.default()
    config.inline_chunk_threshold_bytes = 0  # every chunk is an object GC can delete
    return config


def _open(path: str) -> Any:
    return icechunk.Repository.open(icechunk.local_filesystem_storage(path))


def _write_commit(repo: Any, branch: str, value: int, message: str) -> str:
    session = repo.writable_session(branch)
    root = zarr.group(store=session.store, overwrite=False)
    root.attrs["commit"] = message
    arr = root.require_array("a", shape=(8,), chunks=(2,), dtype="i4", fill_value=-1)
    arr[:] = np.arange(8, dtype="i4") + value
    return commit(session, message)


def write(path: str, spec: int) -> dict[str, Any]:
    storage = icechunk.local_filesystem_storage(path)
    if supports_spec_version():
        repo = icechunk.Repository.create(storage, config=_config(), spec_version=spec)
    else:
        repo = icechunk.Repository.create(storage, config=_config())
    ids: dict[str, str] = {}
    for i in range(5):
        ids[f"c{i}"] = _write_commit(repo, "main", 100 * i, f"c{i}")
    repo.create_branch("dev", ids["c1"])
    ids["d1"] = _write_commit(repo, "dev", 1000, "d1")
    repo.create_tag("t1", ids["c0"])
    by_id = {v: k for k, v in ids.items()}
    cutoff = repo.lookup_snapshot(ids["c3"]).written_at
    expired = repo.expire_snapshots(cutoff)
    summary = repo.garbage_collect(cutoff)
    return {
        "library": library_info(),
        "ids": ids,
        "expired": sorted(by_id[x] for x in expired),
        "gc": {
            name: getattr(summary, name)
            for name in (
                "chunks_deleted",
                "manifests_deleted",
                "snapshots_deleted",
                "transaction_logs_deleted",
            )
        },
    }


def _count_objects(path: str) -> dict[str, int]:
    out = {}
    for prefix in ("chunks", "manifests", "snapshots", "transactions"):
        folder = os.path.join(path, prefix)
        out[prefix] = len(os.listdir(folder)) if os.path.isdir(folder) else 0
    return out


def dump(path: str) -> dict[str, Any]:
    repo = _open(path)
    branches = {b: repo.lookup_branch(b) for b in repo.list_branches()}
    tags = {t: repo.lookup_tag(t) for t in repo.list_tags()}
    ancestry: dict[str, list[str]] = {}
    snapshots: dict[str, Any] = {}
    refs = [("branch", b) for b in branches] + [("tag", t) for t in tags]
    for kind, name in refs:
        history = list(repo.ancestry(**{kind: name}))
        ancestry[f"{kind}/{name}"] = [info.message for info in history]
        for info in history:
            store = repo.readonly_session(snapshot_id=info.id).store
            if info.message in snapshots:
                continue
            try:
                group = zarr.open_group(store=store, mode="r")
            except (FileNotFoundError, KeyError, ValueError):
                snapshots[info.message] = None  # the root snapshot: no group yet
                continue
            snapshots[info.message] = {
                "attrs": dict(group.attrs),
                "a": np.asarray(group["a"][:]).tolist(),
            }
    return {
        "library": library_info(),
        "branches": sorted(branches),
        "tags": sorted(tags),
        "ancestry": ancestry,
        "snapshots": snapshots,
        "objects": _count_objects(path),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["write", "dump"])
    parser.add_argument("path")
    parser.add_argument("--spec", type=int, default=2)
    args = parser.parse_args()
    emit(write(args.path, args.spec) if args.command == "write" else dump(args.path))


if __name__ == "__main__":
    main()
