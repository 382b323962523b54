"""Chunk storage statistics (``Repository.chunk_storage_stats``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from icechunk._core.refs import RefStoreV2
from icechunk.format.model import (
    ChunkKind,
    Manifest,
)

if TYPE_CHECKING:
    from icechunk._core.objects import RepoObjects
from icechunk._core.maintenance.common import ChunkStorageStats, _positive
from icechunk._core.maintenance.reachable import _Limits, _walk

# ---------------------------------------------------------------------------------------------
# statistics


async def chunk_storage_stats(
    repo: RepoObjects,
    *,
    max_snapshots_in_memory: int = 50,
    max_compressed_manifest_mem_bytes: int = 512 * 1024 * 1024,
    max_decoded_manifest_mem_bytes: int = 4 * 1024 * 1024 * 1024,
    max_concurrent_manifest_fetches: int = 500,
) -> ChunkStorageStats:
    """Chunk bytes referenced by every snapshot reachable from a branch or tag.

    Raises
    ------
    InvalidInputError
        A non-positive limit.
    """
    limits = _Limits(
        snapshots=_positive("max_snapshots_in_memory", max_snapshots_in_memory),
        manifest_bytes=_positive(
            "max_compressed_manifest_mem_bytes", max_compressed_manifest_mem_bytes
        ),
        manifest_fetches=_positive(
            "max_concurrent_manifest_fetches", max_concurrent_manifest_fetches
        ),
    )
    _positive("max_decoded_manifest_mem_bytes", max_decoded_manifest_mem_bytes)
    refs = repo.refs
    info = await refs.read() if isinstance(refs, RefStoreV2) else None
    if info is not None:
        tips = [r.snapshot_id for r in [*info.tags, *info.branches]]
    else:
        tips = list((await refs.tags()).values()) + list((await refs.branches()).values())
    native: dict[bytes, int] = {}
    virtual: dict[tuple[str, int, int], int] = {}
    inline = 0

    def account(manifest: Manifest) -> None:
        nonlocal inline
        for array in manifest.arrays:
            r = array.refs
            for i in np.flatnonzero(r.kind == ChunkKind.NATIVE):
                native.setdefault(r.chunk_id[i].tobytes(), int(r.length[i]))
            for i in np.flatnonzero(r.kind == ChunkKind.VIRTUAL):
                loc = r.location[i] if r.location else None
                key = (loc or "", int(r.offset[i]), int(r.length[i]))
                virtual.setdefault(key, int(r.length[i]))
            for i in np.flatnonzero(r.kind == ChunkKind.INLINE):
                data = r.inline[i] if r.inline else None
                inline += len(data) if data is not None else int(r.length[i])

    await _walk(repo, tips, limits, None, on_manifest=account, info=info)
    return ChunkStorageStats(sum(native.values()), sum(virtual.values()), inline)
