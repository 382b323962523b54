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

from icechunk._core.objects import LAZY_MANIFEST_LOOKUPS, RepoObjects
from icechunk._core.preload import start_preload
from icechunk._core.refs import MAIN, RefStoreV2, now_us
from icechunk._sync import sync, sync_twin
from icechunk.config import RepositoryConfig
from icechunk.errors import (
    ErrorKind,
    InvalidInputError,
    RepositoryNotFoundError,
    SnapshotNotFoundError,
)
from icechunk.format import (
    encode_ref,
    encode_repo_info,
    encode_snapshot,
    encode_transaction_log,
    layout,
)
from icechunk.format.ids import INITIAL_SNAPSHOT_ID, encode_id, parse_snapshot_id
from icechunk.format.model import (
    RepoInfo,
    RepoRef,
    RepoStatus,
    Snapshot,
    SnapshotInfoRecord,
    TransactionLog,
    UpdateRecord,
)
from icechunk.ops import Update, UpdateType
from icechunk.session import Session, SessionMode
from icechunk.snapshots import Diff, SnapshotInfo
from icechunk.snapshots import ManifestFileInfo as PublicManifestFileInfo
from icechunk.storage.base import (
    Storage,
    WriteMode,
)
from icechunk.types import CommitMethod

if TYPE_CHECKING:
    from icechunk._core.conflicts import ConflictSolver
    from icechunk._core.inspect import AncestryGraph
    from icechunk._core.maintenance import ChunkStorageStats, GCSummary
    from icechunk.store import IcechunkStore

__all__ = ["LAZY_MANIFEST_LOOKUPS", "Repository"]


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
        authorized = dict(authorize_virtual_chunk_access or {})
        if authorized:
            from icechunk.credentials import check_authorizations

            check_authorizations(authorized)
        self._objects = RepoObjects(
            storage,
            spec_version,
            config if config is not None else RepositoryConfig(),
            authorized,
        )
        """The engine's object service for this repository (everything below the facade)."""
        self._default_metadata: dict[str, Any] = {}

    # -- pickling ---------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {
            "storage": self._objects.storage,
            "spec_version": self._objects.spec_version,
            "config": self._objects.config,
            "authorized": self._objects.authorized,
            "default_metadata": self._default_metadata,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        # The same state as before the engine split, so older pickles still load.
        self._objects = RepoObjects(
            state["storage"], state["spec_version"], state["config"], state["authorized"]
        )
        self._default_metadata = state["default_metadata"]

    def __repr__(self) -> str:
        storage = " ".join(repr(self._objects.storage).split())  # one line
        return f"<Repository spec_version={self._objects.spec_version} storage={storage}>"

    # -- properties -------------------------------------------------------------------------

    @property
    def storage(self) -> Storage:
        """Where the repository lives."""
        return self._objects.storage

    @property
    def config(self) -> RepositoryConfig:
        """The configuration in effect: persisted settings merged with those given at open."""
        return self._objects.config

    @property
    def spec_version(self) -> int:
        """The on-disk format version of the repository (1 or 2)."""
        return self._objects.spec_version

    @property
    def authorized_virtual_container_prefixes(self) -> set[str]:
        """The virtual chunk container URL prefixes this handle may read from."""
        return set(self._objects.authorized)

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
        """Async twin of :meth:`create` (same parameters, errors and result)."""
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
        repo._objects.cache_snapshot(root)
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
        """The spec version of the repository in ``storage``; ``None`` if there is none."""
        return sync(Repository.fetch_spec_version_async(storage))

    @staticmethod
    def exists(storage: Storage) -> bool:
        """Whether ``storage`` holds a repository (of either spec version)."""
        return sync(Repository.exists_async(storage))

    @staticmethod
    async def exists_async(storage: Storage) -> bool:
        """Async twin of :meth:`exists`."""
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
        """Async twin of :meth:`open` (same parameters, errors and result)."""
        version = await cls.fetch_spec_version_async(storage)
        if version is None:
            raise RepositoryNotFoundError(
                "the repository doesn't exist", ErrorKind.REPOSITORY_NOT_FOUND
            )
        repo = cls(storage, version, config, authorize_virtual_chunk_access)
        if version == 2:
            assert isinstance(repo._objects.refs, RefStoreV2)
            info = (
                await repo._objects.refs.read()
            )  # validates the repo object now, not on first use
            if info.config:
                from icechunk.virtual import with_persisted_containers

                repo._objects.config = with_persisted_containers(repo._objects.config, info.config)
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
        """Open the repository in ``storage``, or create one there (spec ``create_version``).

        Raises
        ------
        InvalidInputError
            There is no repository and the location is not empty (see :meth:`create`).
        """
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
        """Async twin of :meth:`open_or_create`."""
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
        """A new handle on the same repository, with ``config`` merged into this one's.

        ``authorize_virtual_chunk_access`` replaces this handle's authorizations when given;
        the default commit metadata is carried over. Nothing is read or written.
        """
        merged = self._objects.config if config is None else self._objects.config.merge(config)
        auth = (
            self._objects.authorized
            if authorize_virtual_chunk_access is None
            else (authorize_virtual_chunk_access)
        )
        repo = Repository(self._objects.storage, self._objects.spec_version, merged, auth)
        repo._default_metadata = dict(self._default_metadata)
        return repo

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
        snap = sync(self._objects.load_snapshot(parse_snapshot_id(snapshot_id)))
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

    # -- manifest layout --------------------------------------------------------------------

    async def rewrite_manifests_async(
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
        from icechunk._core.manifest_writer import mark_for_rewrite
        from icechunk.config import (
            MAX_SPLIT_SIZE,
            ManifestSplitCondition,
            ManifestSplitDimCondition,
            ManifestSplittingConfig,
        )

        if commit_method not in ("new_commit", "amend"):
            raise InvalidInputError(
                f"Invalid commit method: {commit_method!r}. Expected 'new_commit' or 'amend'.",
                ErrorKind.INVALID_ARGUMENT,
            )
        splitting = self._objects.config.splitting or ManifestSplittingConfig(
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

    rewrite_manifests = sync_twin(rewrite_manifests_async)

    # -- metadata ---------------------------------------------------------------------------

    def set_default_commit_metadata(self, metadata: dict[str, Any]) -> None:
        """Metadata merged into every later commit of sessions created after this call."""
        self._default_metadata = dict(metadata)

    def default_commit_metadata(self) -> dict[str, Any]:
        """A copy of the metadata set by :meth:`set_default_commit_metadata`."""
        return dict(self._default_metadata)

    async def get_metadata_async(self) -> dict[str, Any]:
        """The repository-level metadata (spec 2 only).

        Raises
        ------
        SessionStateError
            The repository is spec version 1, which has no repository metadata.
        """
        return await self._objects.refs.get_metadata()

    get_metadata = sync_twin(get_metadata_async)

    @property
    def metadata(self) -> dict[str, Any]:
        """The repository-level metadata; see :meth:`get_metadata_async`."""
        return self.get_metadata()

    async def set_metadata_async(self, metadata: dict[str, Any]) -> None:
        """Replace the repository-level metadata with ``metadata`` (spec 2 only).

        Raises
        ------
        SessionStateError
            The repository is spec version 1, which has no repository metadata.
        """
        await self._objects.refs.set_metadata(metadata)

    set_metadata = sync_twin(set_metadata_async)

    async def update_metadata_async(self, metadata: dict[str, Any]) -> dict[str, Any]:
        """Merge ``metadata`` into the repository metadata; return the result."""
        current = await self._objects.refs.get_metadata()
        current.update(metadata)
        await self._objects.refs.set_metadata(current)
        return current

    update_metadata = sync_twin(update_metadata_async)

    # -- sessions ---------------------------------------------------------------------------

    async def readonly_session_async(
        self,
        branch: str | None = None,
        *,
        tag: str | None = None,
        snapshot_id: str | None = None,
        as_of: datetime | None = None,
    ) -> Session:
        """A read-only session on a branch tip, a tag, a snapshot, or a branch ``as_of`` a time."""
        target = await self._objects.resolve(branch, tag, snapshot_id)
        if as_of is not None:
            limit = _to_us(as_of)
            for rec in await self._objects.refs.ancestry(target):
                if rec.flushed_at <= limit:
                    target = rec.id
                    break
            else:
                raise SnapshotNotFoundError(
                    f"no snapshot found at or before {as_of.isoformat()}",
                    ErrorKind.NO_SNAPSHOT_AT_TIME,
                )
        snap = await self._objects.load_snapshot(target)
        start_preload(self._objects, snap)
        return Session(self, snap, branch=None, mode=SessionMode.readonly)

    readonly_session = sync_twin(readonly_session_async)

    async def writable_session_async(self, branch: str) -> Session:
        """A session that commits to ``branch``, based on its current tip."""
        tip = await self._objects.refs.branch_tip(branch)
        snap = await self._objects.load_snapshot(tip)
        start_preload(self._objects, snap)
        return Session(self, snap, branch=branch, mode=SessionMode.writable)

    writable_session = sync_twin(writable_session_async)

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

    async def expire_snapshots_async(
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
        from icechunk._core import maintenance

        return await maintenance.expire_snapshots(
            self._objects,
            older_than,
            delete_expired_branches=delete_expired_branches,
            delete_expired_tags=delete_expired_tags,
        )

    expire_snapshots = sync_twin(expire_snapshots_async)

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
        from icechunk._core import maintenance

        return await maintenance.garbage_collect(
            self._objects,
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

    garbage_collect = sync_twin(garbage_collect_async)

    async def chunk_storage_stats_async(
        self,
        *,
        max_snapshots_in_memory: int = 50,
        max_compressed_manifest_mem_bytes: int = 512 * 1024 * 1024,
        max_decoded_manifest_mem_bytes: int = 4 * 1024 * 1024 * 1024,
        max_concurrent_manifest_fetches: int = 500,
    ) -> ChunkStorageStats:
        """Chunk bytes (native, virtual, inline) referenced from every branch and tag."""
        from icechunk._core import maintenance

        return await maintenance.chunk_storage_stats(
            self._objects,
            max_snapshots_in_memory=max_snapshots_in_memory,
            max_compressed_manifest_mem_bytes=max_compressed_manifest_mem_bytes,
            max_decoded_manifest_mem_bytes=max_decoded_manifest_mem_bytes,
            max_concurrent_manifest_fetches=max_concurrent_manifest_fetches,
        )

    chunk_storage_stats = sync_twin(chunk_storage_stats_async)

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

    async def inspect_snapshot_async(self, snapshot_id: str) -> dict[str, Any]:
        """The snapshot file as a dict (see :func:`icechunk.inspect.inspect_snapshot`)."""
        from icechunk._core import inspect

        return await inspect.inspect_snapshot(self._objects, snapshot_id)

    inspect_snapshot = sync_twin(inspect_snapshot_async)

    async def inspect_manifest_async(self, manifest_id: str) -> dict[str, Any]:
        """The manifest file as a dict (see :func:`icechunk.inspect.inspect_manifest`)."""
        from icechunk._core import inspect

        return await inspect.inspect_manifest(self._objects, manifest_id)

    inspect_manifest = sync_twin(inspect_manifest_async)

    async def inspect_transaction_log_async(self, snapshot_id: str) -> dict[str, Any]:
        """A transaction log as a dict (see :func:`icechunk.inspect.inspect_transaction_log`)."""
        from icechunk._core import inspect

        return await inspect.inspect_transaction_log(self._objects, snapshot_id)

    inspect_transaction_log = sync_twin(inspect_transaction_log_async)

    async def inspect_repo_info_async(self) -> dict[str, Any]:
        """The spec-2 ``repo`` object as a dict (see :func:`icechunk.inspect.inspect_repo_info`)."""
        from icechunk._core import inspect

        return await inspect.inspect_repo_info(self._objects)

    inspect_repo_info = sync_twin(inspect_repo_info_async)

    async def ancestry_graph_async(
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
        from icechunk._core import inspect

        return await inspect.ancestry_graph(
            self._objects, branch=branch, tag=tag, snapshot_id=snapshot_id, plain=plain
        )

    ancestry_graph = sync_twin(ancestry_graph_async)
