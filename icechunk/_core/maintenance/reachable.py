"""What is reachable from the refs: the walk shared by garbage collection and statistics."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from icechunk._core.cache import default_cache
from icechunk.errors import (
    ErrorKind,
    SnapshotNotFoundError,
)
from icechunk.format import decode_manifest, layout
from icechunk.format.ids import encode_id
from icechunk.format.model import (
    ChunkKind,
    Manifest,
    RepoInfo,
)

if TYPE_CHECKING:
    from icechunk._core.objects import RepoObjects
from icechunk._core.maintenance.common import Progress

# ---------------------------------------------------------------------------------------------
# reachability


class _ByteBudget:
    """Admit work items while the sum of their sizes stays within a budget.

    One item larger than the whole budget is still admitted, alone.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self.cond = asyncio.Condition()

    async def acquire(self, n: int) -> None:
        async with self.cond:
            await self.cond.wait_for(lambda: self.used == 0 or self.used + n <= self.budget)
            self.used += n

    async def release(self, n: int) -> None:
        async with self.cond:
            self.used -= n
            self.cond.notify_all()


@dataclass(slots=True)
class _Limits:
    snapshots: int = 50
    manifest_bytes: int = 512 * 1024 * 1024
    manifest_fetches: int = 500
    deletes: int = 10
    consecutive_failures: int = 50
    listings: int = 4


async def _load_manifest(repo: RepoObjects, manifest_id: bytes) -> Manifest:
    cached = default_cache.get("manifest", manifest_id)
    if isinstance(cached, Manifest):
        return cached
    key = layout.manifest_key(manifest_id)
    return decode_manifest(await repo.storage.get(key), key)


def _native_chunk_ids(manifest: Manifest) -> set[bytes]:
    out: set[bytes] = set()
    for array in manifest.arrays:
        refs = array.refs
        if not len(refs):
            continue
        ids = np.ascontiguousarray(refs.chunk_id[refs.kind == ChunkKind.NATIVE]).tobytes()
        out.update(ids[i : i + 12] for i in range(0, len(ids), 12))
    return out


@dataclass(slots=True)
class _Reachable:
    snapshots: set[bytes] = field(default_factory=set)
    manifests: set[bytes] = field(default_factory=set)
    chunks: set[bytes] = field(default_factory=set)


async def _walk(
    repo: RepoObjects,
    tips: Iterable[bytes],
    limits: _Limits,
    progress: Progress | None,
    on_manifest: Callable[[Manifest], None] | None = None,
    info: RepoInfo | None = None,
    singles: Iterable[bytes] = (),
    known: _Reachable | None = None,
) -> _Reachable:
    """Every snapshot reachable from ``tips`` (with its ancestors), their manifests and chunks.

    ``singles`` are kept without their ancestors. Parentage comes from ``info`` when given
    (spec 2: one read of the ``repo`` object for the whole walk), else from the ref store. The
    result includes ``known``, a previous result whose snapshots and manifests are not visited
    again.
    """
    if known is None:
        out = _Reachable()
    else:
        out = _Reachable(set(known.snapshots), set(known.manifests), set(known.chunks))
    fresh: list[bytes] = []
    parents = {rec.id: rec.parent_id for rec in info.snapshots} if info is not None else None
    for tip in tips:
        if parents is not None:
            current: bytes | None = tip
            while current is not None and current not in out.snapshots:
                if current not in parents:
                    raise SnapshotNotFoundError(
                        f"snapshot id not found `{encode_id(current)}`",
                        ErrorKind.SNAPSHOT_NOT_FOUND,
                    )
                out.snapshots.add(current)
                fresh.append(current)
                current = parents[current]
            continue
        if tip in out.snapshots:
            continue
        for rec in await repo.refs.ancestry(tip):
            if rec.id in out.snapshots:
                break
            out.snapshots.add(rec.id)
            fresh.append(rec.id)
    for sid in singles:  # after the walk, which stops at snapshots already seen
        if sid not in out.snapshots:
            out.snapshots.add(sid)
            fresh.append(sid)
    if progress is not None:
        progress("find_snapshots", len(fresh), len(fresh))

    sizes: dict[bytes, int] = {}
    sem = asyncio.Semaphore(limits.snapshots)

    async def manifests_of(sid: bytes) -> None:
        async with sem:
            snap = await repo.load_snapshot(sid)
        for m in snap.manifest_files:
            if m.id not in out.manifests:
                sizes.setdefault(m.id, m.size_bytes)

    await asyncio.gather(*(manifests_of(s) for s in fresh))
    out.manifests |= set(sizes)
    total = len(sizes)
    done = 0
    if progress is not None:
        progress("scan_manifests", 0, total)
    budget = _ByteBudget(limits.manifest_bytes)
    fetches = asyncio.Semaphore(limits.manifest_fetches)

    async def scan(mid: bytes) -> None:
        nonlocal done
        size = max(1, sizes[mid])
        await budget.acquire(size)
        try:
            async with fetches:
                manifest = await _load_manifest(repo, mid)
            out.chunks |= _native_chunk_ids(manifest)
            if on_manifest is not None:
                on_manifest(manifest)
        finally:
            await budget.release(size)
        done += 1
        if progress is not None:
            progress("scan_manifests", done, total)

    await asyncio.gather(*(scan(m) for m in sorted(sizes)))
    return out
