"""The storage abstraction: a handful of async object operations.

A repository needs four things from storage (Icechunk spec, "Storage Operations"): writes of new
objects, a conditional update of one small mutable object, byte-range reads, and deletes. This
module states them as one abstract class; each backend lives in its own module.

Keys are ``/``-separated paths relative to the repository root, e.g. ``snapshots/1CECHNKREP0F1RSTCMT0``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

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
