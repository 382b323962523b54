"""Where a repository's objects live.

A :class:`Storage` is a handful of async object operations (see :mod:`icechunk.storage.base`);
each backend is one module, reached through a factory function named like the real Icechunk's:

* :func:`in_memory_storage` -- process-local, for tests and scratch work;
* :func:`local_filesystem_storage` -- a directory, safe for concurrent writers in several
  processes of one machine;
* :func:`s3_storage`, :func:`gcs_storage`, :func:`azure_storage` and :func:`from_url` -- cloud
  object stores through ``obstore`` (the ``s3`` extra; imported on first use, so the core works
  without it).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from icechunk.config import StorageSettings
from icechunk.storage.base import (
    ByteRange,
    IfMatch,
    ObjectInfo,
    OffsetRange,
    PutMode,
    RangeRequest,
    Storage,
    SuffixRange,
    VersionInfo,
    WriteMode,
)
from icechunk.storage.local import LocalFileSystemStorage
from icechunk.storage.memory import InMemoryStorage

if TYPE_CHECKING:
    from icechunk.storage.obstore import (
        AzureRefreshableCredential,
        GcsBearerCredential,
        ObjectStoreStorage,
        S3StaticCredentials,
        StorageRetriesSettings,
        azure_storage,
        from_url,
        gcs_storage,
        s3_storage,
    )

_OBJECT_STORE_NAMES = frozenset(
    {
        "AzureRefreshableCredential",
        "GcsBearerCredential",
        "ObjectStoreStorage",
        "S3StaticCredentials",
        "StorageRetriesSettings",
        "azure_storage",
        "from_url",
        "gcs_storage",
        "s3_storage",
    }
)


def __getattr__(name: str) -> Any:
    # The object-store backends need obstore (an optional dependency): import them on first use.
    if name in _OBJECT_STORE_NAMES:
        from icechunk.storage import obstore as _obstore_backend

        return getattr(_obstore_backend, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AzureRefreshableCredential",
    "ByteRange",
    "GcsBearerCredential",
    "IfMatch",
    "InMemoryStorage",
    "LocalFileSystemStorage",
    "ObjectInfo",
    "ObjectStoreStorage",
    "OffsetRange",
    "PutMode",
    "RangeRequest",
    "S3StaticCredentials",
    "Storage",
    "StorageRetriesSettings",
    "StorageSettings",
    "SuffixRange",
    "VersionInfo",
    "WriteMode",
    "azure_storage",
    "from_url",
    "gcs_storage",
    "in_memory_storage",
    "local_filesystem_storage",
    "s3_storage",
]


def in_memory_storage() -> Storage:
    """Return a new, empty storage held in this process's memory.

    The data is shared with pickled copies loaded in the same process. A copy loaded in another
    process raises :class:`~icechunk.errors.StorageError` on first use; use
    :func:`local_filesystem_storage` when several processes need the repository.
    """
    return InMemoryStorage()


def local_filesystem_storage(path: str | os.PathLike[str]) -> Storage:
    """Return storage rooted at the directory ``path``.

    The directory is created on the first write, not by this call. Writes are atomic and
    durable, and compare-and-swap is safe across processes on one machine (see
    :mod:`icechunk.storage.local`).

    Parameters
    ----------
    path
        The repository directory; a relative path is made absolute now.
    """
    return LocalFileSystemStorage(path)
