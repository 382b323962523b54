"""The shipped deployments, end to end, on a real Prefect server.

``prefect server start`` (SQLite under a temporary ``PREFECT_HOME``) and a process work pool;
the deployments registered with ``deployments.deploy`` (Python) and with ``prefect deploy``
of ``deployments/prefect.yaml``; a ``prefect worker``. The server's *scheduler* creates a run
of the scheduled append deployment (an hourly schedule anchored a few seconds ahead is added
to its 6-hourly cron), the worker runs it, and it commits the source's data to the
repository. Every wait is bounded; every process started here is stopped at the end.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import xarray as xr

from tasks.sources import SyntheticWeatherSource
from tests.pipeline.conftest import ROOT
from tests.pipeline.helpers import open_repo, read_dataset
from tests.pipeline.servers import POOL, PREFECT, Processes, Server, run_cli, wait_for

pytestmark = pytest.mark.slow


def test_scheduled_append_deployment_runs_on_a_worker_and_commits(
    tmp_path: Path, prefect_server: Server, processes: Processes
) -> None:
    from prefect.schedules import Interval
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.deploy import apply_deployments, build_deployments

    server = prefect_server
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


def test_prefect_yaml_deploys(tmp_path: Path, prefect_server: Server) -> None:
    server = prefect_server
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
