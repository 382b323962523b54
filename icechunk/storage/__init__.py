"""Where a repository's objects live.

A :class:`Storage` is a handful of async object operations (see :mod:`icechunk.storage.base`);
each backend is one module, reached through a factory function named like the real Icechunk's:

* :func:`in_memory_storage` -- process-local, for tests and scratch work;
* :func:`local_filesystem_storage` -- a directory, safe for concurrent writers in several
  processes of one machine.
"""

from __future__ import annotations

import os

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

__all__ = [
    "ByteRange",
    "IfMatch",
    "InMemoryStorage",
    "LocalFileSystemStorage",
    "ObjectInfo",
    "OffsetRange",
    "PutMode",
    "RangeRequest",
    "Storage",
    "SuffixRange",
    "VersionInfo",
    "WriteMode",
    "in_memory_storage",
    "local_filesystem_storage",
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
