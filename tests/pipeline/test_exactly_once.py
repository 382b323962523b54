"""Exactly-once data commits: a flow process killed at its commit and re-run, a lost response
on the branch update, Prefect retries of the flow. In every case: one data commit, and the
data read back identical to the source.

The kills are real (SIGKILL of the flow-run process, from inside the storage's write path, at
exact points of the commit) against a real ``prefect server start``; see
``tests/pipeline/exactly_once.py`` for the driver that forks the flow processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import xarray as xr
from prefect.task_runners import ThreadPoolTaskRunner

from flows.ingest import append
from tasks import core
from tasks.commits import IDEMPOTENCY_KEY
from tasks.events import commit_event_id
from tasks.sources import source_from_spec
from tests.pipeline import exactly_once
from tests.pipeline.conftest import ROOT, subprocess_env
from tests.pipeline.faults import CommitFaultBlock
from tests.pipeline.helpers import open_repo, read_dataset, tip
from tests.pipeline.servers import Server

KILLED_RUNS = 20


def data_commits(path: Path) -> list[Any]:
    """The commits on main that carry data (an idempotency key), newest first."""
    return [c for c in open_repo(path).ancestry(branch="main") if IDEMPOTENCY_KEY in c.metadata]


def expected() -> xr.Dataset:
    source = source_from_spec(dict(exactly_once.SOURCE))
    return source.load(0, len(source.coordinate()))


def commit_events(server: Server, snapshot: str) -> list[dict[str, Any]]:
    body = {
        "filter": {
            "event": {"name": ["icechunk.commit"]},
            "related": {"resources_in_roles": [[f"icechunk.snapshot.{snapshot}", "snapshot"]]},
            "occurred": {"since": "2000-01-01T00:00:00Z"},
        },
        "limit": 50,
    }
    return list(server.api.call("POST", "/events/filter", body)["events"])


@pytest.mark.slow
def test_killed_at_the_commit_and_rerun_commits_exactly_once(
    tmp_path: Path, prefect_server: Server
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.pipeline.exactly_once",
            "--api",
            prefect_server.api.url,
            "--workdir",
            str(tmp_path),
            "--runs",
            str(KILLED_RUNS),
        ],
        cwd=ROOT,
        env=subprocess_env(tmp_path / "prefect-home", PREFECT_API_URL=prefect_server.api.url),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    runs = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(runs) == KILLED_RUNS, done.stderr[-5000:]
    want = expected()
    combos = set()
    for run in runs:
        where = f"run {run['run']} ({run['fault']}, {run['rerun']}):\n{done.stderr[-3000:]}"
        assert run["killed"], "the flow process was not killed at its commit: " + where
        assert run["killed_flow_run_id"], where
        assert run["rerun_exit"] == 0, where
        repo = Path(run["repo"])
        commits = data_commits(repo)
        assert len(commits) == 1, f"{len(commits)} data commits: {where}"
        (commit,) = commits
        assert commit.id == tip(repo)
        xr.testing.assert_identical(read_dataset(repo), want)
        landed_before_kill = run["fault"] == "kill-after-ref"
        if landed_before_kill:
            # the killed run's commit is the one; the re-run found it
            assert commit.metadata["flow_run_id"] == run["killed_flow_run_id"], where
            if run["rerun"] == "same-flow-run":
                assert run["rerun_snapshot"] == commit.id, where
                # the event the killed run never sent was sent by its re-run, once
                events = commit_events(prefect_server, commit.id)
                assert [e["id"] for e in events] == [str(commit_event_id(str(repo), commit.id))], (
                    where
                )
            else:
                assert run["rerun_snapshot"] is None, where  # nothing new for a new run
        else:
            # nothing was published by the killed run; the re-run committed
            assert run["rerun_snapshot"] == commit.id, where
            if run["rerun"] == "same-flow-run":
                assert commit.metadata["flow_run_id"] == run["killed_flow_run_id"], where
            else:
                assert commit.metadata["flow_run_id"] != run["killed_flow_run_id"], where
        if run["rerun"] == "same-flow-run":
            flow_run = prefect_server.api.call("GET", f"/flow_runs/{run['killed_flow_run_id']}")
            assert flow_run["state"]["type"] == "COMPLETED", where
        combos.add((run["fault"], run["rerun"]))
    assert len(combos) == 6  # every kill point with both kinds of re-run


def prepared(tmp_path: Path) -> str:
    repo = str(tmp_path / "repo")
    exactly_once.prepare(repo)
    return repo


def thread_flow(**options: Any) -> Any:
    return append.with_options(task_runner=ThreadPoolTaskRunner(max_workers=2), **options)


@pytest.mark.usefixtures("prefect_harness")
def test_lost_response_on_the_ref_update_commits_once(tmp_path: Path) -> None:
    """The branch update lands but the call fails: the commit is found by its key and
    returned; nothing is committed twice (a naive retry would rebase over its own commit)."""
    repo = prepared(tmp_path)
    block = CommitFaultBlock(location=repo, fault="lost-response", marker=str(tmp_path / "m"))
    state = thread_flow()(dict(exactly_once.SOURCE), block, chunks_per_region=1, return_state=True)
    assert state.is_completed(), state
    assert (tmp_path / "m").exists()  # the fault did strike
    snapshot = state.result()
    commits = data_commits(Path(repo))
    assert [c.id for c in commits] == [snapshot]
    xr.testing.assert_identical(read_dataset(Path(repo)), expected())


@pytest.mark.usefixtures("prefect_harness")
def test_prefect_retries_of_the_flow_commit_once(tmp_path: Path) -> None:
    """The branch update lands, the response is lost and the storage stays unreadable, so
    the task cannot tell: it fails with ``CommitStateUnknownError``; Prefect retries the flow
    (``retries=2``); the retry finds the run's commit and returns it."""
    from prefect import get_client

    repo = prepared(tmp_path)
    block = CommitFaultBlock(
        location=repo, fault="lost-response", marker=str(tmp_path / "m"), unreadable_after=True
    )
    run = thread_flow(retries=2, retry_delay_seconds=0)
    state = run(dict(exactly_once.SOURCE), block, chunks_per_region=1, return_state=True)
    assert state.is_completed(), state
    snapshot = state.result()
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(state.state_details.flow_run_id)
    assert flow_run.run_count == 2  # the first attempt failed, the retry completed
    commits = data_commits(Path(repo))
    assert [c.id for c in commits] == [snapshot]
    assert commits[0].metadata["flow_run_id"] == str(flow_run.id)
    xr.testing.assert_identical(read_dataset(Path(repo)), expected())
    # and a new run of the same parameters has nothing to do
    assert thread_flow()(dict(exactly_once.SOURCE), repo) is None
    assert len(data_commits(Path(repo))) == 1


def test_commit_once_without_prefect_finds_its_own_commit(tmp_path: Path) -> None:
    """The plain function, on the fault-injecting storage: the branch update lands but the
    call fails (lost response); ``commit_once`` finds the commit by its key and returns it;
    called again with the same session (a retried call), it finds it before committing."""
    from icechunk import Repository
    from tasks.commits import commit_once, idempotency_key
    from tests.pipeline.faults import CommitFaultStorage

    repo_path = prepared(tmp_path)
    source = source_from_spec(dict(exactly_once.SOURCE))
    storage = CommitFaultStorage(repo_path, "lost-response", str(tmp_path / "m"))
    repo = Repository.open(storage)
    key = idempotency_key(None, "main", "time", 0, 6, "fp")
    session = repo.writable_session("main")
    regions = core.extend_dataset(session, source, 0, 6)
    forks = [core.write_region(session.fork(), source, r) for r in regions]
    first = commit_once(repo, session, forks, message="six", key=key)
    assert (tmp_path / "m").exists()  # the response was lost
    assert not first.created  # found in the history, not reported by the commit call
    again = commit_once(repo, session, [], message="six", key=key)
    assert again.snapshot_id == first.snapshot_id and not again.created
    assert [c.id for c in data_commits(Path(repo_path))] == [first.snapshot_id]
    assert first.metadata[IDEMPOTENCY_KEY] == key
    xr.testing.assert_identical(read_dataset(Path(repo_path)), expected())
