"""The one helper that drives the async core from synchronous code.

Every public synchronous method is :func:`sync` on its ``_async`` twin, most of them made by
:func:`sync_twin`. We run
on zarr's I/O event loop (a dedicated daemon thread, reset after ``fork``), so the coroutines zarr
drives through :class:`~icechunk.store.IcechunkStore` and the ones our sync facade drives share one
loop.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Concatenate

from zarr.core.sync import sync as _zarr_sync

__all__ = ["collect", "sync", "sync_twin"]


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


def sync_twin[S, **P, R](
    async_method: Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[S, P], R]:
    """The synchronous twin of ``async_method``: same signature, same docstring, one body.

    ``list_tags = sync_twin(list_tags_async)`` in a class body defines ``list_tags(self, ...)``
    as ``sync(self.list_tags_async(...))``. The twin's name drops the ``_async`` suffix; its
    docstring and annotations are the async method's, so they are written once.
    """

    @functools.wraps(async_method)
    def method(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return sync(async_method(self, *args, **kwargs))

    name = async_method.__name__.removesuffix("_async")
    method.__name__ = name
    method.__qualname__ = f"{async_method.__qualname__.rpartition('.')[0]}.{name}".lstrip(".")
    return method
