"""Repository maintenance: snapshot expiration, garbage collection and chunk storage statistics.

These follow the rules of the real Icechunk **2.x** (2.1+ for ``pruned_ancestor_tx_logs``), for
both on-disk spec versions:

Expiration (:func:`expire_snapshots`) rewrites history only; it deletes no object.

* A snapshot is *expired* when its commit time (``written_at``/``flushed_at``) is strictly
  earlier than ``older_than`` (an exclusive bound) and it is not a root (the initial snapshot
  is never expired).
* **Spec 2**: every expired snapshot listed in the ``repo`` object is *released*, i.e. removed
  from the history, except the tips of tags (unless ``delete_expired_tags``), the tips of branches
  (unless ``delete_expired_branches``) and the tip of ``main`` (always kept). A retained snapshot
  whose parent was released is re-parented to the root of its history, and its
  ``pruned_ancestor_tx_logs`` lists, oldest first, the transaction logs of every ancestor cut out
  of its path (spec 2.1), so ``diff`` and rebases can still see those changes. Tags and branches
  (never ``main``) whose tip is expired are deleted when the flags say so. Everything happens in
  one compare-and-swap of the ``repo`` object, recorded as an ``ExpirationRan`` ops-log entry; if
  the object changed since expiration read it, the computation starts again.
* **Spec 1** (no ``repo`` object: parents live in the snapshot files): refs are processed tags
  first, then branches, each in lexicographic order. Along each ref's ancestry the oldest
  non-expired snapshot is rewritten *in place* (same id, same contents) with the root as its
  parent, cutting the expired ones out of the history. As in real Icechunk 2.x for spec-1
  repositories, the returned set holds the snapshots cut out of some ref's history, which includes
  a ref's tip when the tip itself is expired (it is then the snapshot rewritten), and refs whose
  tip is expired are deleted when the flags say so.

Garbage collection (:func:`garbage_collect`) deletes the chunks, manifests, snapshots and
transaction logs that are **unreachable from every branch and tag and were created strictly
before the cutoff** (creation time = the object's last-modified time in the storage listing).
Spec-2 snapshots in the ``repo`` object that are newer than the cutoff (e.g. a branch reset
away a moment ago, a flushed detached snapshot) are kept with their manifests and chunks, though
not their unreachable older ancestors, and the transaction logs named by any retained snapshot's
``pruned_ancestor_tx_logs`` are kept. In spec 2 the dropped snapshots are also removed from the
``repo`` object (a ``GCRan`` ops-log entry) before anything is deleted: a kept snapshot whose
parent is dropped is re-parented to its nearest kept ancestor (or the root), recording the cut
ancestors' transaction logs in its ``pruned_ancestor_tx_logs``; and the update starts the whole
collection again when a ref or a new snapshot appeared that needs a snapshot about to be
dropped. Snapshots committed while the collection ran are kept with what they reference. In
spec 1 (which has no such protection in the real Icechunk) the refs are read again after the
reachability walk, and whatever a new or moved ref reaches is walked and kept too, until the refs
hold still. ``dry_run`` counts what would be deleted and changes nothing.

The cutoff must be older than the oldest session still writing: chunks written by a session that
has not committed yet are referenced by nothing, and are deleted once older than the cutoff.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

import numpy as np

from icechunk._core.cache import default_cache
from icechunk._core.refs import MAIN, RefStoreV1, RefStoreV2
from icechunk.errors import (
    ErrorKind,
    IcechunkError,
    InvalidInputError,
    PreconditionFailedError,
    ReadOnlyError,
    SnapshotNotFoundError,
    StorageError,
)
from icechunk.format import decode_manifest, encode_snapshot, layout
from icechunk.format.ids import INITIAL_SNAPSHOT_ID, decode_id, encode_id
from icechunk.format.model import (
    ChunkKind,
    Manifest,
    RepoInfo,
    SnapshotInfoRecord,
    UpdateRecord,
)
from icechunk.storage.base import WriteMode

if TYPE_CHECKING:
    from icechunk._core.objects import RepoObjects

__all__ = [
    "ChunkStorageStats",
    "GCSummary",
    "Progress",
    "chunk_storage_stats",
    "expire_snapshots",
    "garbage_collect",
]

type Progress = Callable[[str, int, int], None]
"""Progress callback: ``(phase, done, total)``. Called on the thread running the operation."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_ATTEMPTS: Final = 20
"""How many times expiration or GC start again after the ``repo`` object (or, in spec 1, a ref)
changed under them before giving up."""
_DELETE_BATCH: Final = 500
_MAX_ERRORS_KEPT: Final = 10
_PHASES: Final = ("snapshots", "transaction_logs", "manifests", "chunks")


# ---------------------------------------------------------------------------------------------
# value objects


@dataclass(frozen=True, slots=True)
class GCSummary:
    """What a garbage collection deleted (or, in a dry run, would delete).

    ``bytes_deleted`` sums the listed sizes of every deleted object. ``attributes_deleted`` is
    always 0: the current format has no attribute files. A failed delete request counts its
    objects in ``objects_failed_to_delete`` (they stay garbage for the next run), keeps up to ten
    distinct messages in ``delete_errors``, and skips the later phases (``skipped_phases``, among
    ``"transaction_logs"``, ``"manifests"``, ``"chunks"``) so objects are always deleted in a
    safe order. ``throttled_batches`` is always 0: throttling is retried by the storage layer.
    """

    bytes_deleted: int = 0
    chunks_deleted: int = 0
    manifests_deleted: int = 0
    snapshots_deleted: int = 0
    attributes_deleted: int = 0
    transaction_logs_deleted: int = 0
    objects_failed_to_delete: int = 0
    throttled_batches: int = 0
    delete_errors: list[str] = field(default_factory=list)
    skipped_phases: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = ["<icechunk.ops.GCSummary>"]
        lines += [f"{f.name}: {getattr(self, f.name)}" for f in dataclasses.fields(self)]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class ChunkStorageStats:
    """Bytes of chunk data referenced by the snapshots reachable from branches and tags.

    Native chunks are counted once per chunk object, virtual chunks once per
    ``(location, offset, length)``, inline chunks once per manifest that holds them.
    """

    native_bytes: int = 0
    """Chunks stored as objects in the repository (``chunks/``)."""
    virtual_bytes: int = 0
    """Chunks referenced in external objects."""
    inlined_bytes: int = 0
    """Chunks stored inside manifests."""

    def non_virtual_bytes(self) -> int:
        """Native plus inline bytes: roughly the chunk data stored in the repository itself."""
        return self.native_bytes + self.inlined_bytes

    def total_bytes(self) -> int:
        """Native plus virtual plus inline bytes."""
        return self.native_bytes + self.virtual_bytes + self.inlined_bytes

    def __add__(self, other: ChunkStorageStats) -> ChunkStorageStats:
        if not isinstance(other, ChunkStorageStats):
            return NotImplemented
        return ChunkStorageStats(
            self.native_bytes + other.native_bytes,
            self.virtual_bytes + other.virtual_bytes,
            self.inlined_bytes + other.inlined_bytes,
        )

    def __str__(self) -> str:
        return (
            "<icechunk.stats.ChunkStorageStats>\n"
            f"native_bytes: {self.native_bytes}\n"
            f"virtual_bytes: {self.virtual_bytes}\n"
            f"inlined_bytes: {self.inlined_bytes}"
        )


# ---------------------------------------------------------------------------------------------
# argument checking


def cutoff_us(value: object, name: str) -> int:
    """``value`` (a datetime; naive ones are taken as UTC) as microseconds since the epoch.

    Raises
    ------
    InvalidInputError
        ``value`` is not a :class:`datetime.datetime`.
    """
    if not isinstance(value, datetime):
        raise InvalidInputError(
            f"`{name}` must be a datetime.datetime, got {type(value).__name__}",
            ErrorKind.INVALID_ARGUMENT,
        )
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // timedelta(microseconds=1)


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(
            f"`{name}` must be a positive integer, got {value!r}", ErrorKind.INVALID_ARGUMENT
        )
    return value


class _Restart(Exception):
    """Internal: the refs changed under the operation; compute everything again."""


async def _require_online(repo: RepoObjects, what: str) -> None:
    refs = repo.refs
    if isinstance(refs, RefStoreV2):
        status = (await refs.read()).status
        if status.availability != 0:
            raise ReadOnlyError(
                f"cannot {what}: the repository is not online; "
                f"reason: {status.reason or 'none given'}",
                ErrorKind.REPO_READ_ONLY,
            )


def _collapse(
    by_id: dict[bytes, SnapshotInfoRecord],
    rec: SnapshotInfoRecord,
    is_boundary: Callable[[SnapshotInfoRecord], bool],
) -> tuple[bytes | None, tuple[bytes, ...] | None]:
    """Cut ``rec``'s ancestors out of its path up to the first one ``is_boundary`` accepts.

    Returns the boundary's id (``None`` when the walk reached the end of the history without
    finding one) and the new ``pruned_ancestor_tx_logs`` of ``rec``: oldest first, each cut
    ancestor's own pruned list followed by its id, then ``rec``'s existing list (its deltas are
    newer than the cut run). ``None`` instead of an empty list, as the format requires.
    """
    cut: list[SnapshotInfoRecord] = []
    boundary: bytes | None = None
    current = rec.parent_id
    while current is not None:
        ancestor = by_id.get(current)
        if ancestor is None:
            break
        if is_boundary(ancestor):
            boundary = ancestor.id
            break
        if len(cut) > len(by_id):
            raise IcechunkError("snapshot history has a cycle", ErrorKind.FORMAT)
        cut.append(ancestor)
        current = ancestor.parent_id
    pruned: list[bytes] = []
    for ancestor in reversed(cut):
        pruned.extend(ancestor.pruned_ancestor_tx_logs or ())
        pruned.append(ancestor.id)
    pruned.extend(rec.pruned_ancestor_tx_logs or ())
    return boundary, (tuple(pruned) if pruned else None)


# ---------------------------------------------------------------------------------------------
# expiration


async def expire_snapshots(
    repo: RepoObjects,
    older_than: datetime,
    *,
    delete_expired_branches: bool = False,
    delete_expired_tags: bool = False,
) -> set[str]:
    """Cut the snapshots committed strictly before ``older_than`` out of the history.

    See the module docstring for the exact rules of each spec version. No object is deleted:
    run :func:`garbage_collect` afterwards to free the storage.

    Returns
    -------
    set[str]
        The ids of the snapshots released from the history.

    Raises
    ------
    InvalidInputError
        ``older_than`` is not a datetime.
    ReadOnlyError
        The repository (spec 2) is not online.
    PreconditionFailedError
        The ``repo`` object kept changing under the operation (spec 2).
    """
    cutoff = cutoff_us(older_than, "older_than")
    await _require_online(repo, "expire snapshots")
    refs = repo.refs
    if isinstance(refs, RefStoreV2):
        released = await _expire_v2(refs, cutoff, delete_expired_branches, delete_expired_tags)
    else:
        assert isinstance(refs, RefStoreV1)
        released = await _expire_v1(
            repo, refs, cutoff, delete_expired_branches, delete_expired_tags
        )
    return {encode_id(x) for x in released}


@dataclass(slots=True)
class _ExpirationPlan:
    released: set[bytes]
    snapshots: list[SnapshotInfoRecord]
    deleted_tags: set[str]
    deleted_branches: set[str]
    newest_update: UpdateRecord | None

    def apply(self, info: RepoInfo) -> UpdateRecord:
        newest = info.latest_updates[0] if info.latest_updates else None
        if newest != self.newest_update:
            raise _Restart
        info.snapshots = list(self.snapshots)
        info.tags = [r for r in info.tags if r.name not in self.deleted_tags]
        info.branches = [r for r in info.branches if r.name not in self.deleted_branches]
        info.deleted_tags = sorted(set(info.deleted_tags) | self.deleted_tags)
        return UpdateRecord("ExpirationRan", {}, 0)


def _plan_expiration(
    info: RepoInfo, cutoff: int, delete_branches: bool, delete_tags: bool
) -> _ExpirationPlan:
    by_id = {rec.id: rec for rec in info.snapshots}
    tag_tips = {r.snapshot_id for r in info.tags}
    branch_tips = {r.snapshot_id for r in info.branches}
    main_tip = next((r.snapshot_id for r in info.branches if r.name == MAIN), None)
    expired = {
        rec.id for rec in info.snapshots if rec.flushed_at < cutoff and rec.parent_id is not None
    }
    released = {
        sid
        for sid in expired
        if not (
            (not delete_tags and sid in tag_tips)
            or ((not delete_branches or sid == main_tip) and sid in branch_tips)
        )
    }
    roots: dict[bytes, bytes] = {}

    def root_of(sid: bytes) -> bytes:
        path: list[bytes] = []
        current: bytes | None = sid
        found = INITIAL_SNAPSHOT_ID
        while current is not None:
            if current in roots:
                found = roots[current]
                break
            rec = by_id.get(current)
            if rec is None:
                break
            path.append(current)
            if rec.parent_id is None:
                found = current
                break
            if len(path) > len(by_id):
                raise IcechunkError("snapshot history has a cycle", ErrorKind.FORMAT)
            current = rec.parent_id
        for p in path:
            roots[p] = found
        return found

    snapshots: list[SnapshotInfoRecord] = []
    for rec in info.snapshots:
        if rec.id in released:
            continue
        if rec.parent_id is not None and rec.parent_id in released:
            _, pruned = _collapse(by_id, rec, lambda a: a.parent_id is None)
            rec = dataclasses.replace(
                rec, parent_id=root_of(rec.id), pruned_ancestor_tx_logs=pruned
            )
        snapshots.append(rec)
    deleted_tags = {r.name for r in info.tags if delete_tags and r.snapshot_id in expired}
    deleted_branches = {
        r.name
        for r in info.branches
        if delete_branches and r.name != MAIN and r.snapshot_id in expired
    }
    return _ExpirationPlan(
        released,
        snapshots,
        deleted_tags,
        deleted_branches,
        info.latest_updates[0] if info.latest_updates else None,
    )


async def _expire_v2(
    refs: RefStoreV2, cutoff: int, delete_branches: bool, delete_tags: bool
) -> set[bytes]:
    for _ in range(_MAX_ATTEMPTS):
        plan = _plan_expiration(await refs.read(), cutoff, delete_branches, delete_tags)
        try:
            await refs.update(plan.apply)
        except _Restart:
            continue
        return plan.released
    raise PreconditionFailedError(
        f"expiration gave up after {_MAX_ATTEMPTS} attempts: the repository kept changing",
        ErrorKind.PRECONDITION_FAILED,
    )


async def _expire_v1(
    repo: RepoObjects,
    refs: RefStoreV1,
    cutoff: int,
    delete_branches: bool,
    delete_tags: bool,
) -> set[bytes]:
    released: set[bytes] = set()
    tags = await refs.tags()
    branches = await refs.branches()
    work = [("tag", n, tags[n]) for n in sorted(tags)]
    work += [("branch", n, branches[n]) for n in sorted(branches)]
    for kind, name, tip in work:
        ancestry = await refs.ancestry(tip)
        ref_is_expired = ancestry[0].flushed_at < cutoff
        editable, root = tip, tip
        cut: set[bytes] = set()
        for rec in ancestry:
            if rec.flushed_at >= cutoff:
                editable = rec.id
            else:
                cut.add(rec.id)
                root = rec.id
        cut.discard(root)
        parent = next(r.parent_id for r in ancestry if r.id == editable)
        if not (editable == root or parent == root or root == tip):
            snap = await repo.load_snapshot(editable)
            rewritten = dataclasses.replace(snap, parent_id=root)
            await repo.storage.put(
                layout.snapshot_key(editable),
                encode_snapshot(rewritten, snap.spec_version),
                WriteMode.OVERWRITE,
            )
            # the file changed in place: the process-wide cache must see the new parent
            default_cache.put("snapshot", editable, rewritten, 2000 + 300 * len(snap.nodes))
            released |= cut
        if ref_is_expired:
            if kind == "tag" and delete_tags:
                await refs.delete_tag(name)
            elif kind == "branch" and delete_branches and name != MAIN:
                await refs.delete_branch(name)
    return released


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
