"""Prefect tasks for transactional Icechunk ingestion. Import them into your own flows.

Every task is a thin wrapper around a plain function in :mod:`tasks.core` (usable without
Prefect). Tasks that carry sessions use ``cache_policy=NO_CACHE`` (a session must never be
replayed from a cache, and a writable one cannot be hashed); ``write_region`` retries transient
storage errors only; nothing retries a commit blindly.

A flow of your own, with one commit per run (``merge_and_commit`` and ``extend_dataset`` take
the coordinator's writable session: call them directly in the flow, never ``.submit`` them)::

    from prefect import flow
    from tasks import (extend_dataset, initialize_dataset, merge_and_commit, open_repository,
                       plan_append, write_regions)

    @flow
    def my_ingest(location: str, source) -> str | None:
        repo = open_repository(location)
        initialize_dataset(repo, source, chunks={"time": 4})
        start, stop = plan_append(repo, source)
        if start == stop:
            return None                      # nothing new: no commit
        session = repo.writable_session("main")
        regions = extend_dataset(session, source, start, stop)
        forks = write_regions(session.fork(), source, regions)  # write_region.map + checks
        key = idempotency_key(flow_run.id, "main", source.dim, start, stop,
                              source_fingerprint(source))
        return merge_and_commit(session, forks, "my ingest", repo=repo,
                                idempotency_key=key, location=location)

(``from prefect.runtime import flow_run``.) With ``repo`` and ``idempotency_key`` the commit
is exactly-once: a commit that landed although the call failed is found by its key and
returned, never made twice (see :mod:`tasks.commits`). Every commit emits an
``icechunk.commit`` event (:mod:`tasks.events`).
"""

from __future__ import annotations

from typing import Any

from prefect import task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.logging import get_run_logger

from icechunk import ForkSession, Repository, Session, StorageError
from tasks import core
from tasks.artifacts import RegionProgress
from tasks.blocks import IcechunkRepositoryBlock
from tasks.commits import CommitStateUnknownError, commit_once, find_commit, idempotency_key
from tasks.events import emit_commit_event
from tasks.regions import Region, plan_regions
from tasks.sources import (
    DatasetSource,
    NetCDFSource,
    SyntheticWeatherSource,
    XarraySource,
    source_fingerprint,
)

__all__ = [
    "CommitStateUnknownError",
    "DatasetSource",
    "IcechunkRepositoryBlock",
    "NetCDFSource",
    "Region",
    "SyntheticWeatherSource",
    "TRANSIENT_ERRORS",
    "XarraySource",
    "extend_dataset",
    "find_commit",
    "idempotency_key",
    "initialize_dataset",
    "is_transient",
    "merge_and_commit",
    "open_repository",
    "plan_append",
    "plan_regions",
    "retry_transient_storage_errors",
    "source_fingerprint",
    "write_region",
    "write_regions",
]


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (StorageError, ConnectionError, TimeoutError)
"""Errors worth retrying: the environment failed (object store, network), not the input."""


def is_transient(error: BaseException | None) -> bool:
    """Whether ``error`` (or an error it was raised ``from``) is one of :data:`TRANSIENT_ERRORS`."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, TRANSIENT_ERRORS):
            return True
        error, seen = error.__cause__, seen + 1
    return False


def retry_transient_storage_errors(task: Any, task_run: Any, state: Any) -> bool:
    """``retry_condition_fn``: retry only environmental storage failures (never bad input,
    schema errors or conflicts, which would fail again)."""
    if not (state.is_failed() or state.is_crashed()):
        return False
    error = state.result(raise_on_failure=False)
    return isinstance(error, BaseException) and is_transient(error)


@task(cache_policy=NO_CACHE, persist_result=False)
def open_repository(location: str | IcechunkRepositoryBlock, create: bool = True) -> Repository:
    """Open (or create) a repository from a location string or an IcechunkRepositoryBlock."""
    if isinstance(location, IcechunkRepositoryBlock):
        return location.open_repository(create=create)
    return core.open_repository(location, create=create)


@task(cache_policy=NO_CACHE, persist_result=False)
def initialize_dataset(
    repo: Repository,
    source: DatasetSource,
    branch: str = "main",
    chunks: dict[str, int] | None = None,
) -> str | None:
    """Commit the dataset schema if the repository does not hold it yet (idempotent)."""
    snapshot = core.initialize_dataset(repo, source, branch=branch, chunks=chunks)
    logger = get_run_logger()
    if snapshot is None:
        logger.info("dataset schema already present on %s; nothing to initialize", branch)
    else:
        logger.info("initialized dataset schema on %s: snapshot %s", branch, snapshot)
    return snapshot


@task(cache_policy=NO_CACHE, persist_result=False)
def plan_append(
    repo: Repository, source: DatasetSource, branch: str = "main", until: int | None = None
) -> tuple[int, int]:
    """Source positions ``[start, stop)`` the repository lacks; ``start == stop``: none.

    Refuses (``InvalidInputError``) when the stored steps are not a prefix of the source's.
    """
    start, stop = core.plan_append(repo, source, branch=branch, until=until)
    logger = get_run_logger()
    if stop > start:
        logger.info("source steps %d..%d are new", start, stop - 1)
    else:
        logger.info("nothing new on %s: the repository holds the first %d steps", branch, start)
    return start, stop


@task(cache_policy=NO_CACHE, persist_result=False)
def extend_dataset(
    session: Session, source: DatasetSource, start: int, stop: int, chunks_per_region: int = 4
) -> list[Region]:
    """Grow the arrays in the coordinator's ``session`` by source steps ``[start, stop)``
    (coordinates written, data left for :func:`write_region`); return the chunk-aligned
    regions to write. Call it directly in the flow: a writable session does not travel."""
    regions = core.extend_dataset(session, source, start, stop, chunks_per_region=chunks_per_region)
    get_run_logger().info(
        "extended %s by %d steps; %d regions to write", source.dim, stop - start, len(regions)
    )
    return regions


@task(
    cache_policy=NO_CACHE,
    persist_result=False,
    retries=3,
    retry_delay_seconds=[1, 4, 10],
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_transient_storage_errors,
    tags=["icechunk-write"],
    task_run_name="write-region-{region}",
)
def write_region(fork: ForkSession, source: DatasetSource, region: Region) -> ForkSession:
    """Write one region through a fork (runs on a Dask worker) and return the fork."""
    result = core.write_region(fork, source, region)
    get_run_logger().info("wrote region %s (%d steps)", region, region.size)
    return result


@task(cache_policy=NO_CACHE, persist_result=False)
def merge_and_commit(
    session: Session,
    forks: list[ForkSession],
    message: str,
    metadata: dict[str, Any] | None = None,
    *,
    repo: Repository | None = None,
    idempotency_key: str | None = None,
    location: str | None = None,
    dim: str | None = None,
) -> str:
    """Merge the forks into the coordinator's session and commit once (rebasing over
    unrelated concurrent commits; conflicting ones fail); emit an ``icechunk.commit`` event.

    With ``repo`` and ``idempotency_key`` the commit is exactly-once
    (:func:`tasks.commits.commit_once`): the key is recorded in the commit metadata, and if a
    commit with that key is already on the branch (an earlier attempt whose response was lost)
    its snapshot id is returned instead of committing again. With ``dim``, the metadata also
    records ``chunks_written`` and ``bytes_written``. ``location`` names the repository in the
    event (its resource id is ``icechunk.repository.<location>``).
    """
    logger = get_run_logger()
    branch = session.branch or "?"
    meta = dict(metadata or {})
    if dim is not None:
        steps = int(meta.get("steps", 0) or 0)
        meta.setdefault("bytes_written", core.appended_nbytes(session, dim, steps))
    if idempotency_key is not None:
        if repo is None:
            raise ValueError("merge_and_commit(idempotency_key=...) also needs repo=")
        outcome = commit_once(
            repo,
            session,
            forks,
            message=message,
            key=idempotency_key,
            metadata=meta,
            extra_metadata=_chunk_counts,
        )
        snapshot, stored = outcome.snapshot_id, outcome.metadata
        if outcome.created:
            logger.info("committed %s on %s: %s", snapshot, branch, message)
        else:
            logger.warning(
                "an earlier attempt already committed %s on %s (%s); not committing again",
                snapshot,
                branch,
                idempotency_key,
            )
    else:
        session.merge(*forks, on_overlap="error")
        meta.setdefault("chunks_written", core.chunks_changed(session))
        snapshot = core.merge_and_commit(session, [], message=message, metadata=meta)
        stored = meta
        logger.info("committed %s on %s: %s", snapshot, branch, message)
    emit_commit_event(location or "unnamed", branch, snapshot, message, stored)
    return snapshot


def _chunk_counts(session: Session) -> dict[str, Any]:
    return {"chunks_written": core.chunks_changed(session)}


def write_regions(
    fork: ForkSession, source: DatasetSource, regions: list[Region]
) -> list[ForkSession]:
    """Fan :func:`write_region` out over ``regions`` on the flow's task runner; return the
    forks, in region order, for :func:`merge_and_commit`. Call it inside a flow.

    A progress artifact of the flow run follows the regions as they complete. Waits for
    every region before reporting a failure (so no write still runs when the flow
    run ends), then raises the first region's error: nothing can be committed. Prefer this
    to passing the futures of ``write_region.map`` straight to ``merge_and_commit``: Prefect
    does not raise when a task called in a flow gets failed upstream futures, it returns
    ``None`` (state ``NotReady``) and the flow run still completes.
    """
    logger = get_run_logger()
    progress = RegionProgress(len(regions), f"Regions written ({len(regions)} in all)")
    futures = write_region.map(unmapped(fork), unmapped(source), regions)
    for i, _ in enumerate(as_completed(futures), start=1):
        progress.advance()
        logger.info("progress: %d/%d regions done", i, len(regions))
    forks: list[ForkSession] = []
    failed: list[tuple[Region, BaseException]] = []
    for region, future in zip(regions, futures, strict=True):
        try:
            forks.append(future.result())
        except Exception as e:  # noqa: BLE001 -- any task failure: reported and re-raised below
            failed.append((region, e))
    if failed:
        logger.error(
            "%d of %d regions failed (%s); nothing is committed, re-run to complete",
            len(failed),
            len(regions),
            ", ".join(f"{r}: {type(e).__name__}" for r, e in failed),
        )
        raise failed[0][1]
    return forks
