"""Real processes for the pipeline tests: a ``prefect server start`` on a free loopback port
with its own ``PREFECT_HOME``, and anything else a test starts (workers, Dask schedulers and
workers), each in its own session and stopped at the end. Every wait is bounded."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.pipeline.conftest import ROOT, subprocess_env

PREFECT = str(Path(sys.executable).with_name("prefect"))
PYTHON = sys.executable
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
    """A ``prefect server start`` subprocess (API and UI) on ``port``."""

    def __init__(self, home: Path, port: int, processes: Processes) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.home = home
        self.api = Api(f"{self.url}/api")
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
        self.process = processes.start("server", command, self.env)

    def wait_until_healthy(self, timeout: float) -> None:
        try:
            wait_for(
                "the server", lambda: self.process.poll() is not None or self.api.healthy(), timeout
            )
        except TimeoutError:
            pytest.fail("the server did not start:\n" + self.processes.log("server")[-5000:])
        assert self.process.poll() is None, self.processes.log("server")[-5000:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
