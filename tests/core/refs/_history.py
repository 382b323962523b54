"""A repository with two commits on ``main``, for the ref store tests."""

from __future__ import annotations

import zarr

import icechunk as ic
from icechunk._core.objects import RepoObjects
from icechunk.format.ids import parse_snapshot_id


def two_commits(spec_version: int) -> tuple[RepoObjects, bytes, bytes, bytes]:
    """``(objects, initial, first, second)``: the snapshot ids of ``main``, oldest first."""
    repo = ic.Repository.create(ic.in_memory_storage(), spec_version=spec_version)
    initial = parse_snapshot_id(repo.lookup_branch("main"))
    ids = []
    for value in (1, 2):
        session = repo.writable_session("main")
        zarr.create_array(session.store, name=f"a{value}", shape=(1,), dtype="i1")
        ids.append(parse_snapshot_id(session.commit(f"commit {value}")))
    return repo._objects, initial, ids[0], ids[1]
