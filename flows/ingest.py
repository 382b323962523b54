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

from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.context import get_run_context
from prefect.exceptions import MissingContextError

from flows.runners import default_task_runner, workers_report_to_this_api
from icechunk import Repository
from tasks import (
    IcechunkRepositoryBlock,
    core,
    extend_dataset,
    initialize_dataset,
    merge_and_commit,
    open_repository,
    plan_append,
    write_regions,
)
from tasks.sources import DatasetSource, source_from_spec

__all__ = ["append", "backfill", "ingest"]


def _flow_run_id() -> str | None:
    try:
        ctx = get_run_context()
    except MissingContextError:
        return None
    run = getattr(ctx, "flow_run", None)
    return str(run.id) if run is not None else None


def _append_steps(
    repo: Repository,
    source: DatasetSource,
    *,
    branch: str,
    until: int | None,
    chunks: dict[str, int] | None,
    chunks_per_region: int,
    message: str | None,
) -> str | None:
    initialize_dataset(repo, source, branch=branch, chunks=chunks)
    start, stop = plan_append(repo, source, branch=branch, until=until)
    if start >= stop:
        return None
    session = repo.writable_session(branch)
    regions = extend_dataset(session, source, start, stop, chunks_per_region=chunks_per_region)
    fork = session.fork()
    forks = write_regions(fork, source, regions)
    incoming = source.coordinate()
    first, last = incoming[start], incoming[stop - 1]
    metadata: dict[str, Any] = {
        "flow_run_id": _flow_run_id(),
        "source": source.describe(),
        "dim": source.dim,
        "appended": [str(first), str(last)],
        "steps": stop - start,
        "regions": [[r.target_start, r.target_stop] for r in regions],
    }
    diff = session.status()
    snapshot = merge_and_commit(
        session,
        forks,
        message or f"append {stop - start} {source.dim} steps ({first} .. {last})",
        metadata,
    )
    create_markdown_artifact(
        key="icechunk-commit",
        markdown=(
            f"### Icechunk commit `{snapshot}`\n\n"
            f"- branch: `{branch}`\n- appended {stop - start} `{source.dim}` steps: "
            f"{first} .. {last}\n- regions written: {len(regions)}\n"
            f"- arrays changed: {sorted(diff.updated_arrays | diff.new_arrays) or 'metadata'}\n"
            f"- source: {source.describe()}\n"
        ),
        description="What this flow run committed",
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
                branch=branch,
                until=min(until, stop),
                chunks=chunks,
                chunks_per_region=chunks_per_region,
                message=None,
            )
            if snap is not None:
                commits.append(snap)
    return commits
