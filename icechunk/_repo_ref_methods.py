"""Repository methods for branches, tags and history (ancestry, lookups, ops log, diff).

Part of :class:`icechunk.repository.Repository` (a base class of it); the refs themselves
live in :mod:`icechunk._core.refs`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

from icechunk._repo_base import RepositoryBase
from icechunk._sync import sync, sync_twin
from icechunk.format.ids import encode_id, parse_snapshot_id
from icechunk.format.model import RepoStatus as StatusRecord
from icechunk.format.model import (
    SnapshotInfoRecord,
)
from icechunk.ops import Update, UpdateType
from icechunk.repo_status import RepoStatus
from icechunk.snapshots import Diff, SnapshotInfo
from icechunk.snapshots import ManifestFileInfo as PublicManifestFileInfo

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


def _to_datetime(us: int) -> datetime:
    """Microseconds since the epoch as an aware UTC datetime, exactly (no float rounding)."""
    return _EPOCH + timedelta(microseconds=us)


def _to_us(dt: datetime) -> int:
    """An aware datetime (naive ones are taken as UTC) as microseconds since the epoch, exactly."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // _ONE_US


def _public_info(rec: SnapshotInfoRecord) -> SnapshotInfo:
    return SnapshotInfo(
        id=encode_id(rec.id),
        parent_id=None if rec.parent_id is None else encode_id(rec.parent_id),
        written_at=_to_datetime(rec.flushed_at),
        message=rec.message,
        metadata=dict(rec.metadata),
    )


class _ListIterator[T]:
    """An iterator over a ready list that is also an async iterator (like icechunk's).

    ``repo.ancestry(...)`` can be consumed with ``for`` and with ``async for``.
    """

    __slots__ = ("_items",)

    def __init__(self, items: list[T]) -> None:
        self._items = iter(items)

    def __iter__(self) -> _ListIterator[T]:
        return self

    def __next__(self) -> T:
        return next(self._items)

    def __aiter__(self) -> _ListIterator[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return next(self._items)
        except StopIteration:
            raise StopAsyncIteration from None

    def close(self) -> None:
        self._items = iter(())

    async def aclose(self) -> None:
        self.close()


class RepositoryRefMethods(RepositoryBase):
    """The branch, tag and history methods of :class:`Repository`."""

    # -- branches ---------------------------------------------------------------------------

    async def list_branches_async(self) -> set[str]:
        """The names of every branch, ``main`` included."""
        return set(await self._objects.refs.branches())

    list_branches = sync_twin(list_branches_async)

    async def lookup_branch_async(self, branch: str) -> str:
        """The id of the snapshot at the tip of ``branch``.

        Raises
        ------
        RefNotFoundError
            No branch of that name.
        """
        return encode_id(await self._objects.refs.branch_tip(branch))

    lookup_branch = sync_twin(lookup_branch_async)

    async def create_branch_async(self, branch: str, snapshot_id: str) -> None:
        """Create ``branch`` pointing at ``snapshot_id``.

        Parameters
        ----------
        branch
            The new branch's name (a valid ref name: not empty, no ``/``).
        snapshot_id
            An existing snapshot of this repository.

        Raises
        ------
        AlreadyExistsError
            A branch of that name exists (``branch-already-exists``).
        SnapshotNotFoundError
            ``snapshot_id`` is not a snapshot of this repository.
        InvalidInputError
            The name or the id is malformed.
        """
        await self._objects.refs.create_branch(branch, parse_snapshot_id(snapshot_id))

    create_branch = sync_twin(create_branch_async)

    async def reset_branch_async(
        self, branch: str, snapshot_id: str, *, from_snapshot_id: str | None = None
    ) -> None:
        """Point ``branch`` at ``snapshot_id``, rewriting its history.

        Commits after ``snapshot_id`` are no longer reachable from the branch (expiration and
        garbage collection may then remove them).

        Parameters
        ----------
        branch
            An existing branch.
        snapshot_id
            The snapshot the branch points at afterwards.
        from_snapshot_id
            If given, reset only if the branch still points at this snapshot (a
            compare-and-swap).

        Raises
        ------
        RefNotFoundError
            No branch of that name.
        SnapshotNotFoundError
            ``snapshot_id`` is not a snapshot of this repository.
        ConflictError
            The branch does not point at ``from_snapshot_id`` (``branch-update-conflict``).
        """
        expected = None if from_snapshot_id is None else parse_snapshot_id(from_snapshot_id)
        await self._objects.refs.reset_branch(branch, parse_snapshot_id(snapshot_id), expected)

    reset_branch = sync_twin(reset_branch_async)

    async def delete_branch_async(self, branch: str) -> None:
        """Delete ``branch``; its snapshots stay until expiration and GC remove them.

        Raises
        ------
        RefNotFoundError
            No branch of that name.
        SessionStateError
            ``branch`` is ``main``, which cannot be deleted.
        """
        await self._objects.refs.delete_branch(branch)

    delete_branch = sync_twin(delete_branch_async)

    # -- tags -------------------------------------------------------------------------------

    async def list_tags_async(self) -> set[str]:
        """The names of every tag (deleted tags excluded)."""
        return set(await self._objects.refs.tags())

    list_tags = sync_twin(list_tags_async)

    async def lookup_tag_async(self, tag: str) -> str:
        """The id of the snapshot ``tag`` points at.

        Raises
        ------
        RefNotFoundError
            No tag of that name.
        """
        return encode_id(await self._objects.refs.tag_target(tag))

    lookup_tag = sync_twin(lookup_tag_async)

    async def create_tag_async(self, tag: str, snapshot_id: str) -> None:
        """Create the immutable tag ``tag`` at ``snapshot_id``.

        Raises
        ------
        AlreadyExistsError
            A tag of that name exists, or existed and was deleted (tag names are never
            reused: ``tag-already-exists`` / ``tag-previously-deleted``).
        SnapshotNotFoundError
            ``snapshot_id`` is not a snapshot of this repository.
        InvalidInputError
            The name or the id is malformed.
        """
        await self._objects.refs.create_tag(tag, parse_snapshot_id(snapshot_id))

    create_tag = sync_twin(create_tag_async)

    async def delete_tag_async(self, tag: str) -> None:
        """Delete ``tag``. Its name cannot be used for a new tag afterwards.

        Raises
        ------
        RefNotFoundError
            No tag of that name.
        """
        await self._objects.refs.delete_tag(tag)

    delete_tag = sync_twin(delete_tag_async)

    # -- history ----------------------------------------------------------------------------

    def ancestry(
        self,
        *,
        branch: str | None = None,
        tag: str | None = None,
        snapshot_id: str | None = None,
    ) -> Iterator[SnapshotInfo]:
        """The snapshot and its ancestors, newest first, ending at the root snapshot.

        The result is an iterator and an async iterator.
        """
        return _ListIterator(sync(self._ancestry_list(branch, tag, snapshot_id)))

    async def _ancestry_list(
        self, branch: str | None, tag: str | None, snapshot_id: str | None
    ) -> list[SnapshotInfo]:
        start = await self._objects.resolve(branch, tag, snapshot_id)
        return [_public_info(r) for r in await self._objects.refs.ancestry(start)]

    async def async_ancestry(
        self,
        *,
        branch: str | None = None,
        tag: str | None = None,
        snapshot_id: str | None = None,
    ) -> AsyncIterator[SnapshotInfo]:
        """Async twin of :meth:`ancestry`: the same snapshots, as an async iterator."""
        for info in await self._ancestry_list(branch, tag, snapshot_id):
            yield info

    async def lookup_snapshot_async(self, snapshot_id: str) -> SnapshotInfo:
        """The :class:`~icechunk.SnapshotInfo` of ``snapshot_id``.

        Raises
        ------
        SnapshotNotFoundError
            No such snapshot in this repository.
        """
        return _public_info(await self._objects.refs.snapshot_info(parse_snapshot_id(snapshot_id)))

    lookup_snapshot = sync_twin(lookup_snapshot_async)

    def list_manifest_files(self, snapshot_id: str) -> list[PublicManifestFileInfo]:
        """The manifest files the snapshot ``snapshot_id`` lists (id, size, number of refs).

        Raises
        ------
        SnapshotNotFoundError
            No such snapshot in this repository.
        """
        return sync(self.list_manifest_files_async(snapshot_id))

    async def list_manifest_files_async(self, snapshot_id: str) -> list[PublicManifestFileInfo]:
        """Async twin of :meth:`list_manifest_files`."""
        snap = await self._objects.load_snapshot(parse_snapshot_id(snapshot_id))
        return [
            PublicManifestFileInfo(encode_id(m.id), m.size_bytes, m.num_chunk_refs)
            for m in snap.manifest_files
        ]

    def ops_log(self) -> Iterator[Update]:
        """Every repository mutation, newest first (spec 2 only)."""
        return _ListIterator(sync(self._ops_log_list()))

    async def ops_log_async(self) -> AsyncIterator[Update]:
        """Async twin of :meth:`ops_log`: ``async for update in repo.ops_log_async()``."""
        for update in await self._ops_log_list():
            yield update

    async def _ops_log_list(self) -> list[Update]:
        out = []
        for rec in await self._objects.refs.ops_log():
            fields = {
                k: encode_id(v) if isinstance(v, bytes) and len(v) == 12 else v
                for k, v in rec.fields.items()
            }
            if rec.kind == "FeatureFlagChanged":
                fields = {
                    "id": fields.get("id"),
                    "new_value": fields.get("new_value") if fields.get("is_set") else None,
                }
            elif rec.kind == "RepoStatusChanged":
                record = fields.get("status")
                if isinstance(record, StatusRecord):
                    fields = {"status": RepoStatus.from_record(record)}
            out.append(
                Update(
                    UpdateType.of(rec.kind, fields), _to_datetime(rec.updated_at), rec.backup_path
                )
            )
        return out

    async def diff_async(
        self,
        *,
        from_branch: str | None = None,
        from_tag: str | None = None,
        from_snapshot_id: str | None = None,
        to_branch: str | None = None,
        to_tag: str | None = None,
        to_snapshot_id: str | None = None,
    ) -> Diff:
        """The changes between an ancestor snapshot ``from`` and a snapshot ``to``.

        Raises
        ------
        InvalidInputError
            ``from`` is not an ancestor of ``to`` (``bad-snapshot-chain-for-diff``).
        """
        from icechunk._core.diff import diff_snapshots

        start = await self._objects.resolve(from_branch, from_tag, from_snapshot_id)
        end = await self._objects.resolve(to_branch, to_tag, to_snapshot_id)
        return await diff_snapshots(self._objects, start, end)

    diff = sync_twin(diff_async)
