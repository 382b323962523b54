"""Spec 2 refs: everything in the one ``repo`` object, updated by compare-and-swap."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

from icechunk._core.refs.base import (
    _JITTER,
    _YEAR_3000_MS,
    MAIN,
    RefStore,
    SnapshotLoader,
    _branch_conflict,
    _not_found,
    _snapshot_not_found,
    now_us,
    validate_ref_name,
)
from icechunk.errors import (
    AlreadyExistsError,
    ConflictError,
    ErrorKind,
    FormatError,
    ObjectNotFoundError,
    PreconditionFailedError,
    SessionStateError,
)
from icechunk.format import (
    decode_repo_info,
    encode_repo_info,
    layout,
)
from icechunk.format.ids import encode_id, new_id12
from icechunk.format.model import (
    RepoInfo,
    RepoRef,
    RepoStatus,
    SnapshotInfoRecord,
    UpdateRecord,
)
from icechunk.storage.base import IfMatch, Storage, VersionInfo

__all__ = ["RefStoreV2"]


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
        self._last: tuple[bytes, VersionInfo, RepoInfo] | None = None
        """The ``repo`` object as this process last read or wrote it: its bytes, version and
        decoded form. Decoding reuses it when the bytes are unchanged, and the first attempt
        of the next :meth:`update` starts from it instead of reading the object again
        (compare-and-swap catches a stale copy; see :meth:`update`)."""

    def _decode(self, data: bytes, version: VersionInfo) -> RepoInfo:
        """Decode ``repo`` bytes (at ``version``), reusing the last decoding when the bytes
        are unchanged.

        Decoding costs time linear in the number of snapshots and every operation reads the
        object at least once (a commit: the session's base, the update, a rebase...), so this
        saves most decodes. Callers must not mutate the result (:meth:`update` copies it).
        """
        last = self._last
        info = last[2] if last is not None and last[0] == data else None
        if info is None:
            info = decode_repo_info(data, layout.REPO_INFO)
        self._last = (data, version, info)
        return info

    async def read(self) -> RepoInfo:
        try:
            data, version = await self.storage.get_with_version(layout.REPO_INFO)
        except ObjectNotFoundError:
            from icechunk.errors import RepositoryNotFoundError

            raise RepositoryNotFoundError(
                "the repository doesn't exist", ErrorKind.REPOSITORY_NOT_FOUND
            ) from None
        return self._decode(data, version)

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
        self,
        apply: Callable[[RepoInfo], UpdateRecord],
        *,
        allow_when_not_online: bool = False,
        read_only_action: str | None = None,
        read_only_prefix: str = "",
    ) -> RepoInfo:
        """Read-modify-write of ``repo`` with compare-and-swap, retried on contention.

        ``apply`` mutates a fresh copy of the current state and returns the ops-log entry
        describing the change (its ``updated_at`` and ``backup_path`` are filled in here). It may
        raise to abort (a conflict, a missing ref ...); nothing is written then.

        Every update is refused with :class:`ReadOnlyError` (``read-only-repository``) while the
        repository is not online, unless ``allow_when_not_online`` (only for setting the status
        itself); ``read_only_action`` and ``read_only_prefix`` word that error as the real
        Icechunk does for the operation.
        """
        # Start from the copy this process last saw when it can (attempt -1, not counted):
        # with compare-and-swap a stale copy only costs a failed put. Anything refused on the
        # copy (a conflict, a missing ref, read-only) is checked again on the object itself
        # before it is raised.
        use_copy = self._last is not None and self.storage.supports_conditional_update
        for attempt in range(-1 if use_copy else 0, self.max_attempts):
            cached = self._last if attempt < 0 else None
            if cached is not None:
                data, version, _ = cached
            else:
                try:
                    data, version = await self.storage.get_with_version(layout.REPO_INFO)
                except ObjectNotFoundError:
                    from icechunk.errors import RepositoryNotFoundError

                    raise RepositoryNotFoundError(
                        "the repository doesn't exist", ErrorKind.REPOSITORY_NOT_FOUND
                    ) from None
            try:
                current = self._decode(data, version)
                if current.has_unknown_fields:
                    raise FormatError(
                        "the `repo` object has fields this version of icechunk-prefect does "
                        "not know; refusing to rewrite it (upgrade icechunk-prefect)",
                        ErrorKind.UNKNOWN_FORMAT_FIELDS,
                    )
                if current.status.availability != 0 and not allow_when_not_online:
                    from icechunk.repo_status import read_only_error

                    raise read_only_error(current.status, read_only_action, read_only_prefix)
                new = _copy_repo_info(current)
                entry = apply(new)
            except Exception:
                if cached is None:
                    raise
                continue  # refused on the copy: check on the object itself
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
                self.storage.put_copy(layout.OVERWRITTEN + backup, data, source=layout.REPO_INFO)
            )
            try:
                encoded = encode_repo_info(new)
            finally:
                await backup_written
            try:
                written = await self.storage.put(layout.REPO_INFO, encoded, IfMatch(version))
            except PreconditionFailedError:
                if cached is not None:
                    continue  # the copy was stale: read the object and try again at once
                self.cas_failures += 1
                # jittered exponential backoff: 5 immediate tries, then growing waits
                if attempt >= 5:
                    await asyncio.sleep(_JITTER.uniform(0, min(2.0, 0.01 * 2 ** (attempt - 5))))
                continue
            self._last = (encoded, written, new)
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
            _require_flag(info, 4, "tag creation", "create_tag")
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
            _require_flag(info, 5, "tag delete", "delete_tag")
            ref = _pop_ref(info.tags, name)
            info.deleted_tags.append(name)
            return UpdateRecord(
                "TagDeleted", {"name": name, "previous_snap_id": ref.snapshot_id}, 0
            )

        await self.update(apply)

    async def publish_commit(
        self,
        branch: str,
        info: SnapshotInfoRecord,
        expected_parent: bytes,
        *,
        rearrange: bool = False,
    ) -> None:
        def apply(repo: RepoInfo) -> UpdateRecord:
            if rearrange:
                _require_flag(repo, 3, "commit rearrange session", "move_node", _SESSION)
            ref = _pop_ref(repo.branches, branch)
            if ref.snapshot_id != expected_parent:
                raise ConflictError(encode_id(expected_parent), encode_id(ref.snapshot_id))
            repo.snapshots.append(info)
            repo.branches.append(RepoRef(branch, info.id))
            return UpdateRecord("NewCommit", {"branch": branch, "new_snap_id": info.id}, 0)

        await self.update(apply, read_only_prefix=_SESSION)

    async def publish_amend(
        self,
        branch: str,
        info: SnapshotInfoRecord,
        expected_tip: bytes,
        *,
        rearrange: bool = False,
    ) -> None:
        def apply(repo: RepoInfo) -> UpdateRecord:
            if rearrange:
                _require_flag(repo, 3, "commit rearrange session", "move_node", _SESSION)
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

        await self.update(apply, read_only_prefix=_SESSION)

    async def publish_detached(self, info: SnapshotInfoRecord) -> None:
        def apply(repo: RepoInfo) -> UpdateRecord:
            repo.snapshots.append(info)
            return UpdateRecord("NewDetachedSnapshot", {"new_snap_id": info.id}, 0)

        await self.update(apply, read_only_prefix=_SESSION)

    async def set_metadata(self, metadata: dict[str, Any]) -> None:
        def apply(repo: RepoInfo) -> UpdateRecord:
            repo.metadata = dict(metadata)
            return UpdateRecord("MetadataChanged", {}, 0)

        await self.update(apply)

    async def set_status(self, status: RepoStatus) -> None:
        """Set the availability record; allowed whatever the current status is."""

        def apply(repo: RepoInfo) -> UpdateRecord:
            repo.status = status
            return UpdateRecord("RepoStatusChanged", {"status": status}, 0)

        await self.update(apply, allow_when_not_online=True)

    async def set_feature_flag(self, flag_id: int, setting: bool | None) -> None:
        """Enable (``True``), disable (``False``) or reset (``None``) flag ``flag_id``."""

        def apply(repo: RepoInfo) -> UpdateRecord:
            enabled = {f for f in repo.enabled_feature_flags or () if f != flag_id}
            disabled = {f for f in repo.disabled_feature_flags or () if f != flag_id}
            if setting is True:
                enabled.add(flag_id)
            elif setting is False:
                disabled.add(flag_id)
            repo.enabled_feature_flags = sorted(enabled)
            repo.disabled_feature_flags = sorted(disabled)
            fields = {"id": flag_id, "new_value": bool(setting), "is_set": setting is not None}
            return UpdateRecord("FeatureFlagChanged", fields, 0)

        await self.update(apply)

    async def set_config(self, config: bytes | None) -> None:
        """Persist the FlexBuffers repository config (an ops-log ``ConfigChanged`` entry)."""

        def apply(repo: RepoInfo) -> UpdateRecord:
            repo.config = config
            return UpdateRecord("ConfigChanged", {}, 0)

        await self.update(apply)


_SESSION = "session error: "
"""The real Icechunk's prefix of errors raised while committing a session."""


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


def _require_flag(
    info: RepoInfo, flag_id: int, operation: str, name: str, prefix: str = ""
) -> None:
    from icechunk.repo_status import flag_disabled_error, flag_enabled

    if not flag_enabled(flag_id, info.enabled_feature_flags, info.disabled_feature_flags):
        raise flag_disabled_error(operation, name, prefix)
