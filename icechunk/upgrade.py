"""``upgrade_icechunk_repository``: migrate a spec-1 repository to spec 2 in place.

As the real Icechunk 2.3 does it, the migration writes one new object, ``$ROOT/repo``, holding
every branch and tag (deleted tag names included), the history of every snapshot reachable from
them, the persisted config (from ``config.yaml``) and an operations log synthesized from that
history (``RepoInitialized``, one ``NewCommit`` per snapshot, ``BranchCreated`` / ``TagCreated``
/ ``TagDeleted`` per ref, then ``RepoMigrated(1, 2)``). Snapshots, manifests, chunks and
transaction logs are left as they are (spec-2 readers read spec-1 files). Then the spec-1 refs
(``refs/``) and ``config.yaml`` are deleted.

Crash safety: before ``repo`` exists the repository is untouched spec 1; once it exists every
spec-2 reader (this library, the real 2.x) opens it as spec 2, whatever spec-1 files are left,
and the real 1.x refuses it. Running the upgrade again on such a half-cleaned repository (a
``RepoMigrated`` entry in its log and spec-1 files left) deletes the leftovers; on a finished
spec-2 repository it raises like the real one.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from icechunk._core.refs import MAIN, RefStoreV1, now_us
from icechunk.errors import ErrorKind, ObjectNotFoundError, SessionStateError
from icechunk.format import decode_ref, encode_repo_info, layout
from icechunk.format.ids import INITIAL_SNAPSHOT_ID
from icechunk.format.model import (
    RepoInfo,
    RepoRef,
    RepoStatus,
    Snapshot,
    SnapshotInfoRecord,
    UpdateRecord,
)
from icechunk.storage.base import WriteMode

if TYPE_CHECKING:
    from icechunk.repository import Repository

__all__ = ["upgrade_icechunk_repository"]

_INVALIDATED = (
    "This repository has been invalidated by upgrade_icechunk_repository(). "
    "Use the new Repository object returned by that function instead."
)


class _InvalidatedRepository:
    """What a :class:`Repository` object becomes after it was upgraded: unusable."""

    def __getattribute__(self, name: str) -> Any:
        if name in ("__class__", "__repr__", "__dict__"):
            return object.__getattribute__(self, name)
        raise RuntimeError(_INVALIDATED)

    def __repr__(self) -> str:
        return f"<icechunk._InvalidatedRepository object at {id(self):#x}>"


def _wrong_version() -> SessionStateError:
    return SessionStateError(
        "invalid repository version (2.0), this function can only migrate repositories that "
        "use version 1.0 of the specification, to repositories with spec version 2.0",
        ErrorKind.INVALID_REPOSITORY_MIGRATION,
    )


async def _v1_files(repo: Repository) -> list[str]:
    keys = [obj.key async for obj in repo.storage.list(layout.REFS)]
    if await repo.storage.exists("config.yaml"):
        keys.append("config.yaml")
    return keys


async def _collect(
    repo: Repository, concurrency: int
) -> tuple[dict[str, bytes], dict[str, bytes], dict[str, bytes], dict[bytes, Snapshot]]:
    """Branches, live tags, deleted tags (name -> last target) and every reachable snapshot."""
    refs = repo._objects.refs
    assert isinstance(refs, RefStoreV1)
    branches, tags, deleted_names = await refs.all_refs()
    deleted: dict[str, bytes] = {}
    for name in sorted(deleted_names):
        key = layout.tag_key(name)
        try:
            deleted[name] = decode_ref(await repo.storage.get(key), key)
        except ObjectNotFoundError:
            continue
    snapshots: dict[bytes, Snapshot] = {}
    frontier = {*branches.values(), *tags.values(), *deleted.values()}
    sem = asyncio.Semaphore(concurrency)

    async def load(sid: bytes) -> Snapshot:
        async with sem:
            return await repo._objects.load_snapshot(sid)

    while frontier:
        loaded = await asyncio.gather(*(load(s) for s in frontier))
        frontier = set()
        for snap in loaded:
            snapshots[snap.id] = snap
            if snap.parent_id is not None and snap.parent_id not in snapshots:
                frontier.add(snap.parent_id)
    return branches, tags, deleted, snapshots


def _ops_log(
    branches: dict[str, bytes],
    tags: dict[str, bytes],
    deleted: dict[str, bytes],
    snapshots: dict[bytes, Snapshot],
) -> list[UpdateRecord]:
    """An operations log consistent with the history (newest first, strictly decreasing times)."""
    events: list[tuple[int, int, UpdateRecord]] = []
    order = 0

    def add(at: int, kind: str, fields: dict[str, Any]) -> None:
        nonlocal order
        events.append((at, order, UpdateRecord(kind, fields, at)))
        order += 1

    # the branch each snapshot was committed to: main's history first, then the others
    owner: dict[bytes, str] = {}
    for name in sorted(branches, key=lambda b: (b != MAIN, b)):
        current: bytes | None = branches[name]
        while current is not None and current not in owner and current in snapshots:
            owner[current] = name
            current = snapshots[current].parent_id
    root = snapshots.get(INITIAL_SNAPSHOT_ID)
    root_at = root.flushed_at if root is not None else min(s.flushed_at for s in snapshots.values())
    add(root_at, "RepoInitialized", {})
    for sid, snap in sorted(snapshots.items(), key=lambda kv: kv[1].flushed_at):
        if snap.parent_id is None:
            continue
        add(snap.flushed_at, "NewCommit", {"branch": owner.get(sid, MAIN), "new_snap_id": sid})
    for name, tip in sorted(branches.items()):
        if name != MAIN:
            add(snapshots[tip].flushed_at + 1000, "BranchCreated", {"name": name})
    for name, target in sorted(tags.items()):
        add(snapshots[target].flushed_at + 1000, "TagCreated", {"name": name})
    for name, target in sorted(deleted.items()):
        at = snapshots[target].flushed_at
        add(at + 1000, "TagCreated", {"name": name})
        add(at + 2000, "TagDeleted", {"name": name, "previous_snap_id": target})
    events.sort(key=lambda e: (e[0], e[1]))
    out: list[UpdateRecord] = []
    last = -1
    for at, _, rec in events:
        at = max(at, last + 1)  # strictly increasing, as the update protocol requires
        last = at
        out.append(UpdateRecord(rec.kind, rec.fields, at))
    out.append(
        UpdateRecord("RepoMigrated", {"from_version": 1, "to_version": 2}, max(now_us(), last + 1))
    )
    out.reverse()
    return out


async def upgrade_icechunk_repository_async(
    repo: Repository,
    *,
    dry_run: bool,
    delete_unused_v1_files: bool = True,
    prefetch_concurrency: int | None = None,
) -> Repository:
    from icechunk import repo_admin
    from icechunk.config_codec import encode_flexbuffers
    from icechunk.repository import Repository

    storage = repo.storage
    if repo.spec_version != 1 or await storage.exists(layout.REPO_INFO):
        # a crash after `repo` was written leaves spec-1 files: finish deleting them
        leftovers = await _v1_files(repo) if await storage.exists(layout.REPO_INFO) else []
        opened = await Repository.open_async(storage)
        migrated = any(u.kind == "RepoMigrated" for u in await opened._objects.refs.ops_log())
        if not (leftovers and migrated):
            raise _wrong_version()
        if not dry_run:
            if delete_unused_v1_files:
                await storage.delete(leftovers)
            _invalidate(repo)
        return opened
    concurrency = 64 if prefetch_concurrency is None else max(1, int(prefetch_concurrency))
    branches, tags, deleted, snapshots = await _collect(repo, concurrency)
    persisted = await repo_admin.persisted_or_none(storage)
    info = RepoInfo(
        branches=[RepoRef(n, s) for n, s in sorted(branches.items())],
        tags=[RepoRef(n, s) for n, s in sorted(tags.items())],
        deleted_tags=sorted(deleted),
        snapshots=[
            SnapshotInfoRecord(s.id, s.parent_id, s.flushed_at, s.message, s.metadata)
            for s in sorted(snapshots.values(), key=lambda s: s.id)
        ],
        status=RepoStatus(0, now_us(), None),
        metadata={},
        latest_updates=_ops_log(branches, tags, deleted, snapshots),
        config=None if persisted is None else encode_flexbuffers(persisted),
    )
    encoded = encode_repo_info(info)
    if dry_run:
        return await Repository.open_async(storage, repo.config)
    v1_files = await _v1_files(repo)
    await storage.put(layout.REPO_INFO, encoded, WriteMode.CREATE)
    if delete_unused_v1_files:
        for key in v1_files:  # one at a time: a crash between two leaves a readable state
            await storage.delete([key])
    _invalidate(repo)
    return await Repository.open_async(storage)


def _invalidate(repo: Repository) -> None:
    repo.__dict__.clear()
    repo.__class__ = _InvalidatedRepository  # type: ignore[assignment]


def upgrade_icechunk_repository(
    repo: Repository,
    *,
    dry_run: bool,
    delete_unused_v1_files: bool = True,
    prefetch_concurrency: int | None = None,
) -> Repository:
    """Migrate a spec-1 repository to spec 2, in place; return a new handle on it.

    An administrative operation: run it while nothing else reads or writes the repository.
    ``dry_run=True`` checks that the repository can be migrated and changes nothing. Afterwards
    ``repo`` itself is unusable (every attribute raises ``RuntimeError``).

    Parameters
    ----------
    repo
        The spec-1 repository.
    dry_run
        Only check; return ``repo``.
    delete_unused_v1_files
        Delete ``refs/`` and ``config.yaml`` after writing ``repo`` (default).
    prefetch_concurrency
        Snapshots fetched concurrently while collecting the history (default 64).

    Raises
    ------
    SessionStateError
        The repository is already spec 2 (``invalid-repository-migration``).
    """
    from icechunk._sync import sync

    return sync(
        upgrade_icechunk_repository_async(
            repo,
            dry_run=dry_run,
            delete_unused_v1_files=delete_unused_v1_files,
            prefetch_concurrency=prefetch_concurrency,
        )
    )
