"""Building the Dask task runner from simple, deployment-friendly parameters."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dask
from distributed import LocalCluster
from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings
from prefect_dask import DaskTaskRunner

__all__ = [
    "DaskConfig",
    "config_from_env",
    "default_task_runner",
    "local_cluster",
    "make_task_runner",
    "workers_report_to_this_api",
]


@dataclass(frozen=True)
class DaskConfig:
    """Where region writes run.

    ``address`` connects to an existing scheduler; otherwise a ``distributed.LocalCluster`` of
    ``n_workers`` worker processes is started for the flow run (and closed after it).
    ``adapt_min``/``adapt_max`` turn on adaptive scaling. ``log_level`` is the level of
    distributed's own logs (scheduler, nannies, workers) for a cluster started here: the
    flow run reports progress through Prefect's logs, and distributed's INFO records of every
    start and stop would drown them.
    """

    address: str | None = None
    n_workers: int = 2
    threads_per_worker: int = 1
    processes: bool = True
    adapt_min: int | None = None
    adapt_max: int | None = None
    log_level: str = "warning"


def make_task_runner(config: DaskConfig | None = None) -> DaskTaskRunner:
    """A ``DaskTaskRunner`` for ``config`` (default: a local cluster of two processes)."""
    config = config or DaskConfig()
    if config.address:
        return DaskTaskRunner(address=config.address)
    kwargs: dict[str, Any] = {
        "n_workers": config.n_workers,
        "threads_per_worker": config.threads_per_worker,
        "processes": config.processes,
        # a free port: two flow runs on one machine must not both claim 8787 (the dashboard
        # needs bokeh; without it the link explains how to install it)
        "dashboard_address": ":0",
        "log_level": config.log_level,
    }
    adapt = None
    if config.adapt_min is not None or config.adapt_max is not None:
        adapt = {"minimum": config.adapt_min or 0, "maximum": config.adapt_max or config.n_workers}
    return DaskTaskRunner(
        cluster_class="flows.runners.local_cluster", cluster_kwargs=kwargs, adapt_kwargs=adapt
    )


def local_cluster(*, log_level: str = "warning", **kwargs: Any) -> LocalCluster:
    """``distributed.LocalCluster(**kwargs)`` with distributed's logs at ``log_level``.

    The level applies to this process (scheduler, nannies) and, through the nannies'
    pre-spawn environment, to the worker processes, which read it when they import
    distributed.
    """
    logging.getLogger("distributed").setLevel(log_level.upper())
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    environ["DASK_LOGGING__DISTRIBUTED"] = log_level
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        return LocalCluster(**kwargs)


def config_from_env() -> DaskConfig:
    """The cluster configuration from ``ICECHUNK_PREFECT_DASK_*`` environment variables.

    ``..._ADDRESS`` (an existing scheduler), ``..._N_WORKERS``, ``..._THREADS_PER_WORKER``,
    ``..._ADAPT_MIN`` / ``..._ADAPT_MAX`` (adaptive scaling), ``..._LOG_LEVEL`` (distributed's
    logs). Unset: a local cluster of two worker processes, logging warnings and errors.
    """

    def env_int(name: str) -> int | None:
        value = os.environ.get(f"ICECHUNK_PREFECT_DASK_{name}")
        return int(value) if value else None

    return DaskConfig(
        address=os.environ.get("ICECHUNK_PREFECT_DASK_ADDRESS") or None,
        n_workers=env_int("N_WORKERS") or 2,
        threads_per_worker=env_int("THREADS_PER_WORKER") or 1,
        adapt_min=env_int("ADAPT_MIN"),
        adapt_max=env_int("ADAPT_MAX"),
        log_level=os.environ.get("ICECHUNK_PREFECT_DASK_LOG_LEVEL") or "warning",
    )


def default_task_runner() -> DaskTaskRunner:
    """The flows' default runner: :func:`make_task_runner` of :func:`config_from_env`.

    Use ``flow.with_options(task_runner=make_task_runner(DaskConfig(...)))`` to choose another
    cluster from Python.
    """
    return make_task_runner(config_from_env())


@contextmanager
def workers_report_to_this_api() -> Iterator[None]:
    """Within a flow run: task runs submitted here report to this process's Prefect API.

    Without ``PREFECT_API_URL``, Prefect serves a flow run from a temporary local API server,
    but the settings it ships to Dask workers carry no URL, so every worker process would
    start a temporary server of its own on the same SQLite database (slow starts, "database
    is locked" errors, task runs scattered over several servers). This points them at the
    flow's server. With ``PREFECT_API_URL`` set it does nothing.
    """
    settings = get_current_settings()
    if settings.api.url or not settings.server.ephemeral.enabled:
        yield
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the flow run's temporary server (a singleton)
    server.start()  # already running: returns at once
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        yield
