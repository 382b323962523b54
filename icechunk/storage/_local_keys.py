"""What the local storage's keys and files are: key classes, versions, temporary names, errors.

:mod:`icechunk.storage.local` owns the reading and writing; this module owns the vocabulary it
shares with its tests: which keys are immutable, how a version is computed, where temporary and
lock files live and how temporary files are named.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import secrets
from typing import Final

from icechunk.errors import StorageError

__all__ = [
    "EAGER_PREFIXES",
    "IMMUTABLE_PREFIXES",
    "INLINE_WRITE_MAX",
    "LOCK_DIR",
    "LOCK_STRIPES",
    "TMP_DIR",
    "content_version",
    "is_immutable_key",
    "os_error",
    "temp_name",
    "version_of",
    "write_all",
]

TMP_DIR = ".icechunk-tmp"
"""Hidden directory under the root holding files being written."""
LOCK_DIR = ".icechunk-locks"
"""Hidden directory under the root holding the ``flock`` files."""
LOCK_STRIPES = 256
"""Number of lock files keys are spread over."""

INLINE_WRITE_MAX: Final = 64 * 1024
"""Immutable objects up to this size are written on the calling thread, not a worker thread."""
IMMUTABLE_PREFIXES: Final = ("chunks/", "manifests/", "snapshots/", "transactions/", "overwritten/")
"""Key prefixes of objects written once under fresh random names and referenced only later."""
EAGER_PREFIXES: Final = ("manifests/", "snapshots/", "transactions/", "overwritten/")
"""Immutable objects a ref write follows within milliseconds (a commit's, or the ``repo``
backup): flushed as soon as they are written, not with the next write-back batch."""

TMP_SERIAL: Final = itertools.count()
TMP_TAG: Final = [secrets.token_hex(6)]
"""Temporary files are named ``<pid>-<tag>-<serial>.tmp``: unique among the threads of a process
(serial), its forks (pid) and processes elsewhere that reuse the pid (random tag), without a
``getrandom`` call per write. They are created with ``O_EXCL`` all the same."""


def _retag_after_fork() -> None:
    TMP_TAG[0] = secrets.token_hex(6)


os.register_at_fork(after_in_child=_retag_after_fork)


def temp_name() -> str:
    """A fresh temporary file name (see :data:`TMP_TAG`)."""
    return f"{os.getpid()}-{TMP_TAG[0]}-{next(TMP_SERIAL)}.tmp"


def content_version(data: bytes | memoryview) -> str:
    """The version token of an object holding ``data``: 128 bits of its SHA-256, in hex.

    SHA-256 rather than BLAKE2b because CPUs with SHA extensions hash it about twice as fast.
    """
    return hashlib.sha256(data).hexdigest()[:32]


def version_of(key: str, data: bytes | memoryview) -> str:
    """The version token of ``data`` stored at ``key``.

    Immutable objects are written once and never changed, so hashing them (every chunk!) would
    cost CPU for a token nobody compares; their version is their size.
    """
    return f"size-{len(data)}" if is_immutable_key(key) else content_version(data)


def is_immutable_key(key: str) -> bool:
    """Whether ``key`` names an immutable object (see :data:`IMMUTABLE_PREFIXES`).

    Such objects are written without ``fsync``: the durability barrier that precedes every
    write of any other key makes them durable before anything can reference them.
    """
    return key.startswith(IMMUTABLE_PREFIXES)


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write all of ``data`` to the file descriptor ``fd``."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def os_error(action: str, path: str, exc: OSError) -> StorageError:
    """A :class:`StorageError` saying which ``action`` on ``path`` failed and why."""
    reason = exc.strerror or str(exc)
    return StorageError(f"local storage could not {action} {path!r}: {reason}")
