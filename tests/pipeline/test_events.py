"""Commit events drive a downstream deployment, on a real Prefect server and process worker.

The deployments come from ``deployments/prefect.yaml`` (``prefect deploy``): the append
deployment and ``quicklook-on-commit``, whose ``DeploymentEventTrigger`` matches the
repository's ``icechunk.commit`` events. A run of the append deployment commits; its event
reaches the server; the trigger creates a run of the quick-look deployment with the event's
snapshot id; the worker runs it; it reads that snapshot.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tasks.events import commit_event_id
from tests.pipeline.conftest import ROOT
from tests.pipeline.helpers import open_repo
from tests.pipeline.servers import POOL, PREFECT, Processes, Server, run_cli, wait_for

pytestmark = pytest.mark.slow


def runs_of(server: Server, deployment_id: str, repo: Path) -> list[dict[str, Any]]:
    """This test's runs of a deployment (other tests' runs share the server)."""
    body = {"flow_runs": {"deployment_id": {"any_": [deployment_id]}}, "limit": 50}
    runs = server.api.call("POST", "/flow_runs/filter", body)
    return [r for r in runs if r["parameters"].get("repository") == str(repo)]


def completed(
    server: Server, processes: Processes, deployment_id: str, repo: Path
) -> dict[str, Any] | None:
    for run in runs_of(server, deployment_id, repo):
        if run["state"]["type"] in ("FAILED", "CRASHED"):
            pytest.fail(f"run ended {run['state']}:\n{processes.log('worker')[-5000:]}")
        if run["state"]["type"] == "COMPLETED":
            return run
    return None


def test_commit_event_triggers_the_downstream_deployment(
    tmp_path: Path, prefect_server: Server, processes: Processes, record_property: Any
) -> None:
    server = prefect_server
    repo = tmp_path / "events.icechunk"
    env = {
        **server.env,
        "ICECHUNK_PREFECT_ROOT": str(ROOT),
        "ICECHUNK_PREFECT_REPOSITORY": str(repo),
    }
    deploy = ["--no-prompt", "deploy", "--prefect-file", "deployments/prefect.yaml"]
    run_cli([*deploy, "--name", "append-every-6h", "--name", "quicklook-on-commit"], env)
    append = server.api.call("GET", "/deployments/name/icechunk-append/append-every-6h")
    quicklook = server.api.call("GET", "/deployments/name/icechunk-quicklook/quicklook-on-commit")
    automations = server.api.call("POST", "/automations/filter", {})
    (trigger,) = [
        a["trigger"]
        for a in automations
        if any(act.get("deployment_id") == quicklook["id"] for act in a["actions"])
    ]
    assert trigger["expect"] == ["icechunk.commit"]
    assert trigger["match"] == {"prefect.resource.id": f"icechunk.repository.{repo}"}

    worker = processes.start("worker", [PREFECT, "worker", "start", "--pool", POOL], env)
    created = server.api.call("POST", f"/deployments/{append['id']}/create_flow_run", {})
    assert created["parameters"]["repository"] == str(repo)

    def done(deployment: dict[str, Any]) -> Any:
        def check() -> Any:
            assert worker.poll() is None, processes.log("worker")[-5000:]
            return completed(server, processes, deployment["id"], repo)

        return check

    try:
        upstream = wait_for("the append run", done(append), timeout=240, every=1)
        downstream = wait_for("the triggered quick-look run", done(quicklook), timeout=180, every=1)
    except TimeoutError:
        pytest.fail(
            "timed out\n--- worker ---\n"
            + processes.log("worker")[-6000:]
            + "\n--- server ---\n"
            + server.processes.log("server")[-3000:]
        )
    assert upstream["id"] == created["id"]
    commit = next(open_repo(repo).ancestry(branch="main"))
    assert commit.metadata["flow_run_id"] == upstream["id"]
    # the downstream run was created by the trigger, from the event, for this snapshot
    params = downstream["parameters"]
    assert params["snapshot_id"] == commit.id
    assert params["repository"] == str(repo)
    assert (params["dim"], str(params["start"]), str(params["stop"])) == ("time", "0", "48")
    assert downstream["state"]["type"] == "COMPLETED"
    artifacts = server.api.call(
        "POST", "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [downstream["id"]]}}}
    )
    (quick,) = [a for a in artifacts if a["key"] == "icechunk-quicklook"]
    assert commit.id in quick["data"] and "t2m" in quick["data"]
    # exactly one event for the commit, with the id derived from repository and snapshot
    events = server.api.call(
        "POST",
        "/events/filter",
        {
            "filter": {
                "event": {"name": ["icechunk.commit"]},
                "resource": {"id": [f"icechunk.repository.{repo}"]},
                "occurred": {"since": "2000-01-01T00:00:00Z"},
            },
            "limit": 50,
        },
    )["events"]
    assert [e["id"] for e in events] == [str(commit_event_id(str(repo), commit.id))]
    event = events[0]
    assert event["payload"]["snapshot_id"] == commit.id
    assert event["payload"]["chunks_written"] > 0 and event["payload"]["bytes_written"] > 0
    # and only one downstream run for it
    assert len(runs_of(server, quicklook["id"], repo)) == 1

    # latency: the commit (snapshot written) to the downstream run being created and started
    committed = commit.written_at
    created = datetime.fromisoformat(downstream["created"])
    started = datetime.fromisoformat(downstream["start_time"])
    occurred = datetime.fromisoformat(event["occurred"])
    figures = {
        "commit_to_event_s": (occurred - committed).total_seconds(),
        "commit_to_downstream_created_s": (created - committed).total_seconds(),
        "commit_to_downstream_start_s": (started - committed).total_seconds(),
    }
    for name, value in figures.items():
        record_property(name, round(value, 2))
    print("event-trigger latency:", {k: round(v, 2) for k, v in figures.items()})
    assert 0 <= figures["commit_to_downstream_start_s"] < 120
