"""Reading back what the pipeline committed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import xarray as xr

import icechunk


def open_repo(path: Path) -> icechunk.Repository:
    return icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))


def read_dataset(path: Path, branch: str = "main") -> xr.Dataset:
    """The dataset at the tip of ``branch``, loaded into memory."""
    session = open_repo(path).readonly_session(branch)
    return xr.open_zarr(session.store, consolidated=False, chunks=None).load()


def messages(path: Path, branch: str = "main") -> list[str]:
    """Commit messages on ``branch``, newest first."""
    return [info.message for info in open_repo(path).ancestry(branch=branch)]


def tip(path: Path, branch: str = "main") -> str:
    return open_repo(path).lookup_branch(branch)


def chunk_changes(path: Path, from_id: str, to_id: str) -> dict[str, Any]:
    """Which chunks of which arrays changed between two snapshots (ids aside)."""
    diff = open_repo(path).diff(from_snapshot_id=from_id, to_snapshot_id=to_id)
    return {
        "new_arrays": sorted(diff.new_arrays),
        "updated_arrays": sorted(diff.updated_arrays),
        "updated_chunks": {k: sorted(map(tuple, v)) for k, v in diff.updated_chunks.items()},
    }
