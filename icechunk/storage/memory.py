"""Process-local, dict-backed storage for tests and scratch repositories.

Sharing rules
-------------
Every :class:`InMemoryStorage` created by its constructor owns a fresh *bucket* (the dict of
objects plus a lock), registered in a process-wide registry under a random id. Pickling an
instance records only that id and the current process id:

* unpickled in the **same process**, the copy finds the bucket in the registry and shares the
  data with the original (reads and writes through either are seen by both);
* unpickled in **another process** (or used in a forked child), the copy cannot reach the data,
  and its first operation raises :class:`~icechunk.errors.StorageError` saying so. The real
  Icechunk silently hands such a copy an empty store instead.

The registry holds buckets *weakly*: a bucket lives as long as at least one storage object uses
it. Pickled bytes alone do not keep the data alive, so a copy unpickled after every live instance
is gone also fails on first use, with a message saying the data no longer exists.
"""

from __future__ import annotations

import os
import threading
import uuid
import weakref
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from icechunk.errors import (
    InvalidInputError,
    ObjectNotFoundError,
    PreconditionFailedError,
    StorageError,
)
from icechunk.storage._common import check_byte_range, resolve_byte_range, validate_key
from icechunk.storage.base import (
    ByteRange,
    IfMatch,
    ObjectInfo,
    PutMode,
    Storage,
    VersionInfo,
    WriteMode,
)

__all__ = ["InMemoryStorage"]


@dataclass(frozen=True, slots=True)
class _Entry:
    data: bytes
    version: str
    created_at: datetime


class _Bucket:
    """The shared state behind one or more :class:`InMemoryStorage` handles."""

    __slots__ = ("__weakref__", "bucket_id", "lock", "next_version", "objects", "pid")

    def __init__(self, bucket_id: str) -> None:
        self.bucket_id = bucket_id
        self.pid = os.getpid()
        # A threading lock, not an asyncio one: callers may live on different event loops and
        # threads. It is never held across an ``await``.
        self.lock = threading.Lock()
        self.objects: dict[str, _Entry] = {}
        self.next_version = 1


_REGISTRY: weakref.WeakValueDictionary[str, _Bucket] = weakref.WeakValueDictionary()
_REGISTRY_LOCK = threading.Lock()

_CROSS_PROCESS_MESSAGE = (
    "in-memory storage cannot be shared across processes: this copy was {how} in process {pid}, "
    "but its data lives only in the memory of process {owner}. Use "
    "icechunk.storage.local_filesystem_storage(path) (or an object store) for a repository that "
    "several processes must reach."
)


def _restore(bucket_id: str, owner_pid: int) -> InMemoryStorage:
    """Unpickle an :class:`InMemoryStorage`: reattach to its bucket if this process holds it."""
    storage = InMemoryStorage.__new__(InMemoryStorage)
    storage._bucket = None
    storage._bucket_id = bucket_id
    storage._owner_pid = owner_pid
    storage._unavailable = None
    if owner_pid != os.getpid():
        storage._unavailable = _CROSS_PROCESS_MESSAGE.format(
            how="unpickled", pid=os.getpid(), owner=owner_pid
        )
        return storage
    with _REGISTRY_LOCK:
        bucket = _REGISTRY.get(bucket_id)
    if bucket is None:
        storage._unavailable = (
            f"in-memory storage {bucket_id} no longer exists: every instance using it was "
            "garbage-collected before this pickled copy was loaded, so its data is gone"
        )
    else:
        storage._bucket = bucket
    return storage


class InMemoryStorage(Storage):
    """Objects kept in a dict in this process's memory.

    Thread-safe, and usable from several event loops at once. Versions are decimal strings of a
    per-storage counter, so every write gets a version never seen before (no ABA problem), and
    :class:`~icechunk.storage.base.IfMatch` is a true compare-and-swap.

    See the module docstring for what pickling does.
    """

    supports_conditional_update = True

    _bucket: _Bucket | None
    _bucket_id: str
    _owner_pid: int
    _unavailable: str | None

    def __init__(self) -> None:
        bucket = _Bucket(uuid.uuid4().hex)
        with _REGISTRY_LOCK:
            _REGISTRY[bucket.bucket_id] = bucket
        self._bucket = bucket
        self._bucket_id = bucket.bucket_id
        self._owner_pid = bucket.pid
        self._unavailable = None

    # -- identity and pickling ---------------------------------------------------------------

    def __reduce__(self) -> tuple[Any, ...]:
        # The owner is the process holding the data, even when this handle is a foreign copy:
        # a copy sent back to its owner process works again.
        return (_restore, (self._bucket_id, self._owner_pid))

    def __repr__(self) -> str:
        # the real Icechunk's text form
        return "<icechunk.Storage>\ntype: in-memory\n"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, InMemoryStorage):
            return NotImplemented
        return self._bucket_id == other._bucket_id

    def __hash__(self) -> int:
        return hash(self._bucket_id)

    def _live_bucket(self) -> _Bucket:
        bucket = self._bucket
        if bucket is None:
            raise StorageError(self._unavailable or "in-memory storage is unavailable")
        if bucket.pid != os.getpid():
            raise StorageError(
                _CROSS_PROCESS_MESSAGE.format(how="forked", pid=os.getpid(), owner=bucket.pid)
            )
        return bucket

    # -- Storage -----------------------------------------------------------------------------

    async def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        # docstring inherited
        validate_key(key)
        check_byte_range(byte_range)
        bucket = self._live_bucket()
        with bucket.lock:
            entry = bucket.objects.get(key)
        if entry is None:
            raise ObjectNotFoundError(f"object not found in in-memory storage: {key!r}")
        start, end = resolve_byte_range(byte_range, len(entry.data))
        if start == 0 and end == len(entry.data):
            return entry.data
        return entry.data[start:end]

    async def get_with_version(self, key: str) -> tuple[bytes, VersionInfo]:
        # docstring inherited
        validate_key(key)
        bucket = self._live_bucket()
        with bucket.lock:
            entry = bucket.objects.get(key)
        if entry is None:
            raise ObjectNotFoundError(f"object not found in in-memory storage: {key!r}")
        return entry.data, VersionInfo(entry.version)

    async def put(self, key: str, data: bytes, mode: PutMode = WriteMode.OVERWRITE) -> VersionInfo:
        # docstring inherited
        validate_key(key)
        # Copy anything mutable so later changes by the caller cannot alter the stored object.
        payload = data if type(data) is bytes else bytes(data)
        bucket = self._live_bucket()
        with bucket.lock:
            current = bucket.objects.get(key)
            match mode:
                case WriteMode.OVERWRITE:
                    pass
                case WriteMode.CREATE:
                    if current is not None:
                        raise PreconditionFailedError(
                            f"create-only put failed: {key!r} already exists"
                        )
                case IfMatch(version=expected):
                    if current is None:
                        raise PreconditionFailedError(
                            f"conditional put failed: {key!r} does not exist "
                            f"(expected version {expected.etag!r})"
                        )
                    if current.version != expected.etag:
                        raise PreconditionFailedError(
                            f"conditional put failed: {key!r} is at version "
                            f"{current.version!r}, not {expected.etag!r}"
                        )
                case _:
                    raise InvalidInputError(f"unknown put mode: {mode!r}")
            version = str(bucket.next_version)
            bucket.next_version += 1
            bucket.objects[key] = _Entry(payload, version, datetime.now(UTC))
        return VersionInfo(version)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        # docstring inherited
        bucket = self._live_bucket()
        with bucket.lock:
            found = [
                ObjectInfo(key, len(entry.data), entry.created_at)
                for key, entry in bucket.objects.items()
                if key.startswith(prefix)
            ]
        for info in found:
            yield info

    async def delete(self, keys: Iterable[str]) -> None:
        # docstring inherited
        to_delete = [validate_key(key) for key in keys]
        bucket = self._live_bucket()
        with bucket.lock:
            for key in to_delete:
                bucket.objects.pop(key, None)

    async def exists(self, key: str) -> bool:
        # docstring inherited
        validate_key(key)
        bucket = self._live_bucket()
        with bucket.lock:
            return key in bucket.objects
