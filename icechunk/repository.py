"""The repository: creation and opening, branches and tags, history, sessions.

Every synchronous method is a one-line call of :func:`icechunk._sync.sync` on its ``_async``
twin.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from icechunk._sync import sync
from icechunk.cache import default_cache
from icechunk.chunk_refs import RefIndex, payload_at
from icechunk.config import RepositoryConfig
from icechunk.errors import (
    ErrorKind,
    FormatError,
    InvalidInputError,
    ObjectNotFoundError,
    RepositoryNotFoundError,
    SnapshotNotFoundError,
)
from icechunk.format import (
    decode_snapshot,
    decode_transaction_log,
    encode_manifest,
    encode_ref,
    encode_repo_info,
    encode_snapshot,
    encode_transaction_log,
    layout,
)
from icechunk.format.ids import INITIAL_SNAPSHOT_ID, encode_id, parse_snapshot_id
from icechunk.format.manifest import ManifestView
from icechunk.format.model import (
    ManifestFileInfo,
    RepoInfo,
    RepoRef,
    RepoStatus,
    Snapshot,
    SnapshotInfoRecord,
    TransactionLog,
    UpdateRecord,
)
from icechunk.ops import Update, UpdateType
from icechunk.refs import MAIN, RefStore, RefStoreV1, RefStoreV2, now_us
from icechunk.session import Session, SessionMode, _BaseTree
from icechunk.snapshots import Diff, SnapshotInfo
from icechunk.snapshots import ManifestFileInfo as PublicManifestFileInfo
from icechunk.storage.base import (
    ByteRange,
    OffsetRange,
    RangeRequest,
    Storage,
    SuffixRange,
    WriteMode,
)
from icechunk.types import CommitMethod

if TYPE_CHECKING:
    from icechunk.change_set import ChunkPayload
    from icechunk.conflicts import ConflictSolver
    from icechunk.inspect import AncestryGraph
    from icechunk.maintenance import ChunkStorageStats, GCSummary
    from icechunk.store import IcechunkStore

__all__ = ["Repository"]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)

LAZY_MANIFEST_LOOKUPS = 32
"""Chunk lookups served from a manifest's flatbuffer by binary search before it is decoded."""


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


def _resolve_range(length: int, byte_range: ByteRange | None) -> tuple[int, int]:
    if byte_range is None:
        return 0, length
    match byte_range:
        case RangeRequest(start, end):
            return min(start, length), min(max(end, start), length)
        case OffsetRange(offset):
            return min(offset, length), length
        case SuffixRange(suffix):
            return max(0, length - suffix), length
    raise InvalidInputError(f"unsupported byte range {byte_range!r}")


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


class Repository:
    """An Icechunk repository in some :class:`~icechunk.storage.Storage`.

    Use :meth:`create`, :meth:`open` or :meth:`open_or_create`; do not construct directly.
    """

    def __init__(
        self,
        storage: Storage,
        spec_version: int,
        config: RepositoryConfig | None = None,
        authorize_virtual_chunk_access: dict[str, Any] | None = None,
    ) -> None:
        self._storage = storage
        self._spec_version = spec_version
        self._config = config if config is not None else RepositoryConfig()
        self._authorized = dict(authorize_virtual_chunk_access or {})
        if self._authorized:
            from icechunk.credentials import check_authorizations

            check_authorizations(self._authorized)
        self._default_metadata: dict[str, Any] = {}
        self._refs = self._make_refs()

    def _make_refs(self) -> RefStore:
        if self._spec_version == 1:
            return RefStoreV1(self._storage, self._load_snapshot)
        return RefStoreV2(
            self._storage,
            self._load_snapshot,
            num_updates_per_file=self._config.effective_num_updates_per_repo_info_file,
        )

    # -- pickling ---------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {
            "storage": self._storage,
            "spec_version": self._spec_version,
            "config": self._config,
            "authorized": self._authorized,
            "default_metadata": self._default_metadata,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._storage = state["storage"]
        self._spec_version = state["spec_version"]
        self._config = state["config"]
        self._authorized = state["authorized"]
        self._default_metadata = state["default_metadata"]
        self._refs = self._make_refs()

    def __repr__(self) -> str:
        storage = " ".join(repr(self._storage).split())  # one line
        return f"<Repository spec_version={self._spec_version} storage={storage}>"

    # -- properties -------------------------------------------------------------------------

    @property
    def storage(self) -> Storage:
        return self._storage

    @property
    def config(self) -> RepositoryConfig:
        return self._config

    @property
    def spec_version(self) -> int:
        return self._spec_version

    @property
    def authorized_virtual_container_prefixes(self) -> set[str]:
        return set(self._authorized)

    # -- creation and opening ---------------------------------------------------------------

    @classmethod
    def create(
        cls,
        storage: Storage,
        config: RepositoryConfig | None = None,
        authorize_virtual_chunk_access: dict[str, Any] | None = None,
        spec_version: int | None = None,
        check_clean_root: bool = True,
    ) -> Repository:
        """Create a repository (spec 2 unless ``spec_version=1``) in an empty location.

        Raises
        ------
        InvalidInputError
            The location is not empty (``parent-directory-not-clean``), or the spec version
            is unknown.
        """
        return sync(
            cls.create_async(
                storage, config, authorize_virtual_chunk_access, spec_version, check_clean_root
            )
        )

    @classmethod
    async def create_async(
        cls,
        storage: Storage,
        config: RepositoryConfig | None = None,
        authorize_virtual_chunk_access: dict[str, Any] | None = None,
        spec_version: int | None = None,
        check_clean_root: bool = True,
    ) -> Repository:
        version = 2 if spec_version is None else int(spec_version)
        if version not in (1, 2):
            raise InvalidInputError(
                f"Unsupported version {spec_version!r}: use spec version 1 or 2",
                ErrorKind.UNSUPPORTED_SPEC_VERSION,
            )
        if check_clean_root and not await storage.is_empty():
            raise InvalidInputError(
                "repositories can only be created in clean prefixes",
                ErrorKind.PARENT_DIRECTORY_NOT_CLEAN,
            )
        repo = cls(storage, version, config, authorize_virtual_chunk_access)
        now = now_us()
        root_meta: dict[str, Any] = {"__icechunk": {"is_root": True}}
        root = Snapshot(
            id=INITIAL_SNAPSHOT_ID,
            parent_id=None,
            nodes=[],
            flushed_at=now,
            message="Repository initialized",
            metadata=root_meta,
            manifest_files=[],
            spec_version=version,
        )
        await storage.put(layout.snapshot_key(INITIAL_SNAPSHOT_ID), encode_snapshot(root, version))
        if version == 1:
            await storage.put(
                layout.branch_key(MAIN), encode_ref(INITIAL_SNAPSHOT_ID), WriteMode.CREATE
            )
        else:
            from icechunk.virtual import persisted_config

            tx = TransactionLog(id=INITIAL_SNAPSHOT_ID, spec_version=2)
            await storage.put(
                layout.transaction_key(INITIAL_SNAPSHOT_ID), encode_transaction_log(tx, 2)
            )
            info = RepoInfo(
                branches=[RepoRef(MAIN, INITIAL_SNAPSHOT_ID)],
                tags=[],
                deleted_tags=[],
                snapshots=[
                    SnapshotInfoRecord(
                        INITIAL_SNAPSHOT_ID, None, now, "Repository initialized", root_meta
                    )
                ],
                status=RepoStatus(0, now, None),
                metadata={},
                latest_updates=[UpdateRecord("RepoInitialized", {}, now, None)],
                config=persisted_config(repo.config),
            )
            try:
                await storage.put(layout.REPO_INFO, encode_repo_info(info), WriteMode.CREATE)
            except Exception as e:
                from icechunk.errors import PreconditionFailedError

                if isinstance(e, PreconditionFailedError):
                    raise InvalidInputError(
                        "repositories can only be created in clean prefixes",
                        ErrorKind.PARENT_DIRECTORY_NOT_CLEAN,
                    ) from None
                raise
        repo._cache_snapshot(root)
        return repo

    @staticmethod
    async def fetch_spec_version_async(storage: Storage) -> int | None:
        """The repository's spec version, or ``None`` when there is no repository there."""
        if await storage.exists(layout.REPO_INFO):
            return 2
        if await storage.exists(layout.branch_key(MAIN)):
            return 1
        return None

    @staticmethod
    def fetch_spec_version(storage: Storage) -> int | None:
        return sync(Repository.fetch_spec_version_async(storage))

    @staticmethod
    def exists(storage: Storage) -> bool:
        return sync(Repository.exists_async(storage))

    @staticmethod
    async def exists_async(storage: Storage) -> bool:
        return await Repository.fetch_spec_version_async(storage) is not None

    @classmethod
    def open(
        cls,
        storage: Storage,
        config: RepositoryConfig | None = None,
        authorize_virtual_chunk_access: dict[str, Any] | None = None,
    ) -> Repository:
        """Open an existing repository.

        Raises
        ------
        RepositoryNotFoundError
            There is no repository at this location.
        """
        return sync(cls.open_async(storage, config, authorize_virtual_chunk_access))

    @classmethod
    async def open_async(
        cls,
        storage: Storage,
        config: RepositoryConfig | None = None,
        authorize_virtual_chunk_access: dict[str, Any] | None = None,
    ) -> Repository:
        version = await cls.fetch_spec_version_async(storage)
        if version is None:
            raise RepositoryNotFoundError(
                "the repository doesn't exist", ErrorKind.REPOSITORY_NOT_FOUND
            )
        repo = cls(storage, version, config, authorize_virtual_chunk_access)
        if version == 2:
            assert isinstance(repo._refs, RefStoreV2)
            info = await repo._refs.read()  # validates the repo object now, not on first use
            if info.config:
                from icechunk.virtual import with_persisted_containers

                repo._config = with_persisted_containers(repo._config, info.config)
        return repo

    @classmethod
    def open_or_create(
        cls,
        storage: Storage,
        config: RepositoryConfig | None = None,
        authorize_virtual_chunk_access: dict[str, Any] | None = None,
        create_version: int | None = None,
        check_clean_root: bool = True,
    ) -> Repository:
        return sync(
            cls.open_or_create_async(
                storage, config, authorize_virtual_chunk_access, create_version, check_clean_root
            )
        )

    @classmethod
    async def open_or_create_async(
        cls,
        storage: Storage,
        config: RepositoryConfig | None = None,
        authorize_virtual_chunk_access: dict[str, Any] | None = None,
        create_version: int | None = None,
        check_clean_root: bool = True,
    ) -> Repository:
        if await cls.exists_async(storage):
            return await cls.open_async(storage, config, authorize_virtual_chunk_access)
        return await cls.create_async(
            storage, config, authorize_virtual_chunk_access, create_version, check_clean_root
        )

    def reopen(
        self,
        config: RepositoryConfig | None = None,
        authorize_virtual_chunk_access: dict[str, Any] | None = None,
    ) -> Repository:
        merged = self._config if config is None else self._config.merge(config)
        auth = (
            self._authorized
            if authorize_virtual_chunk_access is None
            else (authorize_virtual_chunk_access)
        )
        repo = Repository(self._storage, self._spec_version, merged, auth)
        repo._default_metadata = dict(self._default_metadata)
        return repo

    # -- object loading (shared cache) ------------------------------------------------------

    async def _load_snapshot(self, snapshot_id: bytes) -> Snapshot:
        cached = default_cache.get("snapshot", snapshot_id)
        if cached is not None:
            assert isinstance(cached, Snapshot)
            return cached
        key = layout.snapshot_key(snapshot_id)
        try:
            data = await self._storage.get(key)
        except ObjectNotFoundError:
            raise SnapshotNotFoundError(
                f"snapshot id not found `{encode_id(snapshot_id)}`", ErrorKind.SNAPSHOT_NOT_FOUND
            ) from None
        snap = decode_snapshot(data, key)
        if snap.id != snapshot_id:
            raise FormatError(f"{key}: the snapshot inside has id {encode_id(snap.id)}")
        default_cache.put("snapshot", snapshot_id, snap, 4 * len(data) + 1000)
        return snap

    def _cache_snapshot(self, snap: Snapshot) -> None:
        default_cache.put("snapshot", snap.id, snap, 2000 + 300 * len(snap.nodes))

    def _tree_for(self, snapshot: Snapshot) -> _BaseTree:
        tree = default_cache.get("tree", snapshot.id)
        if tree is None:
            tree = _BaseTree(snapshot)
            default_cache.put("tree", snapshot.id, tree, 1000 + 400 * len(snapshot.nodes))
        assert isinstance(tree, _BaseTree)
        return tree

    async def _manifest_view(self, manifest_id: bytes) -> ManifestView:
        """Fetch and open (not decode) a manifest; it is cached for :meth:`_manifest_ref`."""
        mkey = layout.manifest_key(manifest_id)
        try:
            data = await self._storage.get(mkey)
        except ObjectNotFoundError:
            raise FormatError(
                f"manifest {encode_id(manifest_id)} referenced by the snapshot is missing",
                ErrorKind.FORMAT,
            ) from None
        view = ManifestView(data, mkey)
        default_cache.put("manifestview", manifest_id, view, view.nbytes + 1000)
        return view

    async def _manifest_ref(
        self,
        manifest_id: bytes,
        node_id: bytes,
        info: ManifestFileInfo | None,
        coords: tuple[int, ...],
    ) -> ChunkPayload | None:
        """The payload of chunk ``coords`` of array ``node_id`` in a manifest, or ``None``.

        The first :data:`LAZY_MANIFEST_LOOKUPS` lookups in a manifest that is not decoded yet
        binary-search its flatbuffer and decode the one ref found (opening a session to read
        a chunk does not decode a 100k-ref manifest); later ones decode the whole manifest
        once and use its index.
        """
        index = default_cache.get("refindex", manifest_id + node_id)
        if index is None and default_cache.get("manifest", manifest_id) is None:
            view = default_cache.get("manifestview", manifest_id)
            if not isinstance(view, ManifestView):
                view = await self._manifest_view(manifest_id)
            if view.lookups < LAZY_MANIFEST_LOOKUPS:
                view.lookups += 1
                ref = view.lookup(node_id, coords)
                return None if ref is None else payload_at(ref, 0)
        index = await self._manifest_index(manifest_id, node_id, info)
        if index is None:
            return None
        i = index.find(coords)
        return None if i is None else payload_at(index.refs, i)

    async def _manifest_index(
        self, manifest_id: bytes, node_id: bytes, info: ManifestFileInfo | None
    ) -> RefIndex | None:
        key = manifest_id + node_id
        index = default_cache.get("refindex", key)
        if index is not None:
            assert isinstance(index, RefIndex)
            return index
        manifest = default_cache.get("manifest", manifest_id)
        if manifest is None:
            view = default_cache.get("manifestview", manifest_id)
            if not isinstance(view, ManifestView):
                view = await self._manifest_view(manifest_id)
            manifest = view.decode()
            default_cache.put("manifest", manifest_id, manifest, 3 * view.nbytes + 1000)
        for array in manifest.arrays:
            if array.node_id == node_id:
                index = RefIndex(array.refs)
                default_cache.put("refindex", key, index, 64 * len(array.refs) + 1000)
                return index
        return None

    async def _load_transaction_log(self, snapshot_id: bytes) -> TransactionLog:
        cached = default_cache.get("txlog", snapshot_id)
        if cached is not None:
            assert isinstance(cached, TransactionLog)
            return cached
        key = layout.transaction_key(snapshot_id)
        data = await self._storage.get(key)
        tx = decode_transaction_log(data, key)
        default_cache.put("txlog", snapshot_id, tx, 4 * len(data) + 1000)
        return tx

    async def _history_transaction_log(self, snapshot_id: bytes) -> TransactionLog:
        """What changed between ``snapshot_id``'s parent in history and ``snapshot_id``.

        That is the snapshot's own transaction log, merged (oldest first) with the logs of the
        ancestors that expiration cut out between it and its parent (spec 2.1
        ``pruned_ancestor_tx_logs``); logs already collected are skipped. Diff and rebase walk
        history with this, so changes made in expired commits are not forgotten.
        """
        own = await self._load_transaction_log(snapshot_id)
        refs = self._refs
        if not isinstance(refs, RefStoreV2):
            return own
        pruned: tuple[bytes, ...] = ()
        for rec in (await refs.read()).snapshots:
            if rec.id == snapshot_id:
                pruned = tuple(rec.pruned_ancestor_tx_logs or ())
                break
        if not pruned:
            return own
        logs: list[TransactionLog] = []
        for pid in pruned:
            try:
                logs.append(await self._load_transaction_log(pid))
            except ObjectNotFoundError:
                continue
        return TransactionLog.merged([*logs, own])

    async def _fetch_payload(self, payload: ChunkPayload, byte_range: ByteRange | None) -> bytes:
        from icechunk.change_set import InlinePayload, NativePayload

        if isinstance(payload, InlinePayload):
            start, end = _resolve_range(len(payload.data), byte_range)
            return payload.data[start:end]
        start, end = _resolve_range(payload.length, byte_range)
        if isinstance(payload, NativePayload):
            if start >= end:
                return b""
            return await self._storage.get(
                layout.chunk_key(payload.chunk_id),
                RangeRequest(payload.offset + start, payload.offset + end),
            )
        from icechunk.virtual import fetch_virtual

        return await fetch_virtual(self, payload, start, end)

    def _encode_snapshot(self, snap: Snapshot) -> bytes:
        return encode_snapshot(snap, self._spec_version)

    def _encode_manifest(self, manifest: Any) -> bytes:
        return encode_manifest(manifest, self._spec_version)

    def _encode_transaction_log(self, tx: TransactionLog) -> bytes:
        return encode_transaction_log(tx, self._spec_version)

    # -- branches ---------------------------------------------------------------------------

    def list_branches(self) -> set[str]:
        return sync(self.list_branches_async())

    async def list_branches_async(self) -> set[str]:
        return set(await self._refs.branches())

    def lookup_branch(self, branch: str) -> str:
        return sync(self.lookup_branch_async(branch))

    async def lookup_branch_async(self, branch: str) -> str:
        return encode_id(await self._refs.branch_tip(branch))

    def create_branch(self, branch: str, snapshot_id: str) -> None:
        sync(self.create_branch_async(branch, snapshot_id))

    async def create_branch_async(self, branch: str, snapshot_id: str) -> None:
        await self._refs.create_branch(branch, parse_snapshot_id(snapshot_id))

    def reset_branch(
        self, branch: str, snapshot_id: str, *, from_snapshot_id: str | None = None
    ) -> None:
        sync(self.reset_branch_async(branch, snapshot_id, from_snapshot_id=from_snapshot_id))

    async def reset_branch_async(
        self, branch: str, snapshot_id: str, *, from_snapshot_id: str | None = None
    ) -> None:
        expected = None if from_snapshot_id is None else parse_snapshot_id(from_snapshot_id)
        await self._refs.reset_branch(branch, parse_snapshot_id(snapshot_id), expected)

    def delete_branch(self, branch: str) -> None:
        sync(self.delete_branch_async(branch))

    async def delete_branch_async(self, branch: str) -> None:
        await self._refs.delete_branch(branch)

    # -- tags -------------------------------------------------------------------------------

    def list_tags(self) -> set[str]:
        return sync(self.list_tags_async())

    async def list_tags_async(self) -> set[str]:
        return set(await self._refs.tags())

    def lookup_tag(self, tag: str) -> str:
        return sync(self.lookup_tag_async(tag))

    async def lookup_tag_async(self, tag: str) -> str:
        return encode_id(await self._refs.tag_target(tag))

    def create_tag(self, tag: str, snapshot_id: str) -> None:
        sync(self.create_tag_async(tag, snapshot_id))

    async def create_tag_async(self, tag: str, snapshot_id: str) -> None:
        await self._refs.create_tag(tag, parse_snapshot_id(snapshot_id))

    def delete_tag(self, tag: str) -> None:
        sync(self.delete_tag_async(tag))

    async def delete_tag_async(self, tag: str) -> None:
        await self._refs.delete_tag(tag)

    # -- history ----------------------------------------------------------------------------

    async def _resolve(self, branch: str | None, tag: str | None, snapshot_id: str | None) -> bytes:
        given = [x is not None for x in (branch, tag, snapshot_id)]
        if sum(given) != 1:
            raise ValueError("Must provide one of branch, tag, or snapshot_id")
        if branch is not None:
            return await self._refs.branch_tip(branch)
        if tag is not None:
            return await self._refs.tag_target(tag)
        assert snapshot_id is not None
        return parse_snapshot_id(snapshot_id)

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
        start = await self._resolve(branch, tag, snapshot_id)
        return [_public_info(r) for r in await self._refs.ancestry(start)]

    async def async_ancestry(
        self,
        *,
        branch: str | None = None,
        tag: str | None = None,
        snapshot_id: str | None = None,
    ) -> AsyncIterator[SnapshotInfo]:
        for info in await self._ancestry_list(branch, tag, snapshot_id):
            yield info

    def lookup_snapshot(self, snapshot_id: str) -> SnapshotInfo:
        return sync(self.lookup_snapshot_async(snapshot_id))

    async def lookup_snapshot_async(self, snapshot_id: str) -> SnapshotInfo:
        return _public_info(await self._refs.snapshot_info(parse_snapshot_id(snapshot_id)))

    def list_manifest_files(self, snapshot_id: str) -> list[PublicManifestFileInfo]:
        snap = sync(self._load_snapshot(parse_snapshot_id(snapshot_id)))
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
        for rec in await self._refs.ops_log():
            fields = {
                k: encode_id(v) if isinstance(v, bytes) and len(v) == 12 else v
                for k, v in rec.fields.items()
            }
            out.append(
                Update(
                    UpdateType.of(rec.kind, fields), _to_datetime(rec.updated_at), rec.backup_path
                )
            )
        return out

    def diff(
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
        return sync(
            self.diff_async(
                from_branch=from_branch,
                from_tag=from_tag,
                from_snapshot_id=from_snapshot_id,
                to_branch=to_branch,
                to_tag=to_tag,
                to_snapshot_id=to_snapshot_id,
            )
        )

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
        from icechunk.diff import diff_snapshots

        start = await self._resolve(from_branch, from_tag, from_snapshot_id)
        end = await self._resolve(to_branch, to_tag, to_snapshot_id)
        return await diff_snapshots(self, start, end)

    # -- manifest layout --------------------------------------------------------------------

    def rewrite_manifests(
        self,
        message: str,
        *,
        branch: str,
        metadata: dict[str, Any] | None = None,
        commit_method: CommitMethod = "new_commit",
    ) -> str:
        """Rewrite every array's manifests on ``branch`` to the current splitting config.

        Commits the rewritten layout (data and history are unchanged) as a new commit on
        ``branch`` (``commit_method="new_commit"``), or replaces the branch tip with it
        (``"amend"``, spec 2 only). Like the real Icechunk 2.3, the commit metadata is
        ``metadata`` over :meth:`default_commit_metadata`, with the splitting config in effect
        recorded as ``metadata["__icechunk"]["splitting_config"]`` (the "no splitting" default
        is recorded as one split of ``2**32 - 1`` chunks along every dimension of every array).
        The transaction log lists no changes.

        Returns
        -------
        str
            The id of the new snapshot.

        Raises
        ------
        InvalidInputError
            ``commit_method`` is neither ``"new_commit"`` nor ``"amend"`` (also a
            ``ValueError``), or ``metadata`` is not a JSON-serializable dict.
        SessionStateError
            ``"amend"`` on a spec 1 repository, or on the first commit.
        ConflictError
            The branch moved while the manifests were being rewritten; nothing was published.
        """
        return sync(
            self.rewrite_manifests_async(
                message, branch=branch, metadata=metadata, commit_method=commit_method
            )
        )

    async def rewrite_manifests_async(
        self,
        message: str,
        *,
        branch: str,
        metadata: dict[str, Any] | None = None,
        commit_method: CommitMethod = "new_commit",
    ) -> str:
        from icechunk.config import (
            MAX_SPLIT_SIZE,
            ManifestSplitCondition,
            ManifestSplitDimCondition,
            ManifestSplittingConfig,
        )
        from icechunk.manifest_writer import mark_for_rewrite

        if commit_method not in ("new_commit", "amend"):
            raise InvalidInputError(
                f"Invalid commit method: {commit_method!r}. Expected 'new_commit' or 'amend'.",
                ErrorKind.INVALID_ARGUMENT,
            )
        splitting = self._config.splitting or ManifestSplittingConfig(
            [
                (
                    ManifestSplitCondition.path_matches(".*"),
                    [(ManifestSplitDimCondition.Any(), MAX_SPLIT_SIZE)],
                )
            ]
        )
        props: Any = metadata
        if metadata is None or isinstance(metadata, dict):  # anything else: the session refuses it
            props = dict(metadata or {})
            internal = props.get("__icechunk", self._default_metadata.get("__icechunk"))
            props["__icechunk"] = {
                **(internal if isinstance(internal, dict) else {}),
                "splitting_config": splitting.to_json(),
            }
        session = await self.writable_session_async(branch)
        mark_for_rewrite(session)
        if commit_method == "amend":
            return await session.amend_async(message, metadata=props, allow_empty=True)
        return await session.commit_async(message, props, allow_empty=True)

    # -- metadata ---------------------------------------------------------------------------

    def set_default_commit_metadata(self, metadata: dict[str, Any]) -> None:
        """Metadata merged into every later commit of sessions created after this call."""
        self._default_metadata = dict(metadata)

    def default_commit_metadata(self) -> dict[str, Any]:
        return dict(self._default_metadata)

    def get_metadata(self) -> dict[str, Any]:
        return sync(self._refs.get_metadata())

    @property
    def metadata(self) -> dict[str, Any]:
        return self.get_metadata()

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        sync(self._refs.set_metadata(metadata))

    def update_metadata(self, metadata: dict[str, Any]) -> dict[str, Any]:
        return sync(self.update_metadata_async(metadata))

    async def get_metadata_async(self) -> dict[str, Any]:
        return await self._refs.get_metadata()

    async def set_metadata_async(self, metadata: dict[str, Any]) -> None:
        await self._refs.set_metadata(metadata)

    async def update_metadata_async(self, metadata: dict[str, Any]) -> dict[str, Any]:
        """Merge ``metadata`` into the repository metadata; return the result."""
        current = await self._refs.get_metadata()
        current.update(metadata)
        await self._refs.set_metadata(current)
        return current

    # -- sessions ---------------------------------------------------------------------------

    def readonly_session(
        self,
        branch: str | None = None,
        *,
        tag: str | None = None,
        snapshot_id: str | None = None,
        as_of: datetime | None = None,
    ) -> Session:
        """A read-only session on a branch tip, a tag, a snapshot, or a branch ``as_of`` a time."""
        return sync(
            self.readonly_session_async(branch, tag=tag, snapshot_id=snapshot_id, as_of=as_of)
        )

    async def readonly_session_async(
        self,
        branch: str | None = None,
        *,
        tag: str | None = None,
        snapshot_id: str | None = None,
        as_of: datetime | None = None,
    ) -> Session:
        target = await self._resolve(branch, tag, snapshot_id)
        if as_of is not None:
            limit = _to_us(as_of)
            for rec in await self._refs.ancestry(target):
                if rec.flushed_at <= limit:
                    target = rec.id
                    break
            else:
                raise SnapshotNotFoundError(
                    f"no snapshot found at or before {as_of.isoformat()}",
                    ErrorKind.NO_SNAPSHOT_AT_TIME,
                )
        snap = await self._load_snapshot(target)
        return Session(self, snap, branch=None, mode=SessionMode.readonly)

    def writable_session(self, branch: str) -> Session:
        """A session that commits to ``branch``, based on its current tip."""
        return sync(self.writable_session_async(branch))

    async def writable_session_async(self, branch: str) -> Session:
        tip = await self._refs.branch_tip(branch)
        snap = await self._load_snapshot(tip)
        return Session(self, snap, branch=branch, mode=SessionMode.writable)

    @contextlib.contextmanager
    def transaction(
        self,
        branch: str,
        *,
        message: str,
        metadata: dict[str, Any] | None = None,
        rebase_with: ConflictSolver | None = None,
        rebase_tries: int = 1000,
    ) -> Iterator[IcechunkStore]:
        """Yield a writable store on ``branch``; commit on clean exit, not when the body raises."""
        session = self.writable_session(branch)
        yield session.store
        session.commit(message, metadata, rebase_with=rebase_with, rebase_tries=rebase_tries)

    # -- maintenance and inspection (icechunk.maintenance, icechunk.inspect) -----------------

    def expire_snapshots(
        self,
        older_than: datetime,
        *,
        delete_expired_branches: bool = False,
        delete_expired_tags: bool = False,
    ) -> set[str]:
        """Cut the snapshots committed strictly before ``older_than`` out of the history.

        The root snapshot and the tip of ``main`` are never expired; other ref tips are kept
        unless ``delete_expired_branches`` / ``delete_expired_tags`` delete those refs. Nothing
        is deleted from storage (see :meth:`garbage_collect`). The full rules, per spec
        version, are in :mod:`icechunk.maintenance`.

        Returns
        -------
        set[str]
            The ids of the snapshots released from the history.

        Raises
        ------
        InvalidInputError
            ``older_than`` is not a datetime.
        ReadOnlyError
            The repository is not online (spec 2).
        """
        return sync(
            self.expire_snapshots_async(
                older_than,
                delete_expired_branches=delete_expired_branches,
                delete_expired_tags=delete_expired_tags,
            )
        )

    async def expire_snapshots_async(
        self,
        older_than: datetime,
        *,
        delete_expired_branches: bool = False,
        delete_expired_tags: bool = False,
    ) -> set[str]:
        from icechunk import maintenance

        return await maintenance.expire_snapshots(
            self,
            older_than,
            delete_expired_branches=delete_expired_branches,
            delete_expired_tags=delete_expired_tags,
        )

    def garbage_collect(
        self,
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
        progress: Callable[[str, int, int], None] | None = None,
    ) -> GCSummary:
        """Delete the objects unreachable from every branch and tag created before the cutoff.

        ``dry_run`` only counts. ``progress(phase, done, total)`` is called as the collection
        advances. The full rules are in :mod:`icechunk.maintenance`.

        Raises
        ------
        InvalidInputError
            Bad arguments.
        ReadOnlyError
            The repository is not online (spec 2).
        """
        return sync(
            self.garbage_collect_async(
                delete_object_older_than,
                dry_run=dry_run,
                max_snapshots_in_memory=max_snapshots_in_memory,
                max_compressed_manifest_mem_bytes=max_compressed_manifest_mem_bytes,
                max_decoded_manifest_mem_bytes=max_decoded_manifest_mem_bytes,
                max_concurrent_manifest_fetches=max_concurrent_manifest_fetches,
                max_concurrent_deletes=max_concurrent_deletes,
                max_consecutive_delete_failures=max_consecutive_delete_failures,
                max_concurrent_listings=max_concurrent_listings,
                progress=progress,
            )
        )

    async def garbage_collect_async(
        self,
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
        progress: Callable[[str, int, int], None] | None = None,
    ) -> GCSummary:
        from icechunk import maintenance

        return await maintenance.garbage_collect(
            self,
            delete_object_older_than,
            dry_run=dry_run,
            max_snapshots_in_memory=max_snapshots_in_memory,
            max_compressed_manifest_mem_bytes=max_compressed_manifest_mem_bytes,
            max_decoded_manifest_mem_bytes=max_decoded_manifest_mem_bytes,
            max_concurrent_manifest_fetches=max_concurrent_manifest_fetches,
            max_concurrent_deletes=max_concurrent_deletes,
            max_consecutive_delete_failures=max_consecutive_delete_failures,
            max_concurrent_listings=max_concurrent_listings,
            progress=progress,
        )

    def chunk_storage_stats(
        self,
        *,
        max_snapshots_in_memory: int = 50,
        max_compressed_manifest_mem_bytes: int = 512 * 1024 * 1024,
        max_decoded_manifest_mem_bytes: int = 4 * 1024 * 1024 * 1024,
        max_concurrent_manifest_fetches: int = 500,
    ) -> ChunkStorageStats:
        """Chunk bytes (native, virtual, inline) referenced from every branch and tag."""
        return sync(
            self.chunk_storage_stats_async(
                max_snapshots_in_memory=max_snapshots_in_memory,
                max_compressed_manifest_mem_bytes=max_compressed_manifest_mem_bytes,
                max_decoded_manifest_mem_bytes=max_decoded_manifest_mem_bytes,
                max_concurrent_manifest_fetches=max_concurrent_manifest_fetches,
            )
        )

    async def chunk_storage_stats_async(
        self,
        *,
        max_snapshots_in_memory: int = 50,
        max_compressed_manifest_mem_bytes: int = 512 * 1024 * 1024,
        max_decoded_manifest_mem_bytes: int = 4 * 1024 * 1024 * 1024,
        max_concurrent_manifest_fetches: int = 500,
    ) -> ChunkStorageStats:
        from icechunk import maintenance

        return await maintenance.chunk_storage_stats(
            self,
            max_snapshots_in_memory=max_snapshots_in_memory,
            max_compressed_manifest_mem_bytes=max_compressed_manifest_mem_bytes,
            max_decoded_manifest_mem_bytes=max_decoded_manifest_mem_bytes,
            max_concurrent_manifest_fetches=max_concurrent_manifest_fetches,
        )

    def total_chunks_storage(
        self,
        *,
        max_snapshots_in_memory: int = 50,
        max_compressed_manifest_mem_bytes: int = 512 * 1024 * 1024,
        max_decoded_manifest_mem_bytes: int = 4 * 1024 * 1024 * 1024,
        max_concurrent_manifest_fetches: int = 500,
    ) -> int:
        """Deprecated: ``chunk_storage_stats(...).native_bytes``."""
        warnings.warn(
            "`total_chunks_storage` is deprecated: use `chunk_storage_stats(...).native_bytes`",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.chunk_storage_stats(
            max_snapshots_in_memory=max_snapshots_in_memory,
            max_compressed_manifest_mem_bytes=max_compressed_manifest_mem_bytes,
            max_decoded_manifest_mem_bytes=max_decoded_manifest_mem_bytes,
            max_concurrent_manifest_fetches=max_concurrent_manifest_fetches,
        ).native_bytes

    async def total_chunks_storage_async(
        self,
        *,
        max_snapshots_in_memory: int = 50,
        max_compressed_manifest_mem_bytes: int = 512 * 1024 * 1024,
        max_decoded_manifest_mem_bytes: int = 4 * 1024 * 1024 * 1024,
        max_concurrent_manifest_fetches: int = 500,
    ) -> int:
        """Deprecated: ``(await chunk_storage_stats_async(...)).native_bytes``."""
        warnings.warn(
            "`total_chunks_storage_async` is deprecated: use "
            "`chunk_storage_stats_async(...).native_bytes`",
            DeprecationWarning,
            stacklevel=2,
        )
        stats = await self.chunk_storage_stats_async(
            max_snapshots_in_memory=max_snapshots_in_memory,
            max_compressed_manifest_mem_bytes=max_compressed_manifest_mem_bytes,
            max_decoded_manifest_mem_bytes=max_decoded_manifest_mem_bytes,
            max_concurrent_manifest_fetches=max_concurrent_manifest_fetches,
        )
        return stats.native_bytes

    def inspect_snapshot(self, snapshot_id: str) -> dict[str, Any]:
        """The snapshot file as a dict (see :func:`icechunk.inspect.inspect_snapshot`)."""
        return sync(self.inspect_snapshot_async(snapshot_id))

    async def inspect_snapshot_async(self, snapshot_id: str) -> dict[str, Any]:
        from icechunk import inspect

        return await inspect.inspect_snapshot(self, snapshot_id)

    def inspect_manifest(self, manifest_id: str) -> dict[str, Any]:
        """The manifest file as a dict (see :func:`icechunk.inspect.inspect_manifest`)."""
        return sync(self.inspect_manifest_async(manifest_id))

    async def inspect_manifest_async(self, manifest_id: str) -> dict[str, Any]:
        from icechunk import inspect

        return await inspect.inspect_manifest(self, manifest_id)

    def inspect_transaction_log(self, snapshot_id: str) -> dict[str, Any]:
        """A transaction log as a dict (see :func:`icechunk.inspect.inspect_transaction_log`)."""
        return sync(self.inspect_transaction_log_async(snapshot_id))

    async def inspect_transaction_log_async(self, snapshot_id: str) -> dict[str, Any]:
        from icechunk import inspect

        return await inspect.inspect_transaction_log(self, snapshot_id)

    def inspect_repo_info(self) -> dict[str, Any]:
        """The spec-2 ``repo`` object as a dict (see :func:`icechunk.inspect.inspect_repo_info`)."""
        return sync(self.inspect_repo_info_async())

    async def inspect_repo_info_async(self) -> dict[str, Any]:
        from icechunk import inspect

        return await inspect.inspect_repo_info(self)

    def ancestry_graph(
        self,
        *,
        branch: str | None = None,
        tag: str | None = None,
        snapshot_id: str | None = None,
        plain: bool = False,
    ) -> AncestryGraph:
        """The history of every branch as a tree, or of one ref or snapshot as a line.

        ``print()`` it for text (ANSI colours unless ``plain``); Jupyter shows it as SVG.
        """
        return sync(
            self.ancestry_graph_async(branch=branch, tag=tag, snapshot_id=snapshot_id, plain=plain)
        )

    async def ancestry_graph_async(
        self,
        *,
        branch: str | None = None,
        tag: str | None = None,
        snapshot_id: str | None = None,
        plain: bool = False,
    ) -> AncestryGraph:
        from icechunk import inspect

        return await inspect.ancestry_graph(
            self, branch=branch, tag=tag, snapshot_id=snapshot_id, plain=plain
        )
