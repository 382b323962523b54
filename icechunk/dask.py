"""Distributed writes of dask arrays into an Icechunk session.

Each write task runs on a :class:`~icechunk.session.ForkSession` (inside the target zarr
array's store), returns it, and a tree reduction merges the forks; the merged fork comes back
to the caller, which merges it into its own session and commits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.base import compute, is_dask_collection

from icechunk.distributed import extract_session, merge_sessions
from icechunk.session import ForkSession, Session

__all__ = [
    "DEFAULT_SPLIT_EVERY",
    "SimpleGraph",
    "computing_meta",
    "merge_sessions_array_kwargs",
    "session_merge_reduction",
    "store_dask",
]

type SimpleGraph = Mapping[tuple[str, int], tuple[Any, ...]]
"""A dask task graph in its plain form: ``(name, index)`` keys to task tuples."""

_FORBIDDEN = ("compute", "return_stored", "load_stored", "lock")

DEFAULT_SPLIT_EVERY = 16
"""Fan-in of the merge tree when neither the caller nor dask's ``split_every`` setting gives
one (dask's own default is 4). Merging 16 forks costs about what merging 4 does (one sort
of their coordinates), and every merge task costs the workers a task's overhead: writing
512 MiB in 128 tasks on 2 workers, 16 instead of 4 took the workers' user CPU from
1.22-1.27 s to 1.16 s (zarr's ``da.store``: 0.99-1.02 s), medians of 10."""


def computing_meta(func: Callable[..., Any]) -> Callable[..., Any]:
    """Return an object-dtype placeholder when dask probes ``func`` for its meta."""

    def wrapper(*args: Any, computing_meta: bool = False, **kwargs: Any) -> Any:
        if computing_meta:
            return np.array([object()], dtype=object)
        return func(*args, **kwargs)

    return wrapper


def merge_sessions_array_kwargs(*sessions: Any, axis: Any = None, keepdims: Any = None) -> Session:
    """``merge_sessions`` with the signature dask's reduction ``aggregate`` expects."""
    return merge_sessions(*sessions)


def _is_dask_array(x: Any) -> bool:
    return is_dask_collection(x) and hasattr(x, "chunks") and hasattr(x, "dtype")


def session_merge_reduction(
    arrays: Any, *, split_every: int | None, **store_kwargs: Any
) -> Session:
    """Merge the sessions held by the stored arrays of ``dask.array.store(return_stored=True)``.

    ``arrays`` is one dask array or a list of them, each chunk of which holds the fork a write
    task wrote to. A dask reduction tree (fan-in ``split_every``; ``None``: dask's
    ``split_every`` setting if set, else :data:`DEFAULT_SPLIT_EVERY`) merges the forks on the
    workers; one merged session comes back. ``store_kwargs`` go to
    ``dask.compute`` (a scheduler, for instance).

    Raises
    ------
    TypeError
        An input is not a dask array.
    """
    items = arrays if isinstance(arrays, list | tuple) else [arrays]
    if not all(_is_dask_array(a) for a in items):
        raise TypeError("Expected a dask array")
    if split_every is None:
        split_every = dask.config.get("split_every", DEFAULT_SPLIT_EVERY)
    reductions = [
        da.reduction(  # type: ignore[no-untyped-call]
            a,
            name="ice-changeset",
            chunk=extract_session,
            aggregate=merge_sessions_array_kwargs,
            split_every=split_every,
            concatenate=False,
            keepdims=False,
            dtype=object,
            meta=np.array([object()], dtype=object),
        )
        for a in items
    ]
    computed = compute(*reductions, **store_kwargs)  # type: ignore[no-untyped-call]
    return merge_sessions(*computed)


def store_dask(
    session: Session | None = None,
    *,
    sources: Sequence[Any],
    targets: Sequence[Any],
    regions: Sequence[tuple[slice, ...]] | None = None,
    split_every: int | None = None,
    **store_kwargs: Any,
) -> ForkSession | Session:
    """Write dask arrays into zarr arrays on Icechunk forks, then merge the forks.

    Two call forms are supported:

    * ``store_dask(sources=..., targets=...)`` (icechunk 2.x): the targets must be opened on a
      :class:`ForkSession`'s store; the merged fork is returned and the caller merges it into
      its session with ``session.merge(fork)``.
    * ``store_dask(session, sources=..., targets=...)`` (the form of the seed document): the
      targets may be opened on ``session``'s own store; a fork is made internally, the writes
      are merged into ``session``, and ``session`` is returned. Commit it afterwards.

    There is no ``compute`` argument: the write always happens now.
    """
    _check_store_kwargs("store_dask", store_kwargs)
    targets = list(targets)
    fork: ForkSession | None = None
    if session is not None:
        fork = session.fork()
        targets = [_on_store(t, fork.store) for t in targets]
    stored = da.store(
        list(sources),
        targets,
        regions=regions,
        compute=False,
        return_stored=True,
        load_stored=False,
        lock=False,
    )
    merged = session_merge_reduction(stored, split_every=split_every, **store_kwargs)
    if session is None:
        return merged
    session.merge(merged)  # type: ignore[arg-type]
    return session


def _check_store_kwargs(caller: str, store_kwargs: Any) -> None:
    """Refuse the ``dask.array.store`` arguments the fork/merge protocol fixes itself."""
    for name in _FORBIDDEN:
        if name in store_kwargs:
            raise TypeError(
                f"{caller}() got an unexpected keyword argument {name!r}: writes always "
                "compute immediately and are merged into a session"
            )


def _on_store(target: Any, store: Any) -> Any:
    """``target`` (a zarr array) re-opened on another store, with the same array config."""
    import zarr

    return zarr.open_array(store, path=target.path, mode="r+", config=target.config)
