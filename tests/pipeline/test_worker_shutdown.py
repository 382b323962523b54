"""A local cluster's workers close without logging their in-flight heartbeat as an error.

``Worker.close`` closes the worker's connection pool while a heartbeat may still be waiting
for the scheduler's reply; distributed then logs ``CommClosedError`` at ERROR with a
traceback (dask/distributed#7105). The race is rare with real timing, so these tests hold a
heartbeat in flight on purpose: the scheduler's ``heartbeat_worker`` handler is replaced by
one that waits until the test releases it (a scheduler slow to reply, the one fault injected
here). The cluster, the worker and their comms are real.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from distributed import LocalCluster, Worker

from flows.runners import QuietWorkerShutdown, local_cluster

HEARTBEAT_FAILED = "Failed to communicate with scheduler during heartbeat."


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def heartbeat_failures(self) -> list[logging.LogRecord]:
        return [r for r in self.records if r.getMessage() == HEARTBEAT_FAILED]


@contextmanager
def worker_records() -> Iterator[_Records]:
    """What ``distributed.worker`` logs, after its filters (a handler on that logger)."""
    target = logging.getLogger("distributed.worker")
    handler = _Records()
    target.addHandler(handler)
    try:
        yield handler
    finally:
        target.removeHandler(handler)


def heartbeat_held_in_flight(cluster: LocalCluster, then: Callable[[Worker], Any]) -> None:
    """Start a heartbeat the scheduler does not answer, run ``then(worker)`` while it waits,
    then let the scheduler answer again."""
    scheduler = cluster.scheduler
    original = scheduler.handlers["heartbeat_worker"]

    async def scenario() -> None:
        entered, release = asyncio.Event(), asyncio.Event()

        async def slow_heartbeat(*args: Any, **kwargs: Any) -> Any:
            entered.set()
            await release.wait()
            return original(*args, **kwargs)

        (worker,) = cluster.workers.values()
        scheduler.handlers["heartbeat_worker"] = slow_heartbeat
        try:
            beat = asyncio.ensure_future(worker.heartbeat())
            await entered.wait()
            await then(worker)
            await beat
        finally:
            release.set()
            scheduler.handlers["heartbeat_worker"] = original

    cluster.sync(scenario)


def in_process_cluster(quiet: bool) -> LocalCluster:
    kwargs: dict[str, Any] = {
        "n_workers": 1,
        "threads_per_worker": 1,
        "processes": False,
        "dashboard_address": ":0",
    }
    return local_cluster(**kwargs) if quiet else LocalCluster(**kwargs)


async def _close(worker: Worker) -> None:
    await worker.close(reason="test: cluster shutting down")


async def _lose_scheduler_connection(worker: Worker) -> None:
    worker.rpc.remove(worker.scheduler.address)


@pytest.mark.parametrize("quiet", [False, True], ids=["plain-LocalCluster", "local_cluster"])
def test_closing_worker_logs_no_heartbeat_traceback(quiet: bool) -> None:
    with in_process_cluster(quiet) as cluster, worker_records() as records:
        heartbeat_held_in_flight(cluster, _close)
    if quiet:
        assert records.heartbeat_failures() == []
        assert not [r for r in records.records if r.levelno >= logging.ERROR]
    else:
        # distributed's own behaviour, which the plugin exists for: if this stops failing,
        # distributed fixed the race and the plugin can go
        (failure,) = records.heartbeat_failures()
        assert failure.levelno == logging.ERROR and failure.exc_info is not None


def test_running_worker_still_logs_a_failed_heartbeat() -> None:
    """The filter is scoped to a closing worker: a heartbeat lost while the worker runs (the
    scheduler gone, a network fault) is still an error in the log."""
    with in_process_cluster(quiet=True) as cluster, worker_records() as records:
        heartbeat_held_in_flight(cluster, _lose_scheduler_connection)
        (failure,) = records.heartbeat_failures()
        assert failure.levelno == logging.ERROR
        (worker,) = cluster.workers.values()
        assert worker.status.name == "running"


def test_local_cluster_adds_the_plugin_to_the_callers_plugins() -> None:
    from distributed.diagnostics.plugin import WorkerPlugin

    class Marker(WorkerPlugin):
        name = "marker"

    kwargs: dict[str, Any] = {"n_workers": 1, "processes": False, "dashboard_address": ":0"}
    with local_cluster(plugins=(Marker(),), **kwargs) as cluster:
        (worker,) = cluster.workers.values()
        assert set(worker.plugins) >= {"marker", QuietWorkerShutdown.name}
