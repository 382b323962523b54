"""Storage settings that are not credentials: how hard cloud requests are retried, and how
Icechunk uses its storage (:class:`StorageSettings`, part of a ``RepositoryConfig``)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from enum import Enum
from typing import Any, ClassVar

from icechunk.errors import InvalidInputError

__all__ = [
    "ChecksumAlgorithm",
    "StorageConcurrencySettings",
    "StorageRetriesSettings",
    "StorageSettings",
    "StorageTimeoutSettings",
]


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


# -- storage settings (the real Icechunk's StorageSettings family) -------------------------


class ChecksumAlgorithm(Enum):
    """Checksum algorithm for S3 write requests (``S3Options.checksum_algorithm``).

    Unset, the client picks its own; some S3-compatible services accept only some algorithms.
    """

    Crc32 = 0
    Crc32c = 1
    Crc64Nvme = 2
    Sha1 = 3
    Sha256 = 4

    def __repr__(self) -> str:
        return f"ChecksumAlgorithm.{self.name}"


def _opt_int(owner: str, name: str, value: object, minimum: int = 0) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInputError(
            f"{owner}.{name} must be an int >= {minimum} or None, got {value!r}"
        )


def _opt_str(owner: str, name: str, value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise InvalidInputError(f"{owner}.{name} must be a str or None, got {value!r}")


def _opt_bool(owner: str, name: str, value: object) -> None:
    if value is not None and not isinstance(value, bool):
        raise InvalidInputError(f"{owner}.{name} must be a bool or None, got {value!r}")


def _repr_fields(qualname: str, obj: object, names: tuple[str, ...]) -> str:
    from icechunk._repr import config_repr

    return config_repr(qualname, [(n, getattr(obj, n)) for n in names])


@dataclasses.dataclass(slots=True)
class StorageConcurrencySettings:
    """How large reads are split into concurrent requests.

    Attributes
    ----------
    max_concurrent_requests_for_object
        Most concurrent requests for one object (``None``: the storage's default).
    ideal_concurrent_request_size
        Target size in bytes of each part of a split read.
    """

    max_concurrent_requests_for_object: int | None = None
    ideal_concurrent_request_size: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_concurrent_requests_for_object", "ideal_concurrent_request_size"):
            _opt_int("StorageConcurrencySettings", name, getattr(self, name), 1)

    def __repr__(self) -> str:
        return _repr_fields(
            "icechunk.storage.StorageConcurrencySettings",
            self,
            ("max_concurrent_requests_for_object", "ideal_concurrent_request_size"),
        )


@dataclasses.dataclass(slots=True)
class StorageTimeoutSettings:
    """Timeouts of the object-store client, in milliseconds (``None``: the client's default).

    Attributes
    ----------
    connect_timeout_ms
        Establishing a connection.
    read_timeout_ms
        Between bytes of a response.
    operation_timeout_ms
        A whole operation, retries included.
    operation_attempt_timeout_ms
        One attempt of an operation.
    """

    connect_timeout_ms: int | None = None
    read_timeout_ms: int | None = None
    operation_timeout_ms: int | None = None
    operation_attempt_timeout_ms: int | None = None

    _NAMES: ClassVar[tuple[str, ...]] = (
        "connect_timeout_ms",
        "read_timeout_ms",
        "operation_timeout_ms",
        "operation_attempt_timeout_ms",
    )

    def __post_init__(self) -> None:
        for name in self._NAMES:
            _opt_int("StorageTimeoutSettings", name, getattr(self, name), 1)

    def __repr__(self) -> str:
        return _repr_fields("icechunk.storage.StorageTimeoutSettings", self, self._NAMES)

    def _to_obstore(self) -> dict[str, Any]:
        """The obstore ``client_options`` these timeouts map to."""
        out: dict[str, Any] = {}
        if self.connect_timeout_ms is not None:
            out["connect_timeout"] = timedelta(milliseconds=self.connect_timeout_ms)
        attempt = self.operation_attempt_timeout_ms or self.read_timeout_ms
        if attempt is not None:
            out["timeout"] = timedelta(milliseconds=attempt)
        return out


_STORAGE_SETTINGS_REPR = (
    "unsafe_use_conditional_create",
    "unsafe_use_conditional_update",
    "unsafe_use_metadata",
    "storage_class",
    "metadata_storage_class",
    "chunks_storage_class",
    "minimum_size_for_multipart_upload",
    "concurrency",
    "retries",
    "timeouts",
)


@dataclasses.dataclass(slots=True)
class StorageSettings:
    """How the repository uses its storage (the real Icechunk's ``StorageSettings``).

    Every field left ``None`` means "the storage's default". Given as
    ``RepositoryConfig(storage=...)`` or to ``Repository.exists``/``fetch_spec_version``.

    Attributes
    ----------
    concurrency, retries, timeouts
        :class:`StorageConcurrencySettings`, :class:`StorageRetriesSettings`,
        :class:`StorageTimeoutSettings`.
    unsafe_use_conditional_create, unsafe_use_conditional_update
        ``False`` turns conditional writes off, for object stores without them (unsafe with
        concurrent writers).
    unsafe_use_metadata
        Whether objects carry user metadata.
    storage_class, metadata_storage_class, chunks_storage_class
        Storage class names passed to the object store as they are (all objects, metadata
        objects, chunk objects).
    minimum_size_for_multipart_upload
        Objects at least this large are uploaded in parts.
    unsafe_use_fsync
        Ours, not the real Icechunk's; local filesystem storage only. ``None`` or ``True`` (the
        default): a commit, tag or branch update returns only once every chunk and metadata
        file the new ref can reach is durable (flushed to disk; chunks are flushed in the
        background while they are written, see :mod:`icechunk.storage.local`). ``False``:
        nothing is ever flushed, as in the real Icechunk, whose local storage never syncs.
        **Risk**: after a power loss, a kernel crash or a virtual machine being stopped hard
        (not after a process crash or kill, which lose nothing the kernel already has), a
        branch or tag may name a snapshot, manifest or chunk that never reached the disk, so
        reads of that version fail or return missing chunks as fill values, and a ref update
        itself may be lost. Use it only for scratch data that can be rewritten, or where
        something else makes the disk durable.
    """

    concurrency: StorageConcurrencySettings | None = None
    retries: StorageRetriesSettings | None = None
    unsafe_use_conditional_create: bool | None = None
    unsafe_use_conditional_update: bool | None = None
    unsafe_use_metadata: bool | None = None
    storage_class: str | None = None
    metadata_storage_class: str | None = None
    chunks_storage_class: str | None = None
    minimum_size_for_multipart_upload: int | None = None
    timeouts: StorageTimeoutSettings | None = None
    unsafe_use_fsync: bool | None = None

    def __post_init__(self) -> None:
        owner = "StorageSettings"
        if self.unsafe_use_fsync is not None and not isinstance(self.unsafe_use_fsync, bool):
            raise InvalidInputError(
                f"StorageSettings.unsafe_use_fsync must be True, False or None, "
                f"got {self.unsafe_use_fsync!r}"
            )
        for name, kind in (
            ("concurrency", StorageConcurrencySettings),
            ("retries", StorageRetriesSettings),
            ("timeouts", StorageTimeoutSettings),
        ):
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                raise InvalidInputError(
                    f"{owner}.{name} must be a {kind.__name__} or None, got {value!r}"
                )
        for name in (
            "unsafe_use_conditional_create",
            "unsafe_use_conditional_update",
            "unsafe_use_metadata",
        ):
            _opt_bool(owner, name, getattr(self, name))
        for name in ("storage_class", "metadata_storage_class", "chunks_storage_class"):
            _opt_str(owner, name, getattr(self, name))
        _opt_int(owner, "minimum_size_for_multipart_upload", self.minimum_size_for_multipart_upload)

    @property
    def effective_use_fsync(self) -> bool:
        """Whether local storage flushes (``unsafe_use_fsync`` unless it is ``False``)."""
        return self.unsafe_use_fsync is not False

    def __repr__(self) -> str:
        names: tuple[str, ...] = _STORAGE_SETTINGS_REPR
        if self.unsafe_use_fsync is not None:
            names = (*names, "unsafe_use_fsync")
        return _repr_fields("icechunk.storage.StorageSettings", self, names)
