"""Administrative state of a repository: persisted config, status and feature flags.

The :class:`~icechunk.repository.Repository` methods ``save_config`` / ``fetch_config``,
``get_status`` / ``set_status`` and the feature-flag methods are thin wrappers of these
functions. Where things live on disk:

* config: spec 1 ``$ROOT/config.yaml``, spec 2 the ``config`` field of ``repo``
  (:mod:`icechunk.config_codec`);
* status and flags: spec 2 only, in ``repo`` (:mod:`icechunk.repo_status`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from icechunk.config import RepositoryConfig
from icechunk.config_codec import decode_flexbuffers, decode_yaml, encode_flexbuffers, encode_yaml
from icechunk.errors import FormatError, ObjectNotFoundError
from icechunk.format import decode_repo_info, layout
from icechunk.refs import RefStoreV2
from icechunk.repo_status import (
    FeatureFlag,
    RepoStatus,
    flag_named,
    flags_of,
    read_only_error,
    require_spec2,
)
from icechunk.storage.base import Storage, WriteMode

if TYPE_CHECKING:
    from icechunk._core.objects import RepoObjects
    from icechunk.format.model import RepoInfo

__all__ = [
    "CONFIG_YAML",
    "fetch_config",
    "merge_persisted",
    "require_online",
    "save_config",
]


class Repository(Protocol):
    """What these functions need of a repository handle (:class:`icechunk.Repository` is one).

    A protocol, so that this module sits below the facade it serves (no import cycle).
    """

    _objects: RepoObjects

    @property
    def storage(self) -> Storage: ...

    @property
    def config(self) -> RepositoryConfig: ...

    @property
    def spec_version(self) -> int: ...


CONFIG_YAML = "config.yaml"
_log = logging.getLogger("icechunk.repository")


async def fetch_config(storage: Storage) -> RepositoryConfig | None:
    """The config persisted in the repository at ``storage``, or ``None`` if there is none.

    Raises
    ------
    FormatError
        The persisted config cannot be decoded.
    """
    try:
        data = await storage.get(layout.REPO_INFO)
    except ObjectNotFoundError:
        try:
            text = await storage.get(CONFIG_YAML)
        except ObjectNotFoundError:
            return None
        return decode_yaml(text)
    info = decode_repo_info(data, layout.REPO_INFO)
    return None if info.config is None else decode_flexbuffers(info.config)


async def save_config(repo: Repository) -> None:
    """Persist ``repo.config``: ``config.yaml`` (spec 1) or ``repo.config`` (spec 2, refused
    while the repository is not online, with an ops-log ``ConfigChanged`` entry)."""
    config = repo.config
    refs = repo._objects.refs
    if isinstance(refs, RefStoreV2):
        await refs.set_config(encode_flexbuffers(config))
    else:
        await repo.storage.put(CONFIG_YAML, encode_yaml(config), WriteMode.OVERWRITE)


def merge_persisted(
    persisted: RepositoryConfig | None, given: RepositoryConfig | None
) -> RepositoryConfig:
    """The config of an opened repository: ``given`` over the persisted one, for this process.

    Virtual chunk containers are merged per URL prefix (the given ones win).
    """
    if persisted is None:
        return given if given is not None else RepositoryConfig()
    if given is None:
        return persisted
    merged = persisted.merge(given)
    if persisted.virtual_chunk_containers and given.virtual_chunk_containers is not None:
        merged.virtual_chunk_containers = {
            **persisted.virtual_chunk_containers,
            **given.virtual_chunk_containers,
        }
    return merged


async def persisted_or_none(storage: Storage) -> RepositoryConfig | None:
    """:func:`fetch_config`, logging (not raising) a config this library cannot decode."""
    try:
        return await fetch_config(storage)
    except FormatError as e:
        _log.warning("ignoring the repository's persisted config: %s", e)
        return None


async def _info(repo: Repository) -> RepoInfo:
    require_spec2(repo.spec_version)
    refs = repo._objects.refs
    assert isinstance(refs, RefStoreV2)
    return await refs.read()


async def require_online(repo: Repository, action: str | None, prefix: str = "") -> None:
    """Raise the real Icechunk's ``ReadOnlyError`` if a spec-2 repository is not online."""
    refs = repo._objects.refs
    if not isinstance(refs, RefStoreV2):
        return
    status = (await refs.read()).status
    if status.availability != 0:
        raise read_only_error(status, action, prefix)


async def get_status(repo: Repository) -> RepoStatus:
    return RepoStatus.from_record((await _info(repo)).status)


async def set_status(repo: Repository, status: RepoStatus) -> None:
    if not isinstance(status, RepoStatus):
        raise TypeError(f"'{type(status).__name__}' object is not an instance of 'RepoStatus'")
    await _info(repo)
    refs = repo._objects.refs
    assert isinstance(refs, RefStoreV2)
    await refs.set_status(status.to_record())


async def feature_flags(repo: Repository) -> list[FeatureFlag]:
    info = await _info(repo)
    return flags_of(info.enabled_feature_flags, info.disabled_feature_flags)


async def set_feature_flag(repo: Repository, name: str, setting: bool | None) -> None:
    spec = flag_named(name)
    if setting is not None and not isinstance(setting, bool):
        raise TypeError(f"'{type(setting).__name__}' object is not an instance of 'bool'")
    await _info(repo)
    refs = repo._objects.refs
    assert isinstance(refs, RefStoreV2)
    await refs.set_feature_flag(spec.id, setting)


async def require_flag(repo: Repository, flag: str, operation: str) -> None:
    """Raise ``feature-flag-disabled`` if flag ``flag`` is disabled in a spec-2 repository."""
    from icechunk.repo_status import flag_disabled_error, flag_enabled

    refs = repo._objects.refs
    if not isinstance(refs, RefStoreV2):
        return
    info = await refs.read()
    if not flag_enabled(
        flag_named(flag).id, info.enabled_feature_flags, info.disabled_feature_flags
    ):
        raise flag_disabled_error(operation, flag)
