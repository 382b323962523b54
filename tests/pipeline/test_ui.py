"""What a user sees: the repository block registered with the CLI, a run's artifacts in the
real Prefect UI (headless Chromium), and credentials nowhere in a run's logs, artifacts or
events.

One flow run, in a subprocess against ``prefect server start`` (with its UI), appends to a
repository described by a saved ``IcechunkRepositoryBlock`` that carries credentials.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.pipeline.browser import Chromium
from tests.pipeline.conftest import ROOT
from tests.pipeline.helpers import open_repo
from tests.pipeline.servers import Server, run_cli, wait_for

pytestmark = pytest.mark.slow

KEY_ID = "AKIAPIPELINETESTKEY7"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"
SCREENSHOTS = os.environ.get("ICECHUNK_PREFECT_SCREENSHOTS")  # a directory: keep them there

SCRIPT = """
import sys
from flows import append
from tasks.blocks import IcechunkRepositoryBlock

block = IcechunkRepositoryBlock.load("ui-test-repository")
state = append(
    {"kind": "synthetic", "ntime": 16, "nlat": 20, "nlon": 30},
    block,
    chunks={"time": 2},
    chunks_per_region=2,
    return_state=True,
)
print("FLOW_RUN", state.state_details.flow_run_id, state.type.value)
"""


@dataclass
class Run:
    server: Server
    flow_run_id: str
    repo: Path
    output: str


@pytest.fixture(scope="module")
def run(prefect_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Register the block type with the CLI, save a block with credentials, run the flow."""
    server = prefect_server
    out = run_cli(["block", "register", "-m", "tasks.blocks"], server.env)
    assert "Icechunk Repository" in out
    listed = run_cli(["block", "type", "ls"], server.env)
    assert "icechunk-repository" in listed
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from tasks.blocks import IcechunkRepositoryBlock

    repo = tmp_path_factory.mktemp("ui") / "weather.icechunk"
    with temporary_settings(updates={PREFECT_API_URL: server.api.url}):
        IcechunkRepositoryBlock(
            location=str(repo), access_key_id=KEY_ID, secret_access_key=SECRET
        ).save("ui-test-repository", overwrite=True)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("FLOW_RUN"))
    _, flow_run_id, state = line.split()
    assert state == "COMPLETED", output[-5000:]
    return Run(server, flow_run_id, repo, output)


def artifacts_of(run: Run) -> list[dict[str, Any]]:
    body = {"artifacts": {"flow_run_id": {"any_": [run.flow_run_id]}}, "limit": 50}
    return list(run.server.api.call("POST", "/artifacts/filter", body))


def related_events(run: Run, extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every event related to the run's flow run (following the API's pages of 50)."""
    api = run.server.api
    body = {
        "filter": {
            "related": {
                "resources_in_roles": [[f"prefect.flow-run.{run.flow_run_id}", "flow-run"]]
            },
            "occurred": {"since": "2000-01-01T00:00:00Z"},
            **(extra or {}),
        },
        "limit": 50,
    }
    page = api.call("POST", "/events/filter", body)
    events = list(page["events"])
    while page.get("next_page"):
        page = api.call("GET", page["next_page"].removeprefix(api.url))
        events += page["events"]
    return events


def test_block_type_is_registered_and_the_block_saved(run: Run) -> None:
    block_type = run.server.api.call("GET", "/block_types/slug/icechunk-repository")
    assert block_type["name"] == "Icechunk Repository"
    document = run.server.api.call(
        "GET", "/block_types/slug/icechunk-repository/block_documents/name/ui-test-repository"
    )
    assert document["data"]["location"] == str(run.repo)
    # the API returns secret fields obfuscated
    assert KEY_ID not in json.dumps(document) and SECRET not in json.dumps(document)


def test_run_artifacts(run: Run) -> None:
    commit = next(open_repo(run.repo).ancestry(branch="main"))
    by_key = {a["key"]: a for a in artifacts_of(run)}
    assert set(by_key) >= {
        "icechunk-commit",
        "icechunk-regions",
        "icechunk-inspect",
        "icechunk-progress",
    }
    summary = by_key["icechunk-commit"]["data"]
    assert commit.id in summary and "chunks written" in summary
    table = json.loads(by_key["icechunk-regions"]["data"])
    assert [row["region"] for row in table] == ["[0:4)", "[4:8)", "[8:12)", "[12:16)"]
    assert by_key["icechunk-progress"]["data"] == 100.0
    assert f"--snapshot {commit.id}" in by_key["icechunk-inspect"]["data"]


def test_credentials_never_appear_in_logs_artifacts_or_events(run: Run) -> None:
    api = run.server.api
    logs = api.call(
        "POST", "/logs/filter", {"logs": {"flow_run_id": {"any_": [run.flow_run_id]}}, "limit": 200}
    )
    assert len(logs) > 10
    task_runs = api.call(
        "POST",
        "/task_runs/filter",
        {"flow_runs": {"id": {"any_": [run.flow_run_id]}}, "limit": 200},
    )
    # The server persists events in batches, after the flow run has finished: wait for the
    # commit event, then read every event of the run (all pages) for the credential check.
    wait_for(
        "the icechunk.commit event of the flow run",
        lambda: related_events(run, {"event": {"name": ["icechunk.commit"]}}),
        timeout=60,
    )
    events = related_events(run)
    assert any(e["event"] == "icechunk.commit" for e in events)
    flow_run = api.call("GET", f"/flow_runs/{run.flow_run_id}")
    commit_metadata = [c.metadata for c in open_repo(run.repo).ancestry(branch="main")]
    haystacks = {
        "logs": json.dumps([log["message"] for log in logs]),
        "artifacts": json.dumps(artifacts_of(run)),
        "events": json.dumps(events),
        "flow run (parameters)": json.dumps(flow_run),
        "task runs": json.dumps(task_runs),
        "commit metadata": json.dumps(commit_metadata),
        "console output": run.output,
    }
    for where, text in haystacks.items():
        for secret in (KEY_ID, SECRET):
            assert secret not in text, f"a credential appears in the {where}"


def test_the_ui_renders_the_commit_summary(run: Run, tmp_path: Path) -> None:
    commit = next(open_repo(run.repo).ancestry(branch="main"))
    shots = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    with Chromium(tmp_path / "chromium") as browser:
        browser.goto(f"{run.server.url}/runs/flow-run/{run.flow_run_id}")
        browser.wait_for_text("Completed", "Artifacts", timeout=90)
        browser.click_text("Artifacts")
        browser.wait_for_text("icechunk-commit", "icechunk-regions", "icechunk-inspect", timeout=60)
        browser.screenshot(shots / "prefect-ui-flow-run-artifacts.png")
        browser.click_text("icechunk-commit")
        browser.wait_for_text("chunks written", "bytes written", commit.id, timeout=60)
        # rendered markdown: the summary is an HTML table, not pipe-separated source text
        rows = browser.evaluate(
            "[...document.querySelectorAll('table tr')].map(r => r.innerText.replace(/\\s+/g, ' ').trim())"
        )
        assert f"snapshot {commit.id}" in rows, rows
        assert "branch main" in rows, rows
        assert "| snapshot |" not in browser.text()
        browser.screenshot(shots / "prefect-ui-commit-summary.png")
    assert (shots / "prefect-ui-commit-summary.png").stat().st_size > 10_000
