"""Register the ingestion deployments on a process work pool, from Python.

    prefect work-pool create icechunk-process --type process
    python -m deployments.deploy --repository /data/weather.icechunk
    prefect worker start --pool icechunk-process

The same deployments as ``prefect.yaml`` (``ingest-on-demand``, the scheduled
``append-every-6h`` and ``quicklook-on-commit``, triggered by each commit's event), with the flow code pulled from this project's directory by the worker
(``flow.from_source``). Registering uses ``RunnerDeployment.apply()``, which needs nothing but
the API: no image build, no interactive prompts.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import Flow
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentEventTrigger
from prefect.schedules import Cron, Schedule

from tasks.events import COMMIT_EVENT, public_location

__all__ = [
    "PROJECT_ROOT",
    "apply_deployments",
    "build_deployments",
    "build_downstream_deployment",
    "commit_trigger",
    "main",
]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""The directory holding ``flows/``: where workers load the flow code from."""

DEFAULT_POOL = "icechunk-process"
DEFAULT_CRON = "5 */6 * * *"


def build_deployments(
    repository: str,
    source: dict[str, Any],
    *,
    work_pool: str = DEFAULT_POOL,
    cron: str = DEFAULT_CRON,
    extra_schedules: Sequence[Schedule] = (),
    root: Path = PROJECT_ROOT,
    job_variables: dict[str, Any] | None = None,
) -> list[RunnerDeployment]:
    """The on-demand ingest deployment and the scheduled append deployment (``cron``, in UTC,
    plus ``extra_schedules``), both on ``work_pool`` and limited to one run at a time."""
    params = {"source": source, "repository": repository}
    common: dict[str, Any] = {
        "work_pool_name": work_pool,
        "parameters": params,
        "concurrency_limit": 1,
        "job_variables": job_variables or {},
    }
    ingest = Flow.from_source(source=str(root), entrypoint="flows/ingest.py:ingest")
    append = Flow.from_source(source=str(root), entrypoint="flows/ingest.py:append")
    return [
        ingest.to_deployment(
            name="ingest-on-demand",
            description="Initialize the dataset (if needed) and write everything the source holds.",
            **common,
        ),
        append.to_deployment(
            name="append-every-6h",
            description="Append the steps the repository lacks; no commit when nothing is new.",
            schedules=[Cron(cron, timezone="UTC"), *extra_schedules],
            **common,
        ),
    ]


def commit_trigger(repository: str) -> DeploymentEventTrigger:
    """A trigger firing on each ``icechunk.commit`` event of ``repository``, passing the
    snapshot id, branch and appended range from the event to the deployment's parameters."""
    return DeploymentEventTrigger(
        name=f"new data in {public_location(repository)}",
        expect={COMMIT_EVENT},
        match={"prefect.resource.id": f"icechunk.repository.{public_location(repository)}"},
        parameters={
            "repository": "{{ event.payload.repository }}",
            "snapshot_id": "{{ event.payload.snapshot_id }}",
            "branch": "{{ event.payload.branch }}",
            "dim": "{{ event.payload.dim }}",
            "start": "{{ event.payload.appended.start }}",
            "stop": "{{ event.payload.appended.stop }}",
        },
    )


def build_downstream_deployment(
    repository: str,
    *,
    work_pool: str = DEFAULT_POOL,
    root: Path = PROJECT_ROOT,
    job_variables: dict[str, Any] | None = None,
) -> RunnerDeployment:
    """The quick-look deployment, run by each new commit to ``repository`` (an event trigger,
    no schedule); it reads the snapshot the event names."""
    quicklook = Flow.from_source(source=str(root), entrypoint="flows/downstream.py:on_commit")
    return quicklook.to_deployment(
        name="quicklook-on-commit",
        description="Quick-look statistics of each new commit (icechunk.commit events).",
        work_pool_name=work_pool,
        triggers=[commit_trigger(repository)],
        job_variables=job_variables or {},
    )


def apply_deployments(deployments: Sequence[RunnerDeployment]) -> list[UUID]:
    """Create or update the deployments on the Prefect API; return their ids."""
    return [deployment.apply() for deployment in deployments]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repository", required=True, help="repository location")
    parser.add_argument("--pool", default=DEFAULT_POOL, help="process work pool")
    parser.add_argument("--cron", default=DEFAULT_CRON, help="append schedule (UTC)")
    parser.add_argument("--ntime", type=int, default=48, help="synthetic source: time steps")
    args = parser.parse_args(argv)
    source = {"kind": "synthetic", "ntime": args.ntime, "nlat": 90, "nlon": 180}
    deployments = build_deployments(args.repository, source, work_pool=args.pool, cron=args.cron)
    deployments.append(build_downstream_deployment(args.repository, work_pool=args.pool))
    for deployment, deployment_id in zip(deployments, apply_deployments(deployments), strict=True):
        print(f"deployment {deployment.flow_name}/{deployment.name}: {deployment_id}")


if __name__ == "__main__":
    main()
