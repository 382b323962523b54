"""Spec 1 refs: one small JSON object per ref, history in the snapshots' ``parent_id``."""

from __future__ import annotations

import asyncio

from icechunk._core.refs.base import (
    MAIN,
    RefStore,
    _conflict,
    _info_from_snapshot,
    _not_found,
    _snapshot_not_found,
    validate_ref_name,
)
from icechunk.errors import (
    AlreadyExistsError,
    ErrorKind,
    ObjectNotFoundError,
    PreconditionFailedError,
    SessionStateError,
)
from icechunk.format import (
    decode_ref,
    encode_ref,
    layout,
)
from icechunk.format.ids import encode_id
from icechunk.format.model import (
    SnapshotInfoRecord,
)
from icechunk.storage.base import IfMatch, WriteMode

__all__ = ["RefStoreV1"]


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
