"""Storage settings that are not credentials: how hard cloud requests are retried, and how
Icechunk uses its storage (:class:`StorageSettings`, part of a ``RepositoryConfig``)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from icechunk.errors import InvalidInputError

__all__ = ["StorageRetriesSettings", "StorageSettings"]


@dataclasses.dataclass(frozen=True, slots=True)
class StorageRetriesSettings:
    """How hard each request is retried before an error surfaces (names as the real Icechunk's).

    The defaults give up on an unreachable endpoint within about three seconds.

    Attributes
    ----------
    max_tries
        Attempts per request, the first included.
    initial_backoff_ms, max_backoff_ms
        Exponential backoff (base 2, with jitter) between attempts.
    retry_timeout_ms
        No retry starts later than this after the first attempt.
    """

    max_tries: int = 6
    initial_backoff_ms: int = 100
    max_backoff_ms: int = 3_000
    retry_timeout_ms: int = 30_000

    def __post_init__(self) -> None:
        if self.max_tries < 1 or self.initial_backoff_ms < 0 or self.max_backoff_ms < 0:
            raise InvalidInputError(f"invalid retry settings: {self!r}")

    def to_obstore(self) -> dict[str, Any]:
        return {
            "max_retries": self.max_tries - 1,
            "retry_timeout": timedelta(milliseconds=self.retry_timeout_ms),
            "backoff": {
                "init_backoff": timedelta(milliseconds=self.initial_backoff_ms),
                "max_backoff": timedelta(milliseconds=self.max_backoff_ms),
                "base": 2,
            },
        }


# -- error handling ---------------------------------------------------------------------------


@dataclasses.dataclass
class StorageSettings:
    """How Icechunk uses its storage (the real Icechunk's ``StorageSettings``, plus one setting).

    The real Icechunk's fields are accepted and kept (``concurrency``, ``retries``, the
    ``unsafe_use_conditional_*`` and ``unsafe_use_metadata`` flags, storage classes, multipart
    size, ``timeouts``); local and in-memory storage have no use for them.

    Attributes
    ----------
    unsafe_use_fsync
        Local filesystem storage only. ``None`` or ``True`` (the default): a commit, tag or
        branch update returns only once every chunk and metadata file the new ref can reach
        is durable (flushed to disk; chunks are flushed in the background while they are
        written, see :mod:`icechunk.storage.local`). ``False``: nothing is ever flushed, as in
        the real Icechunk, whose local storage never syncs. **Risk**: after a power loss, a
        kernel crash or a virtual machine being stopped hard (not after a process crash or
        kill, which lose nothing the kernel already has), a branch or tag may name a snapshot,
        manifest or chunk that never reached the disk, so reads of that version fail or return
        missing chunks as fill values, and a ref update itself may be lost. Use it only for
        scratch data that can be rewritten, or where something else makes the disk durable.
    """

    concurrency: Any = None
    retries: Any = None
    unsafe_use_conditional_create: bool | None = None
    unsafe_use_conditional_update: bool | None = None
    unsafe_use_metadata: bool | None = None
    storage_class: str | None = None
    metadata_storage_class: str | None = None
    chunks_storage_class: str | None = None
    minimum_size_for_multipart_upload: int | None = None
    timeouts: Any = None
    unsafe_use_fsync: bool | None = None

    def __post_init__(self) -> None:
        if self.unsafe_use_fsync is not None and not isinstance(self.unsafe_use_fsync, bool):
            raise InvalidInputError(
                f"StorageSettings.unsafe_use_fsync must be True, False or None, "
                f"got {self.unsafe_use_fsync!r}"
            )

    @property
    def effective_use_fsync(self) -> bool:
        """Whether local storage flushes (``unsafe_use_fsync`` unless it is ``False``)."""
        return self.unsafe_use_fsync is not False
