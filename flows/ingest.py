"""Ingestion flows: ``ingest`` (everything the source has), ``append`` (recurring: only the
steps the repository lacks) and ``backfill`` (a range, in batches).

Every data commit appends whole steps: the coordinator grows the arrays in its session, forks
once, the Dask workers fill chunk-aligned regions on the fork (``write_regions``, a
``write_region.map``), and the forks are merged and committed once in the flow process. A
crash before the commit changes nothing; a re-run completes the work.

Called without ``PREFECT_API_URL``, a flow runs against a temporary local API server; set
``PREFECT_SERVER_ANALYTICS_ENABLED=false`` then (its telemetry heartbeat races the SQLite
migrations and logs "database is locked" tracebacks), or run ``prefect server start``.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from prefect import flow
from prefect.context import get_run_context
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger

from flows.runners import default_task_runner, workers_report_to_this_api
from icechunk import Repository
from tasks import (
    IcechunkRepositoryBlock,
    core,
    extend_dataset,
    find_commit,
    idempotency_key,
    initialize_dataset,
    merge_and_commit,
    open_repository,
    plan_append,
    source_fingerprint,
    write_regions,
)
from tasks.artifacts import publish_commit_artifacts
from tasks.events import emit_commit_event
from tasks.regions import Region
from tasks.sources import DatasetSource, source_from_spec

__all__ = ["append", "backfill", "ingest"]


def _flow_run_id() -> str | None:
    try:
        ctx = get_run_context()
    except MissingContextError:
        return None
    run = getattr(ctx, "flow_run", None)
    return str(run.id) if run is not None else None


def _location(repository: str | IcechunkRepositoryBlock) -> str:
    return repository.location if isinstance(repository, IcechunkRepositoryBlock) else repository


def _regions_of(metadata: dict[str, Any]) -> list[Region]:
    return [
        Region(int(a), int(b), int(a)) for a, b in metadata.get("regions", []) if int(b) > int(a)
    ]


def _append_steps(
    repo: Repository,
    source: DatasetSource,
    *,
    location: str,
    branch: str,
    until: int | None,
    chunks: dict[str, int] | None,
    chunks_per_region: int,
    message: str | None,
) -> str | None:
    """One data commit of the steps the repository lacks (up to ``until``), exactly once.

    A re-execution of the same flow run whose commit already landed (a Prefect retry, a
    crashed run re-run) finds nothing new to append; it returns that commit, and emits its
    event and artifacts if the earlier attempt died before it could.
    """
    initialize_dataset(repo, source, branch=branch, chunks=chunks)
    run_id = _flow_run_id()
    fingerprint = source_fingerprint(source)
    start, stop = plan_append(repo, source, branch=branch, until=until)
    if start >= stop:
        prior = None
        if run_id is not None:
            prior = find_commit(repo, branch, flow_run_id=run_id, fingerprint=fingerprint)
        if prior is None:
            return None
        snapshot, meta = prior
        info = repo.lookup_snapshot(snapshot)
        get_run_logger().warning(
            "an earlier attempt of this flow run already committed %s (%s); not committing again",
            snapshot,
            meta.get("idempotency_key"),
        )
        emit_commit_event(location, branch, snapshot, info.message, meta)
        publish_commit_artifacts(
            location=location,
            branch=branch,
            snapshot_id=snapshot,
            message=info.message,
            metadata=meta,
            regions=_regions_of(meta),
            written_at=info.written_at,
            created=False,
        )
        return snapshot
    began = time.perf_counter()
    session = repo.writable_session(branch)
    regions = extend_dataset(session, source, start, stop, chunks_per_region=chunks_per_region)
    forks = write_regions(session.fork(), source, regions)
    incoming = source.coordinate()
    first, last = incoming[start], incoming[stop - 1]
    metadata: dict[str, Any] = {
        "flow_run_id": run_id,
        "source": source.describe(),
        "source_fingerprint": fingerprint,
        "dim": source.dim,
        "appended": {"start": start, "stop": stop, "first": str(first), "last": str(last)},
        "steps": stop - start,
        "regions": [[r.target_start, r.target_stop] for r in regions],
    }
    message = message or f"append {stop - start} {source.dim} steps ({first} .. {last})"
    snapshot = merge_and_commit(
        session,
        forks,
        message,
        metadata,
        repo=repo,
        idempotency_key=idempotency_key(run_id, branch, source.dim, start, stop, fingerprint),
        location=location,
        dim=source.dim,
    )
    info = repo.lookup_snapshot(snapshot)
    publish_commit_artifacts(
        location=location,
        branch=branch,
        snapshot_id=snapshot,
        message=info.message,
        metadata=info.metadata,
        regions=regions,
        written_at=info.written_at,
        created=info.metadata.get("flow_run_id") == run_id,
        seconds=time.perf_counter() - began,
    )
    return snapshot


@flow(name="icechunk-append", persist_result=False, task_runner=default_task_runner())
def append(
    source: Any,
    repository: str | IcechunkRepositoryBlock,
    branch: str = "main",
    until: int | None = None,
    chunks: dict[str, int] | None = None,
    chunks_per_region: int = 4,
    message: str | None = None,
) -> str | None:
    """Append the source steps the repository does not hold yet, in one commit.

    Returns the new snapshot id, or ``None`` when there was nothing new (no commit is made).
    """
    repo = open_repository(repository)
    source = source_from_spec(source)
    with workers_report_to_this_api():
        return _append_steps(
            repo,
            source,
            location=_location(repository),
            branch=branch,
            until=until,
            chunks=chunks,
            chunks_per_region=chunks_per_region,
            message=message,
        )


@flow(name="icechunk-ingest", persist_result=False, task_runner=default_task_runner())
def ingest(
    source: Any,
    repository: str | IcechunkRepositoryBlock,
    branch: str = "main",
    until: int | None = None,
    chunks: dict[str, int] | None = None,
    chunks_per_region: int = 4,
) -> str | None:
    """Initialize the dataset (if needed) and write what the source holds (up to ``until``
    steps), in one commit."""
    repo = open_repository(repository)
    source = source_from_spec(source)
    with workers_report_to_this_api():
        return _append_steps(
            repo,
            source,
            location=_location(repository),
            branch=branch,
            until=until,
            chunks=chunks,
            chunks_per_region=chunks_per_region,
            message=f"ingest {source.describe()}",
        )


@flow(name="icechunk-backfill", persist_result=False, task_runner=default_task_runner())
def backfill(
    source: Any,
    repository: str | IcechunkRepositoryBlock,
    stop: int,
    batch_size: int = 8,
    branch: str = "main",
    chunks: dict[str, int] | None = None,
    chunks_per_region: int = 4,
) -> list[str]:
    """Append source steps up to ``stop`` in batches of ``batch_size``, one commit per batch."""
    repo = open_repository(repository)
    source = source_from_spec(source)
    commits = []
    stored = len(core.stored_coordinate(repo, source.dim, branch=branch))
    with workers_report_to_this_api():
        for until in range(stored + batch_size, stop + batch_size, batch_size):
            snap = _append_steps(
                repo,
                source,
                location=_location(repository),
                branch=branch,
                until=min(until, stop),
                chunks=chunks,
                chunks_per_region=chunks_per_region,
                message=None,
            )
            if snap is not None and snap not in commits:
                commits.append(snap)
    run_id = _flow_run_id()
    if run_id is None:
        return commits
    # a retried run: include what its earlier attempts committed, oldest first
    earlier = [
        info.id
        for info in itertools.islice(repo.ancestry(branch=branch), 100)
        if (info.metadata or {}).get("flow_run_id") == run_id and info.id not in commits
    ]
    return earlier[::-1] + commits


if __name__ not in ("flows.ingest", "__main__"):
    # Prefect loads a file-path entrypoint ("flows/ingest.py:ingest") as a top-level module
    # named "ingest". Its flow objects travel to Dask workers in every task's context, and
    # pickle by module name: workers started elsewhere (``dask worker`` processes) cannot
    # import "ingest". Hand Prefect the package's flows instead, which pickle as
    # "flows.ingest" and import wherever the project is installed.
    from flows.ingest import append, backfill, ingest
