"""Exactly-once data commits: idempotency keys in commit metadata, looked up in history.

A data commit records, in its metadata, an *idempotency key*: the flow run id, the branch, the
planned range along the append dimension and the source's fingerprint. Before committing, and
after any failure whose outcome is unknown (a lost response on the branch update, a conflict
that may be with our own earlier attempt), the branch's recent history is searched for that
key; when it is there, its snapshot is returned instead of committing again.

A re-execution of the same flow run (a Prefect retry of the flow, a crashed run re-run with
the same id) finds nothing new to append, and :func:`find_commit` by ``flow_run_id`` and
fingerprint returns what that run committed before it died. A *new* flow run finds nothing
new to append either (the append planning sees the data). So no path commits the same data
twice.

Plain functions, no Prefect: the tasks in :mod:`tasks` wrap them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from icechunk import ConflictDetector, ConflictError, ForkSession, Repository, Session

__all__ = [
    "IDEMPOTENCY_KEY",
    "CommitOutcome",
    "CommitStateUnknownError",
    "commit_once",
    "find_commit",
    "idempotency_key",
]

logger = logging.getLogger(__name__)

IDEMPOTENCY_KEY = "idempotency_key"
"""The commit-metadata field holding the key."""

HISTORY_DEPTH = 100
"""How many commits back :func:`find_commit` looks when it has no base snapshot to stop at."""


class CommitStateUnknownError(RuntimeError):
    """A commit failed in a way that may or may not have published it, and the branch's
    history could not be read to tell. Re-run the flow: its idempotency check settles it."""


@dataclass(frozen=True)
class CommitOutcome:
    """The snapshot a data commit resolved to.

    Attributes
    ----------
    snapshot_id
        The snapshot holding the data.
    created
        ``True`` if this call committed it, ``False`` if an earlier attempt had (found by its
        idempotency key).
    metadata
        The commit's metadata as stored.
    """

    snapshot_id: str
    created: bool
    metadata: dict[str, Any]


def idempotency_key(
    flow_run_id: str | None, branch: str, dim: str, start: int, stop: int, fingerprint: str
) -> str:
    """The key of one planned commit: who (flow run), where (branch), what (range, source).

    Without a flow run (plain Python) the key still names the range and the source, so a
    retried call of the same plan is recognised too.
    """
    return f"{flow_run_id or 'no-flow-run'}/{branch}/{dim}[{start}:{stop}]/{fingerprint}"


def find_commit(
    repo: Repository,
    branch: str,
    *,
    key: str | None = None,
    flow_run_id: str | None = None,
    fingerprint: str | None = None,
    since: str | None = None,
    depth: int = HISTORY_DEPTH,
) -> tuple[str, dict[str, Any]] | None:
    """The newest commit on ``branch`` matching ``key`` (or ``flow_run_id`` and
    ``fingerprint``), searching back to snapshot ``since`` (exclusive) or ``depth`` commits.

    Returns
    -------
    tuple[str, dict] or None
        The snapshot id and its metadata, or ``None`` if no commit matches.
    """
    if key is None and flow_run_id is None:
        raise ValueError("find_commit needs a key or a flow_run_id")
    for n, info in enumerate(repo.ancestry(branch=branch)):
        if info.id == since or n >= depth:
            return None
        meta = info.metadata or {}
        if key is not None and meta.get(IDEMPOTENCY_KEY) == key:
            return info.id, dict(meta)
        if (
            key is None
            and meta.get("flow_run_id") == flow_run_id
            and (fingerprint is None or meta.get("source_fingerprint") == fingerprint)
        ):
            return info.id, dict(meta)
    return None


def commit_once(
    repo: Repository,
    session: Session,
    forks: Sequence[ForkSession],
    *,
    message: str,
    key: str,
    metadata: Mapping[str, Any] | None = None,
    extra_metadata: Callable[[Session], Mapping[str, Any]] | None = None,
    rebase: bool = True,
) -> CommitOutcome:
    """Merge ``forks`` into ``session`` and commit, at most once for ``key``.

    The key goes into the commit metadata (:data:`IDEMPOTENCY_KEY`). If a commit with that key
    is already on the branch (newer than the session's base), it is returned and nothing is
    committed. If committing fails, the history is searched again: a commit that landed
    although the call failed (a lost response; a conflict with our own earlier attempt) is
    returned as if the call had succeeded. ``extra_metadata(session)``, called after the
    merge, adds fields computed from the merged changes (e.g. chunk counts).

    Raises
    ------
    CommitStateUnknownError
        The commit failed and the history could not be read to tell whether it landed.
    ConflictError, Exception
        The commit failed and did not land: nothing was published; a re-run is safe.
    """
    branch = session.branch
    if branch is None:
        raise ValueError("commit_once needs a writable session on a branch")
    base = session.snapshot_id
    found = find_commit(repo, branch, key=key, since=base)
    if found is not None:
        logger.info("commit %s already holds %s; not committing again", found[0], key)
        return CommitOutcome(found[0], False, found[1])
    session.merge(*forks, on_overlap="error")
    meta = dict(metadata or {})
    if extra_metadata is not None:
        meta.update(extra_metadata(session))
    meta[IDEMPOTENCY_KEY] = key
    try:
        snapshot = session.commit(
            message,
            metadata=meta,
            rebase_with=ConflictDetector() if rebase else None,
            rebase_tries=20,
        )
    except Exception as error:
        try:
            found = find_commit(repo, branch, key=key, since=base)
        except Exception as check_error:  # noqa: BLE001 -- any failure: state unknown
            raise CommitStateUnknownError(
                f"committing {key} failed ({type(error).__name__}: {error}) and the history "
                f"of {branch!r} could not be read to tell whether it landed "
                f"({type(check_error).__name__}: {check_error}); re-run the flow"
            ) from error
        if found is None:
            raise
        kind = "conflict" if isinstance(error, ConflictError) else type(error).__name__
        logger.warning(
            "committing %s failed (%s) but the commit landed as %s; using it", key, kind, found[0]
        )
        return CommitOutcome(found[0], False, found[1])
    return CommitOutcome(snapshot, True, repo.lookup_snapshot(snapshot).metadata)
