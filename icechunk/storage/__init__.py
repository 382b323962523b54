"""Where a repository's objects live.

A :class:`Storage` is a handful of async object operations (see :mod:`icechunk.storage.base`);
each backend is one module, reached through a factory function named like the real Icechunk's:

* :func:`in_memory_storage` -- process-local, for tests and scratch work;
* :func:`local_filesystem_storage` -- a directory, safe for concurrent writers in several
  processes of one machine;
* :func:`s3_storage`, :func:`gcs_storage`, :func:`azure_storage` -- cloud object stores through
  ``obstore`` (the ``s3`` extra; imported on first use, so the core works without it);
* :func:`from_url` -- any of the above from a location string (the one parser the command line
  and the pipeline use too).

Layout: the abstract class and value types in :mod:`~icechunk.storage.base`, one module per
backend (:mod:`~icechunk.storage.local`, :mod:`~icechunk.storage.memory`, and the private
``_obstore`` with its ``_factories``), credential values in ``_credentials``, retry settings in
``_settings``, the location parser in ``_url``; this package re-exports the public names.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from icechunk.storage._common import resolve_byte_range
from icechunk.storage._credentials import (
    AzureRefreshableCredential,
    GcsBearerCredential,
    S3AnonymousCredentials,
    S3FromEnvCredentials,
    S3RefreshableCredentials,
    S3StaticCredentials,
)
from icechunk.storage._settings import (
    ChecksumAlgorithm,
    StorageConcurrencySettings,
    StorageRetriesSettings,
    StorageSettings,
    StorageTimeoutSettings,
)
from icechunk.storage._url import from_url
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
    from icechunk.storage._factories import azure_storage, gcs_storage, s3_storage
    from icechunk.storage._obstore import ObjectStoreStorage

_LAZY = {
    "ObjectStoreStorage": "icechunk.storage._obstore",
    "azure_storage": "icechunk.storage._factories",
    "gcs_storage": "icechunk.storage._factories",
    "s3_storage": "icechunk.storage._factories",
}


def __getattr__(name: str) -> Any:
    # The object-store backends need obstore (an optional dependency): import them on first use.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
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
    "S3AnonymousCredentials",
    "S3FromEnvCredentials",
    "S3RefreshableCredentials",
    "S3StaticCredentials",
    "Storage",
    "ChecksumAlgorithm",
    "StorageConcurrencySettings",
    "StorageRetriesSettings",
    "StorageSettings",
    "StorageTimeoutSettings",
    "SuffixRange",
    "VersionInfo",
    "WriteMode",
    "azure_storage",
    "from_url",
    "gcs_storage",
    "in_memory_storage",
    "local_filesystem_storage",
    "resolve_byte_range",
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
