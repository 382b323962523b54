"""Snapshot expiration (``Repository.expire_snapshots``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from icechunk._core.cache import default_cache
from icechunk._core.refs import MAIN, RefStoreV1, RefStoreV2
from icechunk.errors import (
    ErrorKind,
    IcechunkError,
    PreconditionFailedError,
)
from icechunk.format import encode_snapshot, layout
from icechunk.format.ids import INITIAL_SNAPSHOT_ID, encode_id
from icechunk.format.model import (
    RepoInfo,
    SnapshotInfoRecord,
    UpdateRecord,
)
from icechunk.storage.base import WriteMode

if TYPE_CHECKING:
    from icechunk._core.objects import RepoObjects
from icechunk._core.maintenance.common import (
    _MAX_ATTEMPTS,
    _collapse,
    _require_online,
    _Restart,
    cutoff_us,
)

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
