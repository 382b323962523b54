"""The state every :class:`icechunk.repository.Repository` method works on, and its properties.

:class:`RepositoryBase` is the first base class of ``Repository``; the method groups
(:mod:`icechunk._repo_ref_methods`, :mod:`icechunk._repo_admin_methods`,
:mod:`icechunk._repo_maintenance_methods`) build on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from icechunk._core.objects import RepoObjects
    from icechunk.attribution import Attribution
    from icechunk.config import RepositoryConfig
    from icechunk.storage.base import Storage

__all__ = ["RepositoryBase"]


class RepositoryBase:
    """A repository handle's state: the engine's object service and the handle's own settings."""

    _objects: RepoObjects
    """The engine's object service for this repository (everything below the facade)."""
    _default_metadata: dict[str, Any]
    _attribution: Attribution

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

    @property
    def attribution(self) -> Attribution:
        """The labels this repository attaches to its requests (see :class:`Attribution`)."""
        return self._attribution
