"""The repository: creation and opening, branches and tags, history, sessions.

Every synchronous method is a one-line call of :func:`icechunk._sync.sync` on its ``_async``
twin.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from icechunk._core.objects import LAZY_MANIFEST_LOOKUPS, RepoObjects
from icechunk._core.preload import start_preload
from icechunk._core.refs import MAIN, RefStoreV2, now_us
from icechunk._repo_admin_methods import RepositoryAdminMethods
from icechunk._repo_maintenance_methods import RepositoryMaintenanceMethods
from icechunk._repo_ref_methods import RepositoryRefMethods, _to_us
from icechunk._sync import sync, sync_twin
from icechunk.attribution import Attribution
from icechunk.config import RepositoryConfig
from icechunk.config_codec import encode_flexbuffers
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
from icechunk.format.ids import INITIAL_SNAPSHOT_ID
from icechunk.format.model import (
    RepoInfo,
    RepoRef,
    Snapshot,
    SnapshotInfoRecord,
    TransactionLog,
    UpdateRecord,
)
from icechunk.format.model import RepoStatus as StatusRecord
from icechunk.session import Session, SessionMode
from icechunk.storage import StorageSettings, apply_settings
from icechunk.storage.base import (
    Storage,
    WriteMode,
)
from icechunk.types import CommitMethod

if TYPE_CHECKING:
    from icechunk._core.conflicts import ConflictSolver
    from icechunk.store import IcechunkStore

__all__ = ["LAZY_MANIFEST_LOOKUPS", "Repository"]


class Repository(RepositoryRefMethods, RepositoryAdminMethods, RepositoryMaintenanceMethods):
    """An Icechunk repository in some :class:`~icechunk.storage.Storage`.

    Use :meth:`create`, :meth:`open` or :meth:`open_or_create`; do not construct directly.
    """

    def __init__(
        self,
        storage: Storage,
        spec_version: int,
        config: RepositoryConfig | None = None,
        authorize_virtual_chunk_access: dict[str, Any] | None = None,
        attribution: Attribution | None = None,
    ) -> None:
        self._attribution = attribution if attribution is not None else Attribution()
        authorized = dict(authorize_virtual_chunk_access or {})
        if authorized:
            from icechunk.credentials import check_authorizations

            check_authorizations(authorized)
        config = config if config is not None else RepositoryConfig()
        storage = apply_settings(storage, config.storage)
        self._objects = RepoObjects(storage, spec_version, config, authorized)
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
            "attribution": self._attribution,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        # The same state as before the engine split, so older pickles still load.
        self._objects = RepoObjects(
            state["storage"], state["spec_version"], state["config"], state["authorized"]
        )
        self._default_metadata = state["default_metadata"]
        self._attribution = state.get("attribution") or Attribution()

    def __repr__(self) -> str:
        storage = " ".join(repr(self._objects.storage).split())  # one line
        return f"<Repository spec_version={self._objects.spec_version} storage={storage}>"

    # -- creation and opening ---------------------------------------------------------------

    @classmethod
    def create(
        cls,
        storage: Storage,
        config: RepositoryConfig | None = None,
        authorize_virtual_chunk_access: dict[str, Any] | None = None,
        spec_version: int | None = None,
        check_clean_root: bool = True,
        attribution: Attribution | None = None,
    ) -> Repository:
        """Create a repository (spec 2 unless ``spec_version=1``) in an empty location.

        A given ``config`` is persisted (as :meth:`save_config` does), so later ``open`` calls
        use it.

        Raises
        ------
        InvalidInputError
            The location is not empty (``parent-directory-not-clean``), or the spec version
            is unknown.
        """
        return sync(
            cls.create_async(
                storage,
                config,
                authorize_virtual_chunk_access,
                spec_version,
                check_clean_root,
                attribution=attribution,
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
        attribution: Attribution | None = None,
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
        repo = cls(storage, version, config, authorize_virtual_chunk_access, attribution)
        storage = repo.storage  # as the config asks (``StorageSettings``)
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
                status=StatusRecord(0, now, None),
                metadata={},
                latest_updates=[UpdateRecord("RepoInitialized", {}, now, None)],
                # a given config is persisted with the repository (no ConfigChanged entry)
                config=None if config is None else encode_flexbuffers(repo.config),
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
        if config is not None and version == 1:
            from icechunk import repo_admin

            await repo_admin.save_config(repo)  # config.yaml
        return repo

    @staticmethod
    async def fetch_spec_version_async(
        storage: Storage, storage_settings: StorageSettings | None = None
    ) -> int | None:
        """The repository's spec version, or ``None`` when there is no repository there.

        ``storage_settings`` (retries, timeouts) apply to these reads.
        """
        storage = apply_settings(storage, storage_settings)
        if await storage.exists(layout.REPO_INFO):
            return 2
        if await storage.exists(layout.branch_key(MAIN)):
            return 1
        return None

    @staticmethod
    def fetch_spec_version(
        storage: Storage, storage_settings: StorageSettings | None = None
    ) -> int | None:
        """The spec version of the repository in ``storage``; ``None`` if there is none."""
        return sync(Repository.fetch_spec_version_async(storage, storage_settings))

    @staticmethod
    def exists(storage: Storage, storage_settings: StorageSettings | None = None) -> bool:
        """Whether ``storage`` holds a repository (of either spec version)."""
        return sync(Repository.exists_async(storage, storage_settings))

    @staticmethod
    async def exists_async(
        storage: Storage, storage_settings: StorageSettings | None = None
    ) -> bool:
        """Async twin of :meth:`exists`."""
        return await Repository.fetch_spec_version_async(storage, storage_settings) is not None

    @classmethod
    def open(
        cls,
        storage: Storage,
        config: RepositoryConfig | None = None,
        authorize_virtual_chunk_access: dict[str, Any] | None = None,
        attribution: Attribution | None = None,
    ) -> Repository:
        """Open an existing repository.

        ``config`` is merged over the repository's persisted config (for this handle only).

        Raises
        ------
        RepositoryNotFoundError
            There is no repository at this location.
        """
        return sync(
            cls.open_async(storage, config, authorize_virtual_chunk_access, attribution=attribution)
        )

    @classmethod
    async def open_async(
        cls,
        storage: Storage,
        config: RepositoryConfig | None = None,
        authorize_virtual_chunk_access: dict[str, Any] | None = None,
        attribution: Attribution | None = None,
    ) -> Repository:
        """Async twin of :meth:`open` (same parameters, errors and result)."""
        from icechunk import repo_admin

        version = await cls.fetch_spec_version_async(storage)
        if version is None:
            raise RepositoryNotFoundError(
                "the repository doesn't exist", ErrorKind.REPOSITORY_NOT_FOUND
            )
        persisted = await repo_admin.persisted_or_none(storage)
        merged = repo_admin.merge_persisted(persisted, config)
        repo = cls(storage, version, merged, authorize_virtual_chunk_access, attribution)
        if version == 2:
            assert isinstance(repo._objects.refs, RefStoreV2)
            await repo._objects.refs.read()  # validates the repo object now, not on first use
        return repo

    @classmethod
    def open_or_create(
        cls,
        storage: Storage,
        config: RepositoryConfig | None = None,
        authorize_virtual_chunk_access: dict[str, Any] | None = None,
        create_version: int | None = None,
        check_clean_root: bool = True,
        attribution: Attribution | None = None,
    ) -> Repository:
        """Open the repository in ``storage``, or create one there (spec ``create_version``).

        Raises
        ------
        InvalidInputError
            There is no repository and the location is not empty (see :meth:`create`).
        """
        return sync(
            cls.open_or_create_async(
                storage,
                config,
                authorize_virtual_chunk_access,
                create_version,
                check_clean_root,
                attribution=attribution,
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
        attribution: Attribution | None = None,
    ) -> Repository:
        """Async twin of :meth:`open_or_create`."""
        if await cls.exists_async(storage):
            return await cls.open_async(
                storage, config, authorize_virtual_chunk_access, attribution=attribution
            )
        return await cls.create_async(
            storage,
            config,
            authorize_virtual_chunk_access,
            create_version,
            check_clean_root,
            attribution=attribution,
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
        repo = Repository(
            self._objects.storage, self._objects.spec_version, merged, auth, self._attribution
        )
        repo._default_metadata = dict(self._default_metadata)
        return repo

    async def reopen_async(
        self,
        config: RepositoryConfig | None = None,
        authorize_virtual_chunk_access: dict[str, Any] | None = None,
    ) -> Repository:
        """Async twin of :meth:`reopen` (a new handle with another config or credentials)."""
        return self.reopen(config, authorize_virtual_chunk_access)

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
        from icechunk import repo_admin

        await repo_admin.require_online(
            self, "Cannot create writable session", "error rewriting manifests: "
        )
        session = await self.writable_session_async(branch)
        mark_for_rewrite(session)
        if commit_method == "amend":
            return await session.amend_async(message, metadata=props, allow_empty=True)
        return await session.commit_async(message, props, allow_empty=True)

    rewrite_manifests = sync_twin(rewrite_manifests_async)

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
        """A session that commits to ``branch``, based on its current tip.

        Raises
        ------
        ReadOnlyError
            The repository is not online (spec 2).
        """
        from icechunk import repo_admin

        await repo_admin.require_online(self, "Cannot create writable session")
        tip = await self._objects.refs.branch_tip(branch)
        snap = await self._objects.load_snapshot(tip)
        start_preload(self._objects, snap)
        return Session(self, snap, branch=branch, mode=SessionMode.writable)

    writable_session = sync_twin(writable_session_async)

    async def rearrange_session_async(self, branch: str) -> Session:
        """A session on ``branch`` that only moves and renames nodes (:meth:`Session.move`).

        Raises
        ------
        FormatError
            A spec-1 repository.
        ReadOnlyError
            The repository is not online.
        SessionStateError
            The ``move_node`` feature flag is disabled.
        """
        from icechunk import repo_admin
        from icechunk.repo_status import require_spec2

        require_spec2(self._objects.spec_version)
        await repo_admin.require_online(self, "Cannot create rearrange session")
        await repo_admin.require_flag(self, "move_node", "create rearrange session")
        tip = await self._objects.refs.branch_tip(branch)
        snap = await self._objects.load_snapshot(tip)
        return Session(self, snap, branch=branch, mode=SessionMode.rearrange)

    rearrange_session = sync_twin(rearrange_session_async)

    @contextlib.contextmanager
    def transaction(
        self,
        branch: str,
        *,
        message: str,
        metadata: dict[str, Any] | None = None,
        rebase_with: ConflictSolver | None = None,
        rebase_tries: int = 1000,
    ) -> Iterator[IcechunkStore[Session]]:
        """Yield a writable store on ``branch``; commit on clean exit, not when the body raises."""
        session = self.writable_session(branch)
        yield session.store
        session.commit(message, metadata, rebase_with=rebase_with, rebase_tries=rebase_tries)
