"""Framework-neutral helpers for distributed writes: collect sessions and merge them."""

from __future__ import annotations

from typing import Any

from icechunk.session import ForkSession, Session

__all__ = ["extract_session", "merge_sessions"]


def extract_session(zarray: Any, axis: Any = None, keepdims: Any = None) -> Session:
    """The session behind a zarr array written through an Icechunk store.

    ``axis`` and ``keepdims`` exist so this can serve as a dask reduction's ``chunk`` function.
    """
    return zarray.store.session  # type: ignore[no-any-return]


def _flatten(items: tuple[Any, ...]) -> list[Session]:
    out: list[Session] = []
    for item in items:
        if isinstance(item, list | tuple):
            out.extend(_flatten(tuple(item)))
        else:
            out.append(item)
    return out


def merge_sessions(*sessions: Session | list[Any]) -> Session:
    """Merge sessions into the first one and return it.

    Accepts nested lists (as dask reductions produce). The first item may be the coordinator's
    writable :class:`Session` (the seed document's ``merge_sessions(session, *sessions)``) or a
    :class:`ForkSession`; the others must be forks of it — or the coordinator session itself,
    which is skipped (threads writing through one shared session).

    Raises
    ------
    TypeError
        An item is not a session, or a writable non-fork session other than the first.
    """
    flat = _flatten(sessions)
    if not flat:
        raise TypeError("merge_sessions needs at least one session")
    first, *rest = flat
    for s in flat:
        if not isinstance(s, Session):
            raise TypeError(f"merge_sessions expects sessions, received {type(s).__name__!r}")
    for s in rest:
        if s is not first and not isinstance(s, ForkSession):
            raise TypeError(
                "merge_sessions can only merge ForkSessions into the first session; "
                f"Received {type(s).__name__!r}. Use session.fork() to create them."
            )
    others = [s for s in rest if s is not first]
    if others:
        first.merge(*others)  # type: ignore[arg-type]
    return first
