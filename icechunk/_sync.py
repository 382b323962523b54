"""The one helper that drives the async core from synchronous code.

Every public synchronous method is :func:`sync` on its ``_async`` twin, most of them made by
:func:`sync_twin`. We run
on zarr's I/O event loop (a dedicated daemon thread, reset after ``fork``), so the coroutines zarr
drives through :class:`~icechunk.store.IcechunkStore` and the ones our sync facade drives share one
loop.

The commit family (``commit``, ``amend``, ``flush``) is the exception: :func:`sync_here` runs
it on an event loop of the calling thread's own. A commit is a short chain of dependent steps
and starts no background task, so nothing gains from the shared loop, while every hand-over
between threads costs a wake-up (0.1-0.4 ms each on a virtual machine whose other core is idle,
four of them per commit through zarr's loop and a worker thread: a sixth of a commit after a
Dask write). On its private loop the commit may also block (:func:`may_block`): local storage
then writes the ``repo`` object and refs on the loop itself instead of on a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import os
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Concatenate

from zarr.core.sync import sync as _zarr_sync

__all__ = ["collect", "may_block", "sync", "sync_here", "sync_twin"]


def sync[T](coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on the shared I/O loop and return its result.

    Raises whatever the coroutine raises. Must not be called from a coroutine running on that
    loop (zarr raises ``SyncError`` then): use the ``_async`` method instead.
    """
    return _zarr_sync(coro)


_BLOCKING_OK: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "icechunk_blocking_ok", default=False
)


def may_block() -> bool:
    """Whether the running coroutine may make blocking calls on its event loop.

    True only inside :func:`sync_here`, whose loop belongs to the calling thread and runs
    nothing else; on zarr's shared loop (and on a user's loop) blocking would stall others.
    """
    return _BLOCKING_OK.get()


class _ThreadLoop:
    """The calling thread's private event loop, closed when the thread ends."""

    __slots__ = ("loop", "pid")

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()  # not made the thread's current loop

    def run[T](self, coro: Coroutine[Any, Any, T], context: contextvars.Context) -> T:
        task = self.loop.create_task(coro, context=context)
        try:
            return self.loop.run_until_complete(task)
        except BaseException:
            # Ctrl-C (or another exception) while the loop waited: cancel the task and let it
            # unwind now, or it would resume inside the next call on this thread
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    self.loop.run_until_complete(task)
            raise

    def __del__(self) -> None:
        # A forked child shares the parent's selector: only the process that made it closes
        # it. Only close(): the thread is ending, no loop may run any more.
        if self.pid == os.getpid():
            with contextlib.suppress(RuntimeError, OSError):
                self.loop.close()


_LOCAL = threading.local()
_INHERITED: list[threading.local] = []
"""A forked child's copy of the parent's loops: kept, never used nor closed (see __del__)."""


def _reset_after_fork() -> None:
    global _LOCAL
    _INHERITED.append(_LOCAL)
    _LOCAL = threading.local()


os.register_at_fork(after_in_child=_reset_after_fork)


def sync_here[T](coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on the calling thread's own event loop; its result.

    For operations that start no background task and return only once all their work is done
    (the commit family; see the module docstring). Inside it :func:`may_block` is true. A
    thread that already runs an event loop gets :func:`sync` instead (the coroutine then runs
    on zarr's loop, as before). ``Ctrl-C`` cancels the coroutine.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return sync(coro)
    here: _ThreadLoop | None = getattr(_LOCAL, "loop", None)
    if here is None:
        here = _LOCAL.loop = _ThreadLoop()
    context = contextvars.copy_context()  # the caller's context variables, and ours
    context.run(_BLOCKING_OK.set, True)
    return here.run(coro, context)


async def _collect[T](it: AsyncIterator[T]) -> list[T]:
    return [x async for x in it]


def collect[T](it: AsyncIterator[T]) -> list[T]:
    """Drain an async iterator synchronously."""
    return sync(_collect(it))


def sync_twin[S, **P, R](
    async_method: Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
    *,
    here: bool = False,
) -> Callable[Concatenate[S, P], R]:
    """The synchronous twin of ``async_method``: same signature, same docstring, one body.

    ``list_tags = sync_twin(list_tags_async)`` in a class body defines ``list_tags(self, ...)``
    as ``sync(self.list_tags_async(...))``. The twin's name drops the ``_async`` suffix; its
    docstring and annotations are the async method's, so they are written once. With
    ``here=True`` the twin uses :func:`sync_here` instead.
    """
    run = sync_here if here else sync

    @functools.wraps(async_method)
    def method(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return run(async_method(self, *args, **kwargs))

    name = async_method.__name__.removesuffix("_async")
    method.__name__ = name
    method.__qualname__ = f"{async_method.__qualname__.rpartition('.')[0]}.{name}".lstrip(".")
    return method
