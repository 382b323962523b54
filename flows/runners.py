"""Building the Dask task runner from simple, deployment-friendly parameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect_dask import DaskTaskRunner

__all__ = ["DaskConfig", "make_task_runner"]


@dataclass(frozen=True)
class DaskConfig:
    """Where region writes run.

    ``address`` connects to an existing scheduler; otherwise a ``distributed.LocalCluster`` of
    ``n_workers`` worker processes is started for the flow run (and closed after it).
    ``adapt_min``/``adapt_max`` turn on adaptive scaling.
    """

    address: str | None = None
    n_workers: int = 2
    threads_per_worker: int = 1
    processes: bool = True
    adapt_min: int | None = None
    adapt_max: int | None = None


def make_task_runner(config: DaskConfig | None = None) -> DaskTaskRunner:
    config = config or DaskConfig()
    if config.address:
        return DaskTaskRunner(address=config.address)
    kwargs: dict[str, Any] = {
        "n_workers": config.n_workers,
        "threads_per_worker": config.threads_per_worker,
        "processes": config.processes,
        # No dashboard (bokeh is not a dependency), and the scheduler's small HTTP server on a
        # free port: two flow runs on one machine must not both claim port 8787.
        "dashboard_address": None,
        "scheduler_kwargs": {"dashboard_address": ":0"},
    }
    adapt = None
    if config.adapt_min is not None or config.adapt_max is not None:
        adapt = {"minimum": config.adapt_min or 0, "maximum": config.adapt_max or config.n_workers}
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster", cluster_kwargs=kwargs, adapt_kwargs=adapt
    )


def config_from_env() -> DaskConfig:
    """The cluster configuration from ``ICECHUNK_PREFECT_DASK_*`` environment variables.

    ``..._ADDRESS`` (an existing scheduler), ``..._N_WORKERS``, ``..._THREADS_PER_WORKER``,
    ``..._ADAPT_MIN`` / ``..._ADAPT_MAX`` (adaptive scaling). Unset: a local cluster of two
    worker processes.
    """
    import os

    def env_int(name: str) -> int | None:
        value = os.environ.get(f"ICECHUNK_PREFECT_DASK_{name}")
        return int(value) if value else None

    return DaskConfig(
        address=os.environ.get("ICECHUNK_PREFECT_DASK_ADDRESS") or None,
        n_workers=env_int("N_WORKERS") or 2,
        threads_per_worker=env_int("THREADS_PER_WORKER") or 1,
        adapt_min=env_int("ADAPT_MIN"),
        adapt_max=env_int("ADAPT_MAX"),
    )


def default_task_runner() -> DaskTaskRunner:
    """The flows' default runner: :func:`make_task_runner` of :func:`config_from_env`.

    Use ``flow.with_options(task_runner=make_task_runner(DaskConfig(...)))`` to choose another
    cluster from Python.
    """
    return make_task_runner(config_from_env())
