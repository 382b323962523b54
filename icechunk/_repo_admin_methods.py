"""Repository methods for the persisted config, status, feature flags and metadata.

Part of :class:`icechunk.repository.Repository` (a base class of it); the work is done by
:mod:`icechunk.repo_admin` and the engine.
"""

from __future__ import annotations

from typing import Any

from icechunk._repo_base import RepositoryBase
from icechunk._sync import sync, sync_twin
from icechunk.config import RepositoryConfig
from icechunk.repo_status import FeatureFlag, RepoStatus
from icechunk.storage.base import (
    Storage,
)


class RepositoryAdminMethods(RepositoryBase):
    """The persisted config, status, feature flag and metadata methods of :class:`Repository`."""

    # -- persisted config, status and feature flags (icechunk.repo_admin) --------------------

    @staticmethod
    def fetch_config(storage: Storage) -> RepositoryConfig | None:
        """The config persisted in the repository at ``storage``, or ``None``."""
        return sync(RepositoryAdminMethods.fetch_config_async(storage))

    @staticmethod
    async def fetch_config_async(storage: Storage) -> RepositoryConfig | None:
        from icechunk import repo_admin

        return await repo_admin.fetch_config(storage)

    def save_config(self) -> None:
        """Persist this handle's config; later ``open`` calls use it.

        Raises
        ------
        ReadOnlyError
            The repository is not online (spec 2).
        """
        sync(self.save_config_async())

    async def save_config_async(self) -> None:
        from icechunk import repo_admin

        await repo_admin.save_config(self)

    def get_status(self) -> RepoStatus:
        """The repository's availability status (spec 2).

        Raises
        ------
        FormatError
            A spec-1 repository (``unsupported-spec-version``).
        """
        return sync(self.get_status_async())

    @property
    def status(self) -> RepoStatus:
        return self.get_status()

    async def get_status_async(self) -> RepoStatus:
        from icechunk import repo_admin

        return await repo_admin.get_status(self)

    def set_status(self, status: RepoStatus) -> None:
        """Set the availability status; while it is not online every writer refuses, in every
        process, with :class:`ReadOnlyError` (``read-only-repository``)."""
        sync(self.set_status_async(status))

    async def set_status_async(self, status: RepoStatus) -> None:
        from icechunk import repo_admin

        await repo_admin.set_status(self, status)

    def feature_flags(self) -> list[FeatureFlag]:
        """Every feature flag with its setting and effective state (spec 2)."""
        return sync(self.feature_flags_async())

    async def feature_flags_async(self) -> list[FeatureFlag]:
        from icechunk import repo_admin

        return await repo_admin.feature_flags(self)

    def enabled_feature_flags(self) -> list[FeatureFlag]:
        return sync(self.enabled_feature_flags_async())

    async def enabled_feature_flags_async(self) -> list[FeatureFlag]:
        return [f for f in await self.feature_flags_async() if f.enabled]

    def disabled_feature_flags(self) -> list[FeatureFlag]:
        return sync(self.disabled_feature_flags_async())

    async def disabled_feature_flags_async(self) -> list[FeatureFlag]:
        return [f for f in await self.feature_flags_async() if not f.enabled]

    def set_feature_flag(self, name: str, setting: bool | None) -> None:
        """Enable (``True``), disable (``False``) or reset to the default (``None``) a flag.

        Raises
        ------
        InvalidInputError
            No flag has that name (``invalid-feature-flag``).
        """
        sync(self.set_feature_flag_async(name, setting))

    async def set_feature_flag_async(self, name: str, setting: bool | None) -> None:
        from icechunk import repo_admin

        await repo_admin.set_feature_flag(self, name, setting)

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
