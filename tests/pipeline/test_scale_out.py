"""Scale-out: a deployment pointed at a Dask cluster started separately.

``dask scheduler`` and two ``dask worker`` processes are started as separate commands on
loopback (as they would be on other machines); the ingest deployment gets the scheduler's
address as a job variable (``ICECHUNK_PREFECT_DASK_ADDRESS`` in the flow-run process's
environment); a process worker runs it. The regions run on those two workers (their own logs
show the region tasks), and one commit lands.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import xarray as xr

from tasks.sources import SyntheticWeatherSource
from tests.pipeline.conftest import ROOT
from tests.pipeline.helpers import open_repo, read_dataset
from tests.pipeline.servers import POOL, PREFECT, Processes, Server, free_port, wait_for

pytestmark = pytest.mark.slow

DASK = str(Path(PREFECT).with_name("dask"))
REGION_LINE = re.compile(r"Task run 'write-region-(\[\d+:\d+\))' - wrote region")


def test_ingest_deployment_runs_regions_on_separately_started_dask_workers(
    tmp_path: Path, prefect_server: Server, processes: Processes
) -> None:
    from distributed import Client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.deploy import build_deployments

    server = prefect_server
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    # the Dask processes need the project on their path and the Prefect API for task logs
    dask_env = {**server.env, "PYTHONPATH": str(ROOT), "DASK_LOGGING__DISTRIBUTED": "info"}
    processes.start(
        "scheduler",
        [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        dask_env,
    )
    for name in ("worker-a", "worker-b"):
        processes.start(
            name,
            [
                DASK,
                "worker",
                address,
                "--name",
                name,
                "--nthreads",
                "1",
                "--nworkers",
                "1",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
            ],
            dask_env,
        )
    with Client(address, timeout=60) as client:
        client.wait_for_workers(2, timeout=120)
        assert sorted(w["name"] for w in client.scheduler_info()["workers"].values()) == [
            "worker-a",
            "worker-b",
        ]

    repo = tmp_path / "scale-out.icechunk"
    source = SyntheticWeatherSource(ntime=16, nlat=30, nlon=60, seed=5)
    spec = {"kind": "synthetic", "ntime": 16, "nlat": 30, "nlon": 60, "seed": 5}
    ingest, _ = build_deployments(
        str(repo), spec, job_variables={"env": {"ICECHUNK_PREFECT_DASK_ADDRESS": address}}
    )
    with temporary_settings(updates={PREFECT_API_URL: server.api.url}):
        deployment_id = ingest.apply()
    deployment = server.api.call("GET", f"/deployments/{deployment_id}")
    assert deployment["job_variables"]["env"]["ICECHUNK_PREFECT_DASK_ADDRESS"] == address
    flow_run = server.api.call("POST", f"/deployments/{deployment_id}/create_flow_run", {})
    worker = processes.start("worker", [PREFECT, "worker", "start", "--pool", POOL], server.env)

    def finished() -> dict[str, Any] | None:
        assert worker.poll() is None, processes.log("worker")[-5000:]
        run = server.api.call("GET", f"/flow_runs/{flow_run['id']}")
        if run["state"]["type"] in ("FAILED", "CRASHED"):
            pytest.fail(f"the run ended {run['state']}:\n{processes.log('worker')[-6000:]}")
        return dict(run) if run["state"]["type"] == "COMPLETED" else None

    try:
        wait_for("the ingest run", finished, timeout=240, every=1)
    except TimeoutError:
        pytest.fail("the run did not complete:\n" + processes.log("worker")[-6000:])

    # one data commit, identical to the source
    commits = [
        c for c in open_repo(repo).ancestry(branch="main") if "idempotency_key" in c.metadata
    ]
    assert len(commits) == 1
    assert commits[0].metadata["flow_run_id"] == flow_run["id"]
    xr.testing.assert_identical(read_dataset(repo), source.load(0, 16))

    # the regions ran on the two separately started workers: their own logs say so
    expected = {str(r) for r in ("[0:4)", "[4:8)", "[8:12)", "[12:16)")}
    ran = {name: REGION_LINE.findall(processes.log(name)) for name in ("worker-a", "worker-b")}
    assert sorted(ran["worker-a"] + ran["worker-b"]) == sorted(expected), ran
    assert ran["worker-a"] and ran["worker-b"], f"one worker did all the regions: {ran}"
    # and nothing ran them in the flow-run process (no local cluster was started)
    assert not REGION_LINE.findall(processes.log("worker")), processes.log("worker")[-3000:]
