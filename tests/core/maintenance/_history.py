"""A repository whose ``main`` has three commits, each writing one chunk of its own array."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import zarr

import icechunk as ic
from icechunk._core.objects import RepoObjects
from icechunk._sync import sync
from icechunk.format.ids import parse_snapshot_id


def history(spec_version: int = 2) -> tuple[RepoObjects, list[bytes]]:
    """``(objects, [initial, c1, c2, c3])``. Chunks are native (not inlined): 400 bytes each."""
    config = ic.RepositoryConfig(inline_chunk_threshold_bytes=0)
    repo = ic.Repository.create(ic.in_memory_storage(), config=config, spec_version=spec_version)
    ids = [parse_snapshot_id(repo.lookup_branch("main"))]
    for i in range(3):
        session = repo.writable_session("main")
        array = zarr.create_array(session.store, name=f"a{i}", shape=(100,), dtype="i4")
        array[:] = np.arange(100, dtype="i4") + i
        ids.append(parse_snapshot_id(session.commit(f"c{i + 1}")))
    return repo._objects, ids


def committed_at(objects: RepoObjects, snapshot_id: bytes) -> datetime:
    """The commit time of ``snapshot_id`` (microsecond precision)."""
    us = sync(objects.refs.snapshot_info(snapshot_id)).flushed_at
    return datetime.fromtimestamp(us / 1e6, UTC)
