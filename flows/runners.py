"""Building the Dask task runner from simple, deployment-friendly parameters."""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dask
from distributed import LocalCluster, Worker, WorkerPlugin
from distributed.comm.core import CommClosedError
from distributed.core import Status
from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings
from prefect_dask import DaskTaskRunner

__all__ = [
    "DaskConfig",
    "QuietWorkerShutdown",
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


_CLOSING = frozenset({Status.closing, Status.closing_gracefully, Status.closed})
_HEARTBEAT_FAILED = "Failed to communicate with scheduler during heartbeat."


class _ClosingHeartbeatFilter(logging.Filter):
    """Drops the heartbeat-failure record of a worker that is closing (see
    :class:`QuietWorkerShutdown`); every other record passes."""

    def __init__(self) -> None:
        super().__init__()
        self.workers: weakref.WeakSet[Worker] = weakref.WeakSet()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != _HEARTBEAT_FAILED or record.exc_info is None:
            return True
        if not isinstance(record.exc_info[1], CommClosedError):
            return True
        workers = list(self.workers)
        # several workers may share a process (a thread-based cluster): drop the record only
        # when none of them is still running, so a running worker's failure is never hidden
        return not workers or not all(w.status in _CLOSING for w in workers)


_closing_heartbeat_filter = _ClosingHeartbeatFilter()


class QuietWorkerShutdown(WorkerPlugin):
    """Keeps a worker's deliberate shutdown from logging a heartbeat failure as an error.

    ``Worker.close`` stops the heartbeat timer and then closes the worker's connection pool,
    aborting a heartbeat that is still waiting for the scheduler's reply; the heartbeat then
    logs ``CommClosedError`` at ERROR with a traceback (distributed's race, dask/distributed
    #7105), at the end of a run that succeeded. This plugin drops exactly that record, and
    only while the worker is closing: a heartbeat that fails on a running worker (a
    scheduler lost, a network fault) is still logged.
    """

    name = "icechunk-prefect-quiet-shutdown"

    def setup(self, worker: Worker) -> None:
        _closing_heartbeat_filter.workers.add(worker)
        target = logging.getLogger("distributed.worker")
        if _closing_heartbeat_filter not in target.filters:
            target.addFilter(_closing_heartbeat_filter)


def local_cluster(*, log_level: str = "warning", **kwargs: Any) -> LocalCluster:
    """``distributed.LocalCluster(**kwargs)`` with distributed's logs at ``log_level``.

    The level applies to this process (scheduler, nannies) and, through the nannies'
    pre-spawn environment, to the worker processes, which read it when they import
    distributed. The workers get :class:`QuietWorkerShutdown` (added to any ``plugins``
    given), so closing the cluster after a successful run logs no traceback.
    """
    logging.getLogger("distributed").setLevel(log_level.upper())
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    environ["DASK_LOGGING__DISTRIBUTED"] = log_level
    kwargs["plugins"] = (*kwargs.get("plugins", ()), QuietWorkerShutdown())
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
