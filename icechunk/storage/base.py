"""The storage abstraction: a handful of async object operations.

A repository needs four things from storage (Icechunk spec, "Storage Operations"): writes of new
objects, a conditional update of one small mutable object, byte-range reads, and deletes. This
module states them as one abstract class; each backend lives in its own module.

Keys are ``/``-separated paths relative to the repository root, e.g. ``snapshots/1CECHNKREP0F1RSTCMT0``.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from icechunk.storage import _settings

if TYPE_CHECKING:
    from icechunk.storage._settings import StorageSettings


_CONSTRUCTORS: dict[str, Callable[..., Storage]] = {}


def register_constructors(**constructors: Callable[..., Storage]) -> None:
    """Make the backends' constructors reachable from ``Storage.new_*``.

    Called once by the ``icechunk.storage`` package, which imports every backend: the backends
    subclass :class:`Storage`, so this module sits below them and cannot import them.
    """
    _CONSTRUCTORS.update(constructors)


def _constructor(name: str) -> Callable[..., Storage]:
    try:
        return _CONSTRUCTORS[name]
    except KeyError:
        raise RuntimeError(
            f"storage constructor {name} is not registered: import icechunk.storage first"
        ) from None


__all__ = [
    "ByteRange",
    "IfMatch",
    "ObjectInfo",
    "OffsetRange",
    "PutMode",
    "RangeRequest",
    "Storage",
    "SuffixRange",
    "VersionInfo",
    "WriteMode",
]


@dataclass(frozen=True, slots=True)
class RangeRequest:
    """Bytes ``[start, end)`` of an object."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class OffsetRange:
    """Bytes from ``offset`` to the end of an object."""

    offset: int


@dataclass(frozen=True, slots=True)
class SuffixRange:
    """The last ``suffix`` bytes of an object."""

    suffix: int


type ByteRange = RangeRequest | OffsetRange | SuffixRange


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """Opaque version token of an object as stored (an ETag, a generation, a content hash)."""

    etag: str


class WriteMode(Enum):
    """Unconditional put modes."""

    OVERWRITE = "overwrite"
    """Replace whatever is there, atomically: readers see the old or the new bytes, never a mix."""
    CREATE = "create"
    """Create-only: fails with :class:`~icechunk.errors.PreconditionFailedError` if the key exists."""


@dataclass(frozen=True, slots=True)
class IfMatch:
    """Compare-and-swap: write only if the object's current version is ``version``."""

    version: VersionInfo


type PutMode = WriteMode | IfMatch


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One listed object."""

    key: str
    size_bytes: int
    created_at: datetime


class Storage(ABC):
    """Abstract object storage under one repository root.

    Every method is a coroutine. Implementations must be safe to call concurrently from several
    threads and event loops, and must pickle (a copy in another process reaches the same data
    or, where that is impossible, fails on use with a clear :class:`StorageError`).

    Errors: a missing object raises :class:`~icechunk.errors.ObjectNotFoundError`; a failed
    precondition raises :class:`~icechunk.errors.PreconditionFailedError`; anything environmental
    raises :class:`~icechunk.errors.StorageError`.
    """

    supports_conditional_update: bool = True
    """Whether :class:`IfMatch` puts are a true compare-and-swap against concurrent writers."""

    @abstractmethod
    async def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        """Return the object's bytes, or the requested range of them.

        A range that reaches past the end is clipped to the object's size.
        """

    @abstractmethod
    async def get_with_version(self, key: str) -> tuple[bytes, VersionInfo]:
        """Return the whole object and its current version, read atomically together."""

    @abstractmethod
    async def put(self, key: str, data: bytes, mode: PutMode = WriteMode.OVERWRITE) -> VersionInfo:
        """Store ``data`` under ``key`` and return the new version.

        Raises
        ------
        PreconditionFailedError
            ``mode`` is :attr:`WriteMode.CREATE` and the key exists, or ``mode`` is an
            :class:`IfMatch` whose version is not the current one (or the key is missing).
        """

    async def put_copy(self, key: str, data: bytes, *, source: str) -> VersionInfo:
        """Create ``key`` holding ``data``, which was read from ``source``: a backup.

        The same as ``put(key, data, WriteMode.CREATE)``, and the result must be exactly
        that; a backend that can copy ``source`` without sending the bytes (a hard link on a
        local filesystem) may do so when ``source`` still holds ``data``. This default puts
        ``data``.

        Raises
        ------
        PreconditionFailedError
            ``key`` exists.
        """
        return await self.put(key, data, WriteMode.CREATE)

    @abstractmethod
    def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Iterate over the objects whose key starts with ``prefix``, in no particular order."""

    @abstractmethod
    async def delete(self, keys: Iterable[str]) -> None:
        """Delete the given keys. Missing keys are ignored."""

    async def exists(self, key: str) -> bool:
        """Whether ``key`` exists."""
        from icechunk.errors import ObjectNotFoundError

        try:
            await self.get(key, RangeRequest(0, 0))
        except ObjectNotFoundError:
            return False
        return True

    async def is_empty(self) -> bool:
        """Whether there is no object at all under this storage's root."""
        async for _ in self.list(""):
            return False
        return True

    # -- the real Icechunk's Storage API: constructors, settings, listing ------------------------
    # Constructors build this package's backends. The backend modules subclass Storage, so this
    # module cannot import them: ``icechunk.storage`` registers them (``register_constructors``).

    @classmethod
    def new_s3(
        cls,
        config: Any,
        bucket: str,
        prefix: str | None,
        credentials: Any = None,
        legacy_rooted_keys: bool | None = None,
        *,
        read_headers: dict[str, str] | None = None,
        write_headers: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Storage:
        """S3 storage from an ``S3Options`` and an ``S3Credentials`` variant (``None``: from the
        environment). See :func:`icechunk.storage.s3_storage`."""
        new_s3 = _constructor("new_s3")

        return new_s3(
            config,
            bucket,
            prefix,
            credentials,
            legacy_rooted_keys,
            read_headers=read_headers,
            write_headers=write_headers,
            headers=headers,
        )

    @classmethod
    def new_s3_object_store(
        cls,
        config: Any,
        bucket: str,
        prefix: str | None,
        credentials: Any = None,
        *,
        read_headers: dict[str, str] | None = None,
        write_headers: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Storage:
        """S3 storage through the ``object_store`` client: the same as :meth:`new_s3` here (every
        S3 storage of this package goes through obstore)."""
        return cls.new_s3(
            config,
            bucket,
            prefix,
            credentials,
            read_headers=read_headers,
            write_headers=write_headers,
            headers=headers,
        )

    @classmethod
    def new_tigris(
        cls,
        config: Any,
        bucket: str,
        prefix: str | None,
        use_weak_consistency: bool,
        credentials: Any = None,
        legacy_rooted_keys: bool | None = None,
        *,
        read_headers: dict[str, str] | None = None,
        write_headers: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Storage:
        """Tigris storage (see :func:`icechunk.storage.tigris_storage`)."""
        new_tigris = _constructor("new_tigris")

        return new_tigris(
            config,
            bucket,
            prefix,
            use_weak_consistency,
            credentials,
            legacy_rooted_keys,
            read_headers=read_headers,
            write_headers=write_headers,
            headers=headers,
        )

    @classmethod
    def new_in_memory(cls) -> Storage:
        """A new, empty in-memory storage (see :func:`icechunk.storage.in_memory_storage`)."""
        InMemoryStorage = _constructor("InMemoryStorage")

        return InMemoryStorage()

    @classmethod
    def new_local_filesystem(cls, path: str) -> Storage:
        """Storage in the directory ``path`` (see :func:`icechunk.storage.local_filesystem_storage`)."""
        LocalFileSystemStorage = _constructor("LocalFileSystemStorage")

        return LocalFileSystemStorage(path)

    @classmethod
    def new_gcs(
        cls,
        bucket: str,
        prefix: str | None,
        credentials: Any = None,
        *,
        config: dict[str, str] | None = None,
        read_headers: dict[str, str] | None = None,
        write_headers: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Storage:
        """Google Cloud Storage from a ``GcsCredentials`` variant (see ``gcs_storage``)."""
        new_gcs = _constructor("new_gcs")

        return new_gcs(
            bucket,
            prefix,
            credentials,
            config=config,
            read_headers=read_headers,
            write_headers=write_headers,
            headers=headers,
        )

    @classmethod
    def new_r2(
        cls,
        config: Any,
        bucket: str | None = None,
        prefix: str | None = None,
        account_id: str | None = None,
        credentials: Any = None,
        legacy_rooted_keys: bool | None = None,
        *,
        read_headers: dict[str, str] | None = None,
        write_headers: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Storage:
        """Cloudflare R2 storage (see :func:`icechunk.storage.r2_storage`)."""
        new_r2 = _constructor("new_r2")

        return new_r2(
            config,
            bucket,
            prefix,
            account_id,
            credentials,
            legacy_rooted_keys,
            read_headers=read_headers,
            write_headers=write_headers,
            headers=headers,
        )

    @classmethod
    def new_hf(
        cls,
        config: Any,
        bucket: str,
        prefix: str | None,
        namespace: str,
        credentials: Any = None,
        legacy_rooted_keys: bool | None = None,
        *,
        read_headers: dict[str, str] | None = None,
        write_headers: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Storage:
        """Hugging Face bucket storage (see :func:`icechunk.storage.hf_storage`)."""
        new_hf = _constructor("new_hf")

        return new_hf(
            config,
            bucket,
            prefix,
            namespace,
            credentials,
            legacy_rooted_keys,
            read_headers=read_headers,
            write_headers=write_headers,
            headers=headers,
        )

    @classmethod
    def new_azure_blob(
        cls,
        account: str,
        container: str,
        prefix: str,
        credentials: Any = None,
        *,
        config: dict[str, str] | None = None,
    ) -> Storage:
        """Azure Blob Storage from an ``AzureCredentials`` variant (see ``azure_storage``)."""
        new_azure_blob = _constructor("new_azure_blob")

        return new_azure_blob(account, container, prefix, credentials, config=config)

    @classmethod
    def new_http(
        cls,
        base_url: str,
        config: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Storage:
        """Read-only storage over HTTP(S) (see :class:`icechunk.storage.http.HttpStorage`)."""
        HttpStorage = _constructor("HttpStorage")

        return HttpStorage(base_url, config, headers)

    @classmethod
    def new_redirect(cls, base_url: str) -> Storage:
        """The storage ``base_url`` redirects to (see :class:`icechunk.storage.http.RedirectStorage`)."""
        RedirectStorage = _constructor("RedirectStorage")

        return RedirectStorage(base_url)

    def default_settings(self) -> StorageSettings:
        """The :class:`~icechunk.storage.StorageSettings` this storage uses when none are given
        (fields left ``None`` mean "the backend's own default")."""
        return _settings.StorageSettings()

    def list_objects(
        self, settings: StorageSettings | None = None, prefix: str | None = None
    ) -> builtins.list[tuple[str, int]]:
        """``(key, size_bytes)`` of every object whose key starts with ``prefix`` (all objects
        under the repository root when ``None`` or empty). ``settings`` is accepted for
        compatibility (listing has no tunable behaviour here).

        Deprecated in the real Icechunk in favour of :meth:`list_objects_metadata`.
        """
        return [
            (info.key, info.size_bytes) for info in self.list_objects_metadata(settings, prefix)
        ]

    def list_objects_metadata(
        self, settings: StorageSettings | None = None, prefix: str | None = None
    ) -> builtins.list[ObjectInfo]:
        """Every object whose key starts with ``prefix``, with its size and creation time."""
        from icechunk._sync import sync

        del settings

        async def collect() -> builtins.list[ObjectInfo]:
            return [info async for info in self.list(prefix or "")]

        return sync(collect())
