"""Fixtures for the Prefect + Dask pipeline tests.

* ``prefect_harness`` (session): Prefect's test harness (a temporary API server on SQLite)
  with ``PREFECT_HOME`` in a temporary directory, analytics off and generous startup
  timeouts for a loaded 2-core CI machine. Flow tests request it; unit tests do not, so they
  run without any Prefect server.
* ``dask_cluster`` (session): one ``LocalCluster`` of two worker *processes*, shared by every
  flow test through ``task_runner`` (``DaskTaskRunner(address=...)``), so the pickling
  contract is exercised without paying a cluster start per test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PIPELINE_TESTS = Path(__file__).resolve().parent
ROOT = PIPELINE_TESTS.parents[1]
DATA = Path(__file__).resolve().parents[3] / "shared" / "data"

# Environment for this process and every process it starts (Dask workers, Prefect servers,
# workers and CLI calls): no telemetry, no ~/.prefect, patient start-up timeouts.
PREFECT_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_API_REQUEST_TIMEOUT": "120",
    "PREFECT_LOGGING_LEVEL": "INFO",
    # the scheduler's/nannies' INFO chatter drowns the test output
    "DASK_LOGGING__DISTRIBUTED": "warning",
}

# Warnings emitted by code we do not own, applied to the tests in this directory only (a
# ``pytestmark`` in a conftest is not applied to test modules, hence the hook below).
PIPELINE_WARNING_FILTERS = [
    # ERA-Interim's packed int16 variables carry _FillValue=NaN, which CF does not allow for
    # integers; xarray drops it with this warning when a test opens the file as the reference
    # (NetCDFSource itself drops the attribute without a warning). A defect of the data file.
    "ignore:variable '.*' has non-conforming '_FillValue':xarray.SerializationWarning",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if PIPELINE_TESTS in Path(str(item.path)).resolve().parents:
            for spec in PIPELINE_WARNING_FILTERS:
                item.add_marker(pytest.mark.filterwarnings(spec))


@pytest.fixture(scope="session")
def prefect_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """``PREFECT_ENV`` plus a temporary ``PREFECT_HOME``, exported for the whole session."""
    env = {**PREFECT_ENV, "PREFECT_HOME": str(tmp_path_factory.mktemp("prefect-home"))}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        yield env


@pytest.fixture(scope="session")
def prefect_harness(prefect_env: dict[str, str]) -> Iterator[None]:
    """Prefect's test harness: flows run against a temporary local API server."""
    from prefect.settings import (
        PREFECT_API_REQUEST_TIMEOUT,
        PREFECT_HOME,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )
    from prefect.testing.utilities import prefect_test_harness

    # Prefect read the environment when it was imported; apply the same values to this
    # process's settings (the environment above reaches the processes started later).
    updates: dict[Any, Any] = {
        PREFECT_HOME: prefect_env["PREFECT_HOME"],
        PREFECT_SERVER_ANALYTICS_ENABLED: False,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 120,
        PREFECT_API_REQUEST_TIMEOUT: 120,
    }
    with temporary_settings(updates=updates), prefect_test_harness(server_startup_timeout=120):
        yield
        _drain_prefect_workers()


def _drain_prefect_workers() -> None:
    """Deliver queued logs and events while the harness server is still up."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    EventsWorker.drain_all(timeout=10)


@pytest.fixture(scope="session")
def dask_cluster(prefect_harness: None) -> Iterator[Any]:
    """A LocalCluster of two worker processes, shared by the session's flow tests."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        # the scheduler's HTTP server on a free port, not 8787: another test session on the
        # machine may hold that one (distributed would warn, and warnings are errors here)
        scheduler_kwargs={"dashboard_address": ":0"},
    ) as cluster:
        yield cluster


@pytest.fixture
def task_runner(dask_cluster: Any) -> Any:
    """A ``DaskTaskRunner`` on the shared cluster, built the way users build one."""
    from flows.runners import DaskConfig, make_task_runner

    return make_task_runner(DaskConfig(address=dask_cluster.scheduler_address))


def subprocess_env(prefect_home: Path, **extra: str) -> dict[str, str]:
    """The environment for a Prefect process started by a test: ``PREFECT_ENV``, its own
    ``PREFECT_HOME``, and none of this process's Prefect API settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_ENV)
    env["PREFECT_HOME"] = str(prefect_home)
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``prefect server start`` (API and UI) on a free loopback port, its own ``PREFECT_HOME``
    and SQLite database, with a process work pool; shared by the tests that need a real
    server (deployments, workers, triggers, the UI). Stopped at the end of the session."""
    from tests.pipeline.servers import POOL, Processes, Server, free_port, run_cli

    logs = tmp_path_factory.mktemp("prefect-server")
    procs = Processes(logs)
    try:
        server = Server(logs / "home", free_port(), procs)
        server.wait_until_healthy(timeout=180)
        run_cli(["work-pool", "create", POOL, "--type", "process"], server.env)
        yield server
    finally:
        procs.stop_all()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Any]:
    """Processes a test starts (workers, Dask schedulers and workers), stopped after it."""
    from tests.pipeline.servers import Processes

    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()
