"""Functions run in child processes (a spawned process pool, or ``distributed`` workers) by the
S3 tests. They live in an importable module so that the children can unpickle them by reference.

Races start at an agreed wall-clock instant (``start_at``, from ``time.time()``) rather than at a
barrier object, so the same warm process pool serves every test.
"""

from __future__ import annotations

import asyncio
import os
import time

import zarr

import icechunk
from icechunk.errors import PreconditionFailedError
from icechunk.storage import Storage, WriteMode


def warm(seconds: float) -> int:
    """Keep a pool worker busy for a while (so that the pool starts all its workers)."""
    time.sleep(seconds)
    return os.getpid()


def _wait_until(start_at: float) -> None:
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)


def commit_worker(storage: Storage, worker: int, commits: int, start_at: float) -> float:
    """Commit ``commits`` times to ``main``, each time one chunk of row ``worker`` of ``data``.

    Returns the seconds spent committing.
    """
    repo = icechunk.Repository.open(storage)
    _wait_until(start_at)
    start = time.monotonic()
    for i in range(commits):
        session = repo.writable_session("main")
        arr = zarr.open_array(session.store, path="data", mode="r+")
        arr[worker, i] = worker * 1000 + i
        session.commit(f"w{worker}-c{i}", rebase_with=icechunk.ConflictDetector())
    return time.monotonic() - start


def create_worker(storage: Storage, key: str, payload: bytes, start_at: float) -> bool:
    """Race a create-only put of ``key``; return whether this writer won."""
    _wait_until(start_at)
    try:
        asyncio.run(storage.put(key, payload, WriteMode.CREATE))
    except PreconditionFailedError:
        return False
    return True


CREDENTIAL_CALLS: list[float] = []


def server_credentials() -> icechunk.storage.S3StaticCredentials:
    """A ``get_credentials`` callable returning the test servers' keys (counts its calls)."""
    from datetime import UTC, datetime, timedelta

    from icechunk.storage import S3StaticCredentials
    from tests.s3._servers import KEY, SECRET

    CREDENTIAL_CALLS.append(time.time())
    return S3StaticCredentials(KEY, SECRET, expires_after=datetime.now(UTC) + timedelta(hours=1))


def wrong_credentials() -> icechunk.storage.S3StaticCredentials:
    from icechunk.storage import S3StaticCredentials

    return S3StaticCredentials("testkey", "wrong-secret-from-callable")


def credential_calls_in_child(storage: Storage) -> tuple[int, bytes]:
    """Read ``k`` through ``storage`` in this (child) process; return the callable's call count."""
    CREDENTIAL_CALLS.clear()
    data = asyncio.run(storage.get("k"))
    return len(CREDENTIAL_CALLS), data
