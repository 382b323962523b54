"""Branches, tags and the history of snapshots, for both on-disk spec versions.

Spec 1 keeps one small JSON object per ref (``refs/branch.<name>/ref.json``) and the history in
the snapshots themselves (``parent_id``). Spec 2 keeps all of it in the single mutable ``repo``
object, updated by compare-and-swap with an operations log and backups under ``overwritten/``.
:class:`RefStore` hides the difference behind one interface.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

from icechunk.errors import (
    AlreadyExistsError,
    ConflictError,
    ErrorKind,
    FormatError,
    InvalidInputError,
    ObjectNotFoundError,
    PreconditionFailedError,
    ReadOnlyError,
    RefNotFoundError,
    SessionStateError,
    SnapshotNotFoundError,
)
from icechunk.format import (
    decode_ref,
    decode_repo_info,
    encode_ref,
    encode_repo_info,
    layout,
)
from icechunk.format.ids import encode_id, new_id12
from icechunk.format.model import (
    RepoInfo,
    RepoRef,
    Snapshot,
    SnapshotInfoRecord,
    UpdateRecord,
)
from icechunk.storage.base import IfMatch, Storage, WriteMode

__all__ = ["RefStore", "RefStoreV1", "RefStoreV2", "now_us", "validate_ref_name"]

_JITTER = random.Random()
"""Private RNG for retry jitter: a library must not draw from (or disturb) the global one."""

MAIN = "main"
_YEAR_3000_MS = 32503680000000

type SnapshotLoader = Callable[[bytes], Awaitable[Snapshot]]


def now_us() -> int:
    """Microseconds since the Unix epoch."""
    return time.time_ns() // 1000


def validate_ref_name(name: str) -> None:
    """Reject ref names that cannot be stored safely in both spec versions.

    Raises
    ------
    InvalidInputError
        The name is empty, contains ``/`` or a control character, or is ``.``/``..``.
    """
    if not isinstance(name, str):
        raise InvalidInputError(
            f"invalid ref name {name!r}: expected a string", ErrorKind.INVALID_REF_NAME
        )
    if (
        not name
        or "/" in name
        or name in (".", "..")
        or any(ord(c) < 32 or ord(c) == 127 for c in name)
    ):
        raise InvalidInputError(
            f"invalid ref name `{name}`: names must be non-empty and contain no '/' "
            "or control characters",
            ErrorKind.INVALID_REF_NAME,
        )


def _not_found(name: str) -> RefNotFoundError:
    return RefNotFoundError(f"ref not found `{name}`", ErrorKind.REF_NOT_FOUND)


def _snapshot_not_found(snapshot_id: bytes) -> SnapshotNotFoundError:
    return SnapshotNotFoundError(
        f"snapshot id not found `{encode_id(snapshot_id)}`", ErrorKind.SNAPSHOT_NOT_FOUND
    )


def _info_from_snapshot(snap: Snapshot) -> SnapshotInfoRecord:
    return SnapshotInfoRecord(
        id=snap.id,
        parent_id=snap.parent_id,
        flushed_at=snap.flushed_at,
        message=snap.message,
        metadata=snap.metadata,
    )


class RefStore(ABC):
    """Refs and history of one repository. All methods read fresh state from storage."""

    spec_version: int

    def __init__(self, storage: Storage, load_snapshot: SnapshotLoader) -> None:
        self.storage = storage
        self.load_snapshot = load_snapshot
        self.cas_failures = 0
        """Compare-and-swap writes of refs lost to a concurrent writer (for diagnostics)."""

    # -- reading ----------------------------------------------------------------------------

    @abstractmethod
    async def branches(self) -> dict[str, bytes]:
        """Every branch and the snapshot it points at."""

    @abstractmethod
    async def tags(self) -> dict[str, bytes]:
        """Every live (not deleted) tag and its snapshot."""

    async def branch_tip(self, name: str) -> bytes:
        """The snapshot ``name`` points at; :class:`RefNotFoundError` if there is no such branch."""
        tip = (await self.branches()).get(name)
        if tip is None:
            raise _not_found(name)
        return tip

    async def tag_target(self, name: str) -> bytes:
        target = (await self.tags()).get(name)
        if target is None:
            raise _not_found(name)
        return target

    @abstractmethod
    async def snapshot_info(self, snapshot_id: bytes) -> SnapshotInfoRecord:
        """History record of a snapshot; :class:`SnapshotNotFoundError` if it is unknown."""

    async def ancestry(self, snapshot_id: bytes) -> list[SnapshotInfoRecord]:
        """``snapshot_id`` and its ancestors, newest first, ending at the root."""
        out = []
        current: bytes | None = snapshot_id
        seen: set[bytes] = set()
        while current is not None:
            if current in seen:
                raise FormatError(
                    f"snapshot history has a cycle at {encode_id(current)}", ErrorKind.FORMAT
                )
            seen.add(current)
            info = await self.snapshot_info(current)
            out.append(info)
            current = info.parent_id
        return out

    async def path_between(self, ancestor: bytes, snapshot_id: bytes) -> list[bytes] | None:
        """The snapshots after ``ancestor`` up to ``snapshot_id``, newest first.

        Empty when they are equal; ``None`` when ``ancestor`` is not an ancestor of
        ``snapshot_id``. Stops walking at ``ancestor``, so it costs the length of the path, not
        of the whole history.
        """
        out: list[bytes] = []
        current: bytes | None = snapshot_id
        seen: set[bytes] = set()
        while current is not None:
            if current == ancestor:
                return out
            if current in seen:
                raise FormatError(
                    f"snapshot history has a cycle at {encode_id(current)}", ErrorKind.FORMAT
                )
            seen.add(current)
            out.append(current)
            current = (await self.snapshot_info(current)).parent_id
        return None

    # -- writing ----------------------------------------------------------------------------

    @abstractmethod
    async def create_branch(self, name: str, snapshot_id: bytes) -> None: ...

    @abstractmethod
    async def delete_branch(self, name: str) -> None: ...

    @abstractmethod
    async def reset_branch(
        self, name: str, snapshot_id: bytes, from_snapshot_id: bytes | None
    ) -> None: ...

    @abstractmethod
    async def create_tag(self, name: str, snapshot_id: bytes) -> None: ...

    @abstractmethod
    async def delete_tag(self, name: str) -> None: ...

    @abstractmethod
    async def publish_commit(
        self, branch: str, info: SnapshotInfoRecord, expected_parent: bytes
    ) -> None:
        """Move ``branch`` from ``expected_parent`` to the new snapshot ``info.id``.

        The snapshot object (and its manifests and transaction log) must already be written.

        Raises
        ------
        ConflictError
            The branch no longer points at ``expected_parent``; nothing was published.
        """

    async def publish_amend(
        self, branch: str, info: SnapshotInfoRecord, expected_tip: bytes
    ) -> None:
        raise SessionStateError(
            "amend is only supported in spec version 2 repositories; upgrade the repository to spec version 2 to use it",
            ErrorKind.AMEND_NOT_ALLOWED,
        )

    async def publish_detached(self, info: SnapshotInfoRecord) -> None:
        """Record a snapshot that no ref points at (``Session.flush``)."""
        return

    async def ops_log(self) -> list[UpdateRecord]:
        raise SessionStateError(
            "the operations log exists only in spec version 2 repositories; upgrade the repository to spec version 2 to use it",
            ErrorKind.INVALID_ARGUMENT,
        )

    async def get_metadata(self) -> dict[str, Any]:
        raise SessionStateError(
            "repository metadata exists only in spec version 2 repositories; upgrade the repository to spec version 2 to use it",
            ErrorKind.INVALID_ARGUMENT,
        )

    async def set_metadata(self, metadata: dict[str, Any]) -> None:
        await self.get_metadata()


# ---------------------------------------------------------------------------------------------
# spec 1


class RefStoreV1(RefStore):
    """Spec 1: one JSON object per ref, tag tombstones, history in the snapshot files."""

    spec_version = 1

    async def _list_refs(self) -> tuple[dict[str, bytes], dict[str, bytes], set[str]]:
        branch_names: set[str] = set()
        tag_names: set[str] = set()
        deleted: set[str] = set()
        async for obj in self.storage.list(layout.REFS):
            rest = obj.key[len(layout.REFS) :]
            ref_dir, _, leaf = rest.partition("/")
            if ref_dir.startswith("branch.") and leaf == "ref.json":
                branch_names.add(ref_dir[len("branch.") :])
            elif ref_dir.startswith("tag."):
                name = ref_dir[len("tag.") :]
                if leaf == "ref.json":
                    tag_names.add(name)
                elif leaf == "ref.json.deleted":
                    deleted.add(name)

        async def read(key: str) -> bytes | None:
            try:
                return decode_ref(await self.storage.get(key), key)
            except ObjectNotFoundError:
                return None  # deleted while we listed

        names = sorted(branch_names)
        live_tags = sorted(tag_names - deleted)
        values = await asyncio.gather(
            *(read(layout.branch_key(n)) for n in names),
            *(read(layout.tag_key(n)) for n in live_tags),
        )
        branches = {n: v for n, v in zip(names, values[: len(names)], strict=True) if v}
        tags = {n: v for n, v in zip(live_tags, values[len(names) :], strict=True) if v}
        return branches, tags, deleted

    async def branches(self) -> dict[str, bytes]:
        return (await self._list_refs())[0]

    async def tags(self) -> dict[str, bytes]:
        return (await self._list_refs())[1]

    async def branch_tip(self, name: str) -> bytes:
        key = layout.branch_key(name)
        try:
            return decode_ref(await self.storage.get(key), key)
        except ObjectNotFoundError:
            raise _not_found(name) from None

    async def tag_target(self, name: str) -> bytes:
        if await self.storage.exists(layout.tag_deleted_key(name)):
            raise _not_found(name)
        key = layout.tag_key(name)
        try:
            return decode_ref(await self.storage.get(key), key)
        except ObjectNotFoundError:
            raise _not_found(name) from None

    async def snapshot_info(self, snapshot_id: bytes) -> SnapshotInfoRecord:
        try:
            snap = await self.load_snapshot(snapshot_id)
        except ObjectNotFoundError:
            raise _snapshot_not_found(snapshot_id) from None
        return _info_from_snapshot(snap)

    async def _require_snapshot(self, snapshot_id: bytes) -> None:
        if not await self.storage.exists(layout.snapshot_key(snapshot_id)):
            raise _snapshot_not_found(snapshot_id)

    async def create_branch(self, name: str, snapshot_id: bytes) -> None:
        validate_ref_name(name)
        await self._require_snapshot(snapshot_id)
        try:
            await self.storage.put(
                layout.branch_key(name), encode_ref(snapshot_id), WriteMode.CREATE
            )
        except PreconditionFailedError:
            current = await self.branch_tip(name)
            raise AlreadyExistsError(
                f"branch already exists `{name} -> {encode_id(current)}`",
                ErrorKind.BRANCH_ALREADY_EXISTS,
            ) from None

    async def delete_branch(self, name: str) -> None:
        if name == MAIN:
            raise SessionStateError("main branch cannot be deleted", ErrorKind.CANNOT_DELETE_MAIN)
        await self.branch_tip(name)
        await self.storage.delete([layout.branch_key(name)])

    async def _cas_branch(
        self, name: str, new: bytes, expected: bytes | None, conflict_kind: ErrorKind
    ) -> None:
        key = layout.branch_key(name)
        try:
            data, version = await self.storage.get_with_version(key)
        except ObjectNotFoundError:
            raise _not_found(name) from None
        current = decode_ref(data, key)
        if expected is not None and current != expected:
            raise _conflict(conflict_kind, expected, current)
        try:
            await self.storage.put(key, encode_ref(new), IfMatch(version))
        except PreconditionFailedError:
            self.cas_failures += 1
            now = await self.branch_tip(name)
            raise _conflict(
                conflict_kind, expected if expected is not None else current, now
            ) from None

    async def reset_branch(
        self, name: str, snapshot_id: bytes, from_snapshot_id: bytes | None
    ) -> None:
        await self._require_snapshot(snapshot_id)
        await self._cas_branch(
            name, snapshot_id, from_snapshot_id, ErrorKind.BRANCH_UPDATE_CONFLICT
        )

    async def create_tag(self, name: str, snapshot_id: bytes) -> None:
        validate_ref_name(name)
        await self._require_snapshot(snapshot_id)
        try:
            await self.storage.put(layout.tag_key(name), encode_ref(snapshot_id), WriteMode.CREATE)
        except PreconditionFailedError:
            if await self.storage.exists(layout.tag_deleted_key(name)):
                raise AlreadyExistsError(
                    f"icechunk does not allow tag reuse and tag was already deleted `{name}`",
                    ErrorKind.TAG_PREVIOUSLY_DELETED,
                ) from None
            raise AlreadyExistsError(
                f"tag already exists, tags are immutable: `{name}`",
                ErrorKind.TAG_ALREADY_EXISTS,
            ) from None

    async def delete_tag(self, name: str) -> None:
        await self.tag_target(name)
        try:
            await self.storage.put(layout.tag_deleted_key(name), b"", WriteMode.CREATE)
        except PreconditionFailedError:
            raise _not_found(name) from None

    async def publish_commit(
        self, branch: str, info: SnapshotInfoRecord, expected_parent: bytes
    ) -> None:
        await self._cas_branch(branch, info.id, expected_parent, ErrorKind.COMMIT_CONFLICT)


def _conflict(kind: ErrorKind, expected: bytes, actual: bytes) -> ConflictError:
    if kind == ErrorKind.COMMIT_CONFLICT:
        return ConflictError(encode_id(expected), encode_id(actual))
    return _branch_conflict(expected, actual)


def _branch_conflict(expected: bytes, actual: bytes) -> ConflictError:
    return ConflictError(
        encode_id(expected),
        encode_id(actual),
        message=(
            f"branch update conflict: `(Some({encode_id(expected)})) != "
            f"(Some({encode_id(actual)}))`"
        ),
        kind=ErrorKind.BRANCH_UPDATE_CONFLICT,
    )


# ---------------------------------------------------------------------------------------------
# spec 2


class _Retry(Exception):
    """Internal: the repo object changed under us; re-read and re-apply."""


class RefStoreV2(RefStore):
    """Spec 2: everything in the ``repo`` object, updated by compare-and-swap."""

    spec_version = 2

    def __init__(
        self,
        storage: Storage,
        load_snapshot: SnapshotLoader,
        num_updates_per_file: int = 1000,
        max_attempts: int = 100,
    ) -> None:
        super().__init__(storage, load_snapshot)
        self.num_updates_per_file = num_updates_per_file
        self.max_attempts = max_attempts
        self._last: tuple[bytes, RepoInfo] | None = None
        """The last ``repo`` bytes seen (read or written) and their decoded form."""

    def _decode(self, data: bytes) -> RepoInfo:
        """Decode ``repo`` bytes, reusing the last decoding when the bytes are unchanged.

        Decoding costs time linear in the number of snapshots and every operation reads the
        object at least once (a commit: the session's base, the update, a rebase...), so this
        saves most decodes. Callers must not mutate the result (:meth:`update` copies it).
        """
        last = self._last
        if last is not None and last[0] == data:
            return last[1]
        info = decode_repo_info(data, layout.REPO_INFO)
        self._last = (data, info)
        return info

    async def read(self) -> RepoInfo:
        try:
            data = await self.storage.get(layout.REPO_INFO)
        except ObjectNotFoundError:
            from icechunk.errors import RepositoryNotFoundError

            raise RepositoryNotFoundError(
                "the repository doesn't exist", ErrorKind.REPOSITORY_NOT_FOUND
            ) from None
        return self._decode(data)

    async def branches(self) -> dict[str, bytes]:
        return {r.name: r.snapshot_id for r in (await self.read()).branches}

    async def tags(self) -> dict[str, bytes]:
        return {r.name: r.snapshot_id for r in (await self.read()).tags}

    async def snapshot_info(self, snapshot_id: bytes) -> SnapshotInfoRecord:
        info = await self.read()
        for rec in info.snapshots:
            if rec.id == snapshot_id:
                return rec
        raise _snapshot_not_found(snapshot_id)

    async def ancestry(self, snapshot_id: bytes) -> list[SnapshotInfoRecord]:
        info = await self.read()
        by_id = {rec.id: rec for rec in info.snapshots}
        out: list[SnapshotInfoRecord] = []
        current: bytes | None = snapshot_id
        while current is not None:
            rec = by_id.get(current)
            if rec is None:
                raise _snapshot_not_found(current)
            if len(out) > len(by_id):
                raise FormatError("snapshot history in `repo` has a cycle", ErrorKind.FORMAT)
            out.append(rec)
            current = rec.parent_id
        return out

    async def path_between(self, ancestor: bytes, snapshot_id: bytes) -> list[bytes] | None:
        info = await self.read()
        parents = {rec.id: rec.parent_id for rec in info.snapshots}
        out: list[bytes] = []
        current: bytes | None = snapshot_id
        while current is not None:
            if current == ancestor:
                return out
            if current not in parents:
                raise _snapshot_not_found(current)
            if len(out) > len(parents):
                raise FormatError("snapshot history in `repo` has a cycle", ErrorKind.FORMAT)
            out.append(current)
            current = parents[current]
        return None

    async def ops_log(self) -> list[UpdateRecord]:
        """Every update, newest first, following ``repo_before_updates`` into older files."""
        info = await self.read()
        out = list(info.latest_updates)
        seen: set[str] = set()
        before = info.repo_before_updates
        while before:
            key = before if before.startswith(layout.OVERWRITTEN) else layout.OVERWRITTEN + before
            if key in seen:
                raise FormatError(f"the ops log chain loops at `{key}`", ErrorKind.FORMAT)
            seen.add(key)
            try:
                older = decode_repo_info(await self.storage.get(key), key)
            except ObjectNotFoundError:
                break  # older entries were cleaned up
            out.extend(older.latest_updates)
            before = older.repo_before_updates
        return out

    async def get_metadata(self) -> dict[str, Any]:
        return dict((await self.read()).metadata)

    # -- the update protocol ----------------------------------------------------------------

    async def update(
        self, apply: Callable[[RepoInfo], UpdateRecord], *, allow_when_not_online: bool = False
    ) -> RepoInfo:
        """Read-modify-write of ``repo`` with compare-and-swap, retried on contention.

        ``apply`` mutates a fresh copy of the current state and returns the ops-log entry
        describing the change (its ``updated_at`` and ``backup_path`` are filled in here). It may
        raise to abort (a conflict, a missing ref ...); nothing is written then.
        """
        for attempt in range(self.max_attempts):
            try:
                data, version = await self.storage.get_with_version(layout.REPO_INFO)
            except ObjectNotFoundError:
                from icechunk.errors import RepositoryNotFoundError

                raise RepositoryNotFoundError(
                    "the repository doesn't exist", ErrorKind.REPOSITORY_NOT_FOUND
                ) from None
            current = self._decode(data)
            if current.has_unknown_fields:
                raise FormatError(
                    "the `repo` object has fields this version of icechunk-prefect does not "
                    "know; refusing to rewrite it (upgrade icechunk-prefect)",
                    ErrorKind.UNKNOWN_FORMAT_FIELDS,
                )
            if current.status.availability != 0 and not allow_when_not_online:
                raise ReadOnlyError(
                    "the repository is not online (status: read-only or offline); "
                    f"reason: {current.status.reason or 'none given'}",
                    ErrorKind.REPO_READ_ONLY,
                )
            new = _copy_repo_info(current)
            entry = apply(new)
            newest = current.latest_updates[0].updated_at if current.latest_updates else 0
            stamp = max(now_us(), newest + 1)
            # `backup_path` names the copy relative to `overwritten/`, as the real Icechunk does
            backup = f"repo.{_YEAR_3000_MS - stamp // 1000:014d}.{encode_id(new_id12())}"
            updates = [dataclasses.replace(entry, updated_at=stamp, backup_path=None)]
            if current.latest_updates:
                updates.append(dataclasses.replace(current.latest_updates[0], backup_path=backup))
                updates.extend(current.latest_updates[1:])
            if len(updates) > self.num_updates_per_file:
                new.repo_before_updates = updates[self.num_updates_per_file].backup_path
                updates = updates[: self.num_updates_per_file]
            new.latest_updates = updates
            # the backup must exist before the new object names it; write it while encoding
            backup_written = asyncio.ensure_future(
                self.storage.put(layout.OVERWRITTEN + backup, data, WriteMode.CREATE)
            )
            try:
                encoded = encode_repo_info(new)
            finally:
                await backup_written
            try:
                await self.storage.put(layout.REPO_INFO, encoded, IfMatch(version))
            except PreconditionFailedError:
                self.cas_failures += 1
                # jittered exponential backoff: 5 immediate tries, then growing waits
                if attempt >= 5:
                    await asyncio.sleep(_JITTER.uniform(0, min(2.0, 0.01 * 2 ** (attempt - 5))))
                continue
            self._last = (encoded, new)
            return new
        raise PreconditionFailedError(
            f"could not update the `repo` object after {self.max_attempts} attempts: "
            "too much contention",
            ErrorKind.PRECONDITION_FAILED,
        )

    # -- ref operations ---------------------------------------------------------------------

    async def create_branch(self, name: str, snapshot_id: bytes) -> None:
        validate_ref_name(name)

        def apply(info: RepoInfo) -> UpdateRecord:
            _require_snapshot(info, snapshot_id)
            for ref in info.branches:
                if ref.name == name:
                    raise AlreadyExistsError(
                        f"branch already exists `{name} -> {encode_id(ref.snapshot_id)}`",
                        ErrorKind.BRANCH_ALREADY_EXISTS,
                    )
            info.branches.append(RepoRef(name, snapshot_id))
            return UpdateRecord("BranchCreated", {"name": name}, 0)

        await self.update(apply)

    async def delete_branch(self, name: str) -> None:
        if name == MAIN:
            raise SessionStateError("main branch cannot be deleted", ErrorKind.CANNOT_DELETE_MAIN)

        def apply(info: RepoInfo) -> UpdateRecord:
            ref = _pop_ref(info.branches, name)
            return UpdateRecord(
                "BranchDeleted", {"name": name, "previous_snap_id": ref.snapshot_id}, 0
            )

        await self.update(apply)

    async def reset_branch(
        self, name: str, snapshot_id: bytes, from_snapshot_id: bytes | None
    ) -> None:
        def apply(info: RepoInfo) -> UpdateRecord:
            _require_snapshot(info, snapshot_id)
            ref = _pop_ref(info.branches, name)
            if from_snapshot_id is not None and ref.snapshot_id != from_snapshot_id:
                raise _branch_conflict(from_snapshot_id, ref.snapshot_id)
            info.branches.append(RepoRef(name, snapshot_id))
            return UpdateRecord(
                "BranchReset", {"name": name, "previous_snap_id": ref.snapshot_id}, 0
            )

        await self.update(apply)

    async def create_tag(self, name: str, snapshot_id: bytes) -> None:
        validate_ref_name(name)

        def apply(info: RepoInfo) -> UpdateRecord:
            _require_flag(info, 4, "create_tag")
            _require_snapshot(info, snapshot_id)
            if name in info.deleted_tags:
                raise AlreadyExistsError(
                    f"icechunk does not allow tag reuse and tag was already deleted `{name}`",
                    ErrorKind.TAG_PREVIOUSLY_DELETED,
                )
            if any(ref.name == name for ref in info.tags):
                raise AlreadyExistsError(
                    f"tag already exists, tags are immutable: `{name}`",
                    ErrorKind.TAG_ALREADY_EXISTS,
                )
            info.tags.append(RepoRef(name, snapshot_id))
            return UpdateRecord("TagCreated", {"name": name}, 0)

        await self.update(apply)

    async def delete_tag(self, name: str) -> None:
        def apply(info: RepoInfo) -> UpdateRecord:
            _require_flag(info, 5, "delete_tag")
            ref = _pop_ref(info.tags, name)
            info.deleted_tags.append(name)
            return UpdateRecord(
                "TagDeleted", {"name": name, "previous_snap_id": ref.snapshot_id}, 0
            )

        await self.update(apply)

    async def publish_commit(
        self, branch: str, info: SnapshotInfoRecord, expected_parent: bytes
    ) -> None:
        def apply(repo: RepoInfo) -> UpdateRecord:
            ref = _pop_ref(repo.branches, branch)
            if ref.snapshot_id != expected_parent:
                raise ConflictError(encode_id(expected_parent), encode_id(ref.snapshot_id))
            repo.snapshots.append(info)
            repo.branches.append(RepoRef(branch, info.id))
            return UpdateRecord("NewCommit", {"branch": branch, "new_snap_id": info.id}, 0)

        await self.update(apply)

    async def publish_amend(
        self, branch: str, info: SnapshotInfoRecord, expected_tip: bytes
    ) -> None:
        def apply(repo: RepoInfo) -> UpdateRecord:
            ref = _pop_ref(repo.branches, branch)
            if ref.snapshot_id != expected_tip:
                raise ConflictError(encode_id(expected_tip), encode_id(ref.snapshot_id))
            repo.snapshots.append(info)
            repo.branches.append(RepoRef(branch, info.id))
            return UpdateRecord(
                "CommitAmended",
                {"branch": branch, "previous_snap_id": expected_tip, "new_snap_id": info.id},
                0,
            )

        await self.update(apply)

    async def publish_detached(self, info: SnapshotInfoRecord) -> None:
        def apply(repo: RepoInfo) -> UpdateRecord:
            repo.snapshots.append(info)
            return UpdateRecord("NewDetachedSnapshot", {"new_snap_id": info.id}, 0)

        await self.update(apply)

    async def set_metadata(self, metadata: dict[str, Any]) -> None:
        def apply(repo: RepoInfo) -> UpdateRecord:
            repo.metadata = dict(metadata)
            return UpdateRecord("MetadataChanged", {}, 0)

        await self.update(apply)


def _copy_repo_info(info: RepoInfo) -> RepoInfo:
    return dataclasses.replace(
        info,
        branches=list(info.branches),
        tags=list(info.tags),
        deleted_tags=list(info.deleted_tags),
        snapshots=list(info.snapshots),
        metadata=dict(info.metadata),
        latest_updates=list(info.latest_updates),
    )


def _pop_ref(refs: list[RepoRef], name: str) -> RepoRef:
    for i, ref in enumerate(refs):
        if ref.name == name:
            return refs.pop(i)
    raise _not_found(name)


def _require_snapshot(info: RepoInfo, snapshot_id: bytes) -> None:
    if not any(rec.id == snapshot_id for rec in info.snapshots):
        raise _snapshot_not_found(snapshot_id)


def _require_flag(info: RepoInfo, flag_id: int, name: str) -> None:
    if info.disabled_feature_flags and flag_id in info.disabled_feature_flags:
        raise SessionStateError(
            f"the `{name}` feature is disabled in this repository", ErrorKind.FEATURE_DISABLED
        )
