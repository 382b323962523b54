"""Garbage collection (``Repository.garbage_collect``)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Final

from icechunk._core.cache import default_cache
from icechunk._core.refs import RefStoreV2
from icechunk.errors import (
    ErrorKind,
    InvalidInputError,
    PreconditionFailedError,
    StorageError,
)
from icechunk.format import layout
from icechunk.format.ids import INITIAL_SNAPSHOT_ID, decode_id
from icechunk.format.model import (
    RepoInfo,
    SnapshotInfoRecord,
    UpdateRecord,
)

if TYPE_CHECKING:
    from icechunk._core.objects import RepoObjects
from icechunk._core.maintenance.common import (
    _DELETE_BATCH,
    _MAX_ATTEMPTS,
    _MAX_ERRORS_KEPT,
    GCSummary,
    Progress,
    _collapse,
    _positive,
    _require_online,
    _Restart,
    cutoff_us,
)
from icechunk._core.maintenance.reachable import _Limits, _walk

# ---------------------------------------------------------------------------------------------
# garbage collection


@dataclass(slots=True)
class _Deleter:
    """Deletes listed objects in batches, counting successes and failures."""

    repo: RepoObjects
    limits: _Limits
    dry_run: bool
    progress: Progress | None
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    consecutive_failures: int = 0

    async def run(
        self, phase: str, prefix: str, size: int, keep: set[bytes], cutoff: int
    ) -> tuple[int, int]:
        """Delete the objects under ``prefix`` not in ``keep`` and created before ``cutoff``.

        Returns ``(objects deleted, bytes deleted)``; in a dry run, what would be deleted.
        """
        doomed: list[tuple[str, int]] = []
        async for obj in self.repo.storage.list(prefix):
            name = obj.key[len(prefix) :]
            try:
                oid = decode_id(name, size)
            except InvalidInputError:
                continue  # not an object this library wrote: never touch it
            created = cutoff_us(obj.created_at, "created_at")
            if created < cutoff and oid not in keep:
                doomed.append((obj.key, obj.size_bytes))
        total = len(doomed)
        if self.progress is not None:
            self.progress(phase, 0, total)
        if self.dry_run or not doomed:
            if self.progress is not None and total:
                self.progress(phase, total, total)
            return total, sum(s for _, s in doomed)
        batches = [doomed[i : i + _DELETE_BATCH] for i in range(0, total, _DELETE_BATCH)]
        sem = asyncio.Semaphore(self.limits.deletes)
        deleted = 0
        nbytes = 0

        async def one(batch: list[tuple[str, int]]) -> None:
            nonlocal deleted, nbytes
            async with sem:
                try:
                    await self.repo.storage.delete([k for k, _ in batch])
                except StorageError as e:
                    self.failed += len(batch)
                    self.consecutive_failures += 1
                    message = str(e)
                    if message not in self.errors and len(self.errors) < _MAX_ERRORS_KEPT:
                        self.errors.append(message)
                    if self.consecutive_failures >= self.limits.consecutive_failures:
                        raise StorageError(
                            f"garbage collection gave up after {self.consecutive_failures} "
                            f"failed delete requests in a row; last error: {message}",
                            ErrorKind.STORAGE,
                        ) from e
                    return
                self.consecutive_failures = 0
                for key, _ in batch:
                    _forget(phase, decode_id(key[len(prefix) :], size))
                deleted += len(batch)
                nbytes += sum(s for _, s in batch)
                if self.progress is not None:
                    self.progress(phase, deleted, total)

        await asyncio.gather(*(one(b) for b in batches))
        return deleted, nbytes


_CACHE_KINDS: Final = {
    "snapshots": ("snapshot", "tree"),
    "manifests": ("manifest",),
    "transaction_logs": ("txlog",),
}


def _forget(phase: str, object_id: bytes) -> None:
    """Make the process-wide cache miss a deleted object, so later reads fail cleanly.

    The cache has no removal; an entry whose value is ``None`` reads as a miss.
    """
    for kind in _CACHE_KINDS.get(phase, ()):
        if default_cache.get(kind, object_id) is not None:
            default_cache.put(kind, object_id, None, 0)


async def garbage_collect(
    repo: RepoObjects,
    delete_object_older_than: datetime,
    *,
    dry_run: bool = False,
    max_snapshots_in_memory: int = 50,
    max_compressed_manifest_mem_bytes: int = 512 * 1024 * 1024,
    max_decoded_manifest_mem_bytes: int = 4 * 1024 * 1024 * 1024,
    max_concurrent_manifest_fetches: int = 500,
    max_concurrent_deletes: int = 10,
    max_consecutive_delete_failures: int = 50,
    max_concurrent_listings: int | None = None,
    progress: Progress | None = None,
) -> GCSummary:
    """Delete the objects unreachable from every branch and tag created before the cutoff.

    See the module docstring for the rules. ``max_decoded_manifest_mem_bytes`` and
    ``max_concurrent_listings`` are validated and accepted for API compatibility: decoded
    manifests are released as soon as they are scanned (the compressed budget and the fetch
    concurrency bound them), and the four object prefixes are listed one after the other.

    Parameters
    ----------
    progress
        Optional ``(phase, done, total)`` callback. Phases, in order: ``find_snapshots``,
        ``scan_manifests``, ``update_repo_info`` (spec 2, not in a dry run), then
        ``snapshots``, ``transaction_logs``, ``manifests``, ``chunks`` (objects deleted so far
        of those to delete). A restart (see the module docstring) repeats the first phases.

    Raises
    ------
    InvalidInputError
        Bad arguments (a non-datetime cutoff, a non-positive limit).
    ReadOnlyError
        The repository (spec 2) is not online.
    PreconditionFailedError
        The refs kept changing under the collection.
    StorageError
        ``max_consecutive_delete_failures`` delete requests failed in a row.
    """
    cutoff = cutoff_us(delete_object_older_than, "delete_object_older_than")
    limits = _Limits(
        snapshots=_positive("max_snapshots_in_memory", max_snapshots_in_memory),
        manifest_bytes=_positive(
            "max_compressed_manifest_mem_bytes", max_compressed_manifest_mem_bytes
        ),
        manifest_fetches=_positive(
            "max_concurrent_manifest_fetches", max_concurrent_manifest_fetches
        ),
        deletes=_positive("max_concurrent_deletes", max_concurrent_deletes),
        consecutive_failures=_positive(
            "max_consecutive_delete_failures", max_consecutive_delete_failures
        ),
        listings=4
        if max_concurrent_listings is None
        else _positive("max_concurrent_listings", max_concurrent_listings),
    )
    _positive("max_decoded_manifest_mem_bytes", max_decoded_manifest_mem_bytes)
    await _require_online(repo, "garbage collect")
    for _ in range(_MAX_ATTEMPTS):
        try:
            return await _gc_attempt(repo, cutoff, limits, dry_run, progress)
        except _Restart:
            continue
    raise PreconditionFailedError(
        f"garbage collection gave up after {_MAX_ATTEMPTS} attempts: the refs kept changing",
        ErrorKind.PRECONDITION_FAILED,
    )


async def _gc_attempt(
    repo: RepoObjects, cutoff: int, limits: _Limits, dry_run: bool, progress: Progress | None
) -> GCSummary:
    refs = repo.refs
    info: RepoInfo | None = None
    if isinstance(refs, RefStoreV2):
        created: dict[bytes, int] = {}
        async for obj in repo.storage.list(layout.SNAPSHOTS):
            try:
                sid = decode_id(obj.key[len(layout.SNAPSHOTS) :], 12)
            except InvalidInputError:
                continue
            created[sid] = cutoff_us(obj.created_at, "created_at")
        info = await refs.read()
        # snapshots the repo object knows that are too new to delete (or not listed yet) are
        # kept with their manifests and chunks, but not their ancestors: if an ancestor is
        # dropped, the repo update re-parents them over it
        extra = [
            rec.id for rec in info.snapshots if rec.id not in created or created[rec.id] >= cutoff
        ]
        tips = [r.snapshot_id for r in info.tags] + [r.snapshot_id for r in info.branches]
        reach = await _walk(repo, tips, limits, progress, info=info, singles=extra)
        if not dry_run:
            if progress is not None:
                progress("update_repo_info", 0, 1)
            start_ids = {rec.id for rec in info.snapshots}
            info = await refs.update(_gc_repo_update(reach.snapshots, info))
            if progress is not None:
                progress("update_repo_info", 1, 1)
            # snapshots committed while we walked are kept: keep what they reference too, in
            # case the cutoff is more recent than they are
            added = [r.id for r in info.snapshots if r.id not in start_ids]
            if added:
                reach = await _walk(repo, [], limits, progress, singles=added, known=reach)
    else:
        tips = list((await refs.tags()).values()) + list((await refs.branches()).values())
        reach = await _walk(repo, tips, limits, progress)
        if not dry_run:
            # refs created or moved while we walked (new commits, a branch re-created on an
            # old snapshot...) may reach snapshots we are about to delete: walk them too, until
            # the refs hold still
            for _ in range(_MAX_ATTEMPTS):
                now = list((await refs.tags()).values()) + list((await refs.branches()).values())
                moved = [t for t in now if t not in reach.snapshots]
                if not moved:
                    break
                reach = await _walk(repo, moved, limits, progress, known=reach)
            else:
                raise _Restart
    keep_tx = set(reach.snapshots)
    if info is not None:
        for rec in info.snapshots:
            keep_tx.update(rec.pruned_ancestor_tx_logs or ())
    deleter = _Deleter(repo, limits, dry_run, progress)
    counts: dict[str, tuple[int, int]] = {}
    skipped: list[str] = []
    plan = (
        ("snapshots", layout.SNAPSHOTS, reach.snapshots),
        ("transaction_logs", layout.TRANSACTIONS, keep_tx),
        ("manifests", layout.MANIFESTS, reach.manifests),
        ("chunks", layout.CHUNKS, reach.chunks),
    )
    for phase, prefix, keep in plan:
        if deleter.failed:
            skipped.append(phase)
            continue
        counts[phase] = await deleter.run(phase, prefix, 12, keep, cutoff)
    return GCSummary(
        bytes_deleted=sum(b for _, b in counts.values()),
        chunks_deleted=counts.get("chunks", (0, 0))[0],
        manifests_deleted=counts.get("manifests", (0, 0))[0],
        snapshots_deleted=counts.get("snapshots", (0, 0))[0],
        transaction_logs_deleted=counts.get("transaction_logs", (0, 0))[0],
        objects_failed_to_delete=deleter.failed,
        delete_errors=list(deleter.errors),
        skipped_phases=skipped,
    )


def _gc_repo_update(keep: set[bytes], start: RepoInfo) -> Callable[[RepoInfo], UpdateRecord]:
    """The ``repo`` update that forgets the snapshots GC is about to delete.

    ``drop`` is what the repo object listed when GC started minus what it keeps. A snapshot that
    appeared since is kept, unless its parent is dropped (its history would break: restart). A
    kept snapshot whose parent is dropped is re-parented to its nearest kept ancestor (or the
    root) and records the cut ancestors' transaction logs. A ref that points at a dropped
    snapshot restarts the collection.
    """
    drop = {rec.id for rec in start.snapshots} - keep

    def apply(info: RepoInfo) -> UpdateRecord:
        kept = set(keep)
        by_id = {rec.id: rec for rec in info.snapshots}
        final: list[SnapshotInfoRecord] = []
        for rec in info.snapshots:
            if rec.id in drop:
                continue
            if rec.id not in kept:
                if rec.parent_id is not None and rec.parent_id in drop:
                    raise _Restart
                kept.add(rec.id)
            if rec.parent_id is not None and rec.parent_id in drop:
                boundary, pruned = _collapse(by_id, rec, lambda a: a.id not in drop)
                rec = dataclasses.replace(
                    rec,
                    parent_id=boundary if boundary is not None else INITIAL_SNAPSHOT_ID,
                    pruned_ancestor_tx_logs=pruned,
                )
            final.append(rec)
        present = {rec.id for rec in final}
        if any(r.snapshot_id not in present for r in [*info.tags, *info.branches]):
            raise _Restart
        info.snapshots = final
        return UpdateRecord("GCRan", {}, 0)

    return apply
