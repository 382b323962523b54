"""The shipped deployments, end to end, on a real Prefect server.

``prefect server start`` (SQLite under a temporary ``PREFECT_HOME``) and a process work pool;
the deployments registered with ``deployments.deploy`` (Python) and with ``prefect deploy``
of ``deployments/prefect.yaml``; a ``prefect worker``. The server's *scheduler* creates a run
of the scheduled append deployment (an hourly schedule anchored a few seconds ahead is added
to its 6-hourly cron), the worker runs it, and it commits the source's data to the
repository. Every wait is bounded; every process started here is stopped at the end.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import xarray as xr

from tasks.sources import SyntheticWeatherSource
from tests.pipeline.conftest import ROOT, subprocess_env
from tests.pipeline.helpers import open_repo, read_dataset

pytestmark = pytest.mark.slow

PREFECT = str(Path(sys.executable).with_name("prefect"))
POOL = "icechunk-process"


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")


class Api:
    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or "null")

    def healthy(self) -> bool:
        try:
            return self.call("GET", "/health") is True
        except OSError:
            return False


class Processes:
    """Processes started by a test, each in its own session, stopped at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 -- closed with the process
        proc = subprocess.Popen(
            args, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.started.append((name, proc))
        return proc

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_all(self) -> None:
        for _, proc in reversed(self.started):
            if proc.poll() is None:
                # the whole session: a worker's flow-run processes and their Dask workers too
                os.killpg(proc.pid, signal.SIGTERM)
        for _, proc in reversed(self.started):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)


class Server:
    """A ``prefect server start`` subprocess with a process work pool, for this module."""

    def __init__(self, home: Path, port: int, processes: Processes) -> None:
        self.api = Api(f"http://127.0.0.1:{port}/api")
        self.processes = processes
        self.env = subprocess_env(
            home,
            PREFECT_API_URL=self.api.url,
            # the scheduler visits deployments every 2 s instead of every 60 s
            PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="2",
            PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS="1",
            # workers poll every 2 s and pick up runs due within 5 s
            PREFECT_WORKER_QUERY_SECONDS="2",
            PREFECT_WORKER_PREFETCH_SECONDS="5",
            # one Dask worker process per flow run is plenty here
            ICECHUNK_PREFECT_DASK_N_WORKERS="1",
        )
        home.mkdir(parents=True, exist_ok=True)
        command = [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)]
        self.process = processes.start("server", [*command, "--no-ui"], self.env)

    def wait_until_healthy(self, timeout: float) -> None:
        try:
            wait_for(
                "the server", lambda: self.process.poll() is not None or self.api.healthy(), timeout
            )
        except TimeoutError:
            pytest.fail("the server did not start:\n" + self.processes.log("server")[-5000:])
        assert self.process.poll() is None, self.processes.log("server")[-5000:]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    logs = tmp_path_factory.mktemp("prefect-server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    procs = Processes(logs)
    try:
        srv = Server(logs / "home", port, procs)
        srv.wait_until_healthy(timeout=120)
        run_cli(["work-pool", "create", POOL, "--type", "process"], srv.env)
        yield srv
    finally:
        procs.stop_all()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()


def run_cli(args: list[str], env: dict[str, str], timeout: float = 120) -> str:
    done = subprocess.run(
        [PREFECT, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_scheduled_append_deployment_runs_on_a_worker_and_commits(
    tmp_path: Path, server: Server, processes: Processes
) -> None:
    from prefect.schedules import Interval
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.deploy import apply_deployments, build_deployments

    api = server.api
    repo_path = tmp_path / "weather.icechunk"
    source = SyntheticWeatherSource(ntime=24, nlat=30, nlon=60)
    spec = {"kind": "synthetic", "ntime": 24, "nlat": 30, "nlon": 60}
    worker = processes.start("worker", [PREFECT, "worker", "start", "--pool", POOL], server.env)

    # besides the 6-hourly cron, an hourly schedule whose first run is due in a few seconds
    anchor = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=15)
    deployments = build_deployments(
        str(repo_path), spec, extra_schedules=[Interval(3600, anchor_date=anchor)]
    )
    with temporary_settings(updates={PREFECT_API_URL: api.url}):
        ids = apply_deployments(deployments)
    deployment = api.call("GET", "/deployments/name/icechunk-append/append-every-6h")
    assert deployment["id"] == str(ids[1])
    assert deployment["global_concurrency_limit"]["limit"] == 1
    assert deployment["pull_steps"][0]["prefect.deployments.steps.set_working_directory"] == {
        "directory": str(ROOT)
    }

    def completed_run() -> dict[str, Any] | None:
        assert worker.poll() is None, processes.log("worker")[-5000:]
        runs = api.call(
            "POST",
            "/flow_runs/filter",
            {"flow_runs": {"deployment_id": {"any_": [deployment["id"]]}}, "limit": 10},
        )
        for run in runs:
            if run["state"]["type"] in ("FAILED", "CRASHED"):
                pytest.fail(f"the scheduled run ended {run['state']}:\n{processes.log('worker')}")
            if run["state"]["type"] == "COMPLETED":
                return dict(run)
        return None

    try:
        run = wait_for("a completed scheduled run", completed_run, timeout=180, every=2)
    except TimeoutError:
        pytest.fail(
            "no scheduled run completed\n--- worker log ---\n"
            + processes.log("worker")[-5000:]
            + "\n--- server log ---\n"
            + server.processes.log("server")[-3000:]
        )
    assert run["auto_scheduled"], "the run was not created by the server's scheduler"
    assert datetime.fromisoformat(run["expected_start_time"]) == anchor

    commits = list(open_repo(repo_path).ancestry(branch="main"))
    assert [c.message.split(" (")[0] for c in commits] == [
        "append 24 time steps",
        "initialize dataset",
        "Repository initialized",
    ]
    assert commits[0].metadata["flow_run_id"] == run["id"]
    xr.testing.assert_identical(read_dataset(repo_path), source.load(0, 24))


def test_prefect_yaml_deploys(tmp_path: Path, server: Server) -> None:
    env = {
        **server.env,
        "ICECHUNK_PREFECT_ROOT": str(ROOT),
        "ICECHUNK_PREFECT_REPOSITORY": str(tmp_path / "yaml.icechunk"),
    }
    out = run_cli(
        ["--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml"], env
    )
    assert "append-every-6h" in out
    append = server.api.call("GET", "/deployments/name/icechunk-append/append-every-6h")
    ingest = server.api.call("GET", "/deployments/name/icechunk-ingest/ingest-on-demand")
    for deployment in (append, ingest):
        assert deployment["parameters"]["repository"] == str(tmp_path / "yaml.icechunk")
        assert deployment["parameters"]["source"]["kind"] == "synthetic"
        assert deployment["work_pool_name"] == POOL
        assert deployment["global_concurrency_limit"]["limit"] == 1
    assert [s["schedule"]["cron"] for s in append["schedules"]] == ["5 */6 * * *"]
    assert ingest["schedules"] == []
