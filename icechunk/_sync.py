"""The one helper that drives the async core from synchronous code.

Every public synchronous method is a one-line call of :func:`sync` on its ``_async`` twin. We run
on zarr's I/O event loop (a dedicated daemon thread, reset after ``fork``), so the coroutines zarr
drives through :class:`~icechunk.store.IcechunkStore` and the ones our sync facade drives share one
loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine
from typing import Any

from zarr.core.sync import sync as _zarr_sync

__all__ = ["collect", "sync"]


def sync[T](coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on the shared I/O loop and return its result.

    Raises whatever the coroutine raises. Must not be called from a coroutine running on that
    loop (zarr raises ``SyncError`` then): use the ``_async`` method instead.
    """
    return _zarr_sync(coro)


async def _collect[T](it: AsyncIterator[T]) -> list[T]:
    return [x async for x in it]


def collect[T](it: AsyncIterator[T]) -> list[T]:
    """Drain an async iterator synchronously."""
    return sync(_collect(it))
