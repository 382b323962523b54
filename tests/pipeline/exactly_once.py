"""Kill flow processes at their data commit, re-run them, and report what happened.

    python -m tests.pipeline.exactly_once --api URL --workdir DIR --runs N

For each run, in a fresh repository: a child process runs the ``append`` flow against the
Prefect API at ``URL`` with :class:`~tests.pipeline.faults.CommitFaultBlock`, which SIGKILLs
the process at a point of the data commit (cycling through before the snapshot, before the
branch update, and right after the branch update landed). Then the run is re-run in another
child process, alternately

* as the *same* flow run (marked ``Crashed`` as a worker would, then ``AwaitingRetry`` as the
  UI's retry does, then executed by Prefect's engine with that flow run, as a worker does), or
* as a *new* flow run of the same parameters.

Children are forked from this process, which imports Prefect and the pipeline once but
starts no thread and no client (it talks to the API with ``urllib``), so each run costs a
flow run, not an interpreter start. Prints one JSON line per run; the test checks them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import urllib.request
from pathlib import Path
from typing import Any

from prefect.task_runners import ThreadPoolTaskRunner

from flows.ingest import append
from tests.pipeline.faults import CommitFaultBlock

FAULTS = ("kill-after-ref", "kill-before-ref", "kill-before-snapshot")
SOURCE = {"kind": "synthetic", "ntime": 6, "nlat": 4, "nlon": 5, "seed": 7}
CHUNKS = {"time": 2}


def flow() -> Any:
    return append.with_options(task_runner=ThreadPoolTaskRunner(max_workers=2))


def _api(api: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        api + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or "null")


def _with_api(api: str) -> Any:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    return temporary_settings(updates={PREFECT_API_URL: api})


def prepare(repo: str) -> None:
    """The repository with the dataset's schema (plain functions, no flow run)."""
    from tasks import core
    from tasks.sources import source_from_spec

    source = source_from_spec(dict(SOURCE))
    core.initialize_dataset(core.open_repository(repo), source, chunks=CHUNKS)


def attempt(api: str, repo: str, marker: str, fault: str) -> None:
    """Child: run the flow; the fault kills this process during the data commit."""
    prepare(repo)
    block = CommitFaultBlock(location=repo, fault=fault, marker=marker)
    with _with_api(api):
        flow()(SOURCE, block, chunks=CHUNKS, chunks_per_region=2)


def rerun(api: str, repo: str, flow_run_id: str | None, out: str) -> None:
    """Child: run again (the same flow run if ``flow_run_id``, else a new one)."""
    from prefect import get_client
    from prefect.flow_engine import run_flow

    with _with_api(api):
        if flow_run_id:
            with get_client(sync_client=True) as client:
                run = client.read_flow_run(flow_run_id)
            result = run_flow(flow(), flow_run=run, parameters=run.parameters)
        else:
            result = flow()(SOURCE, repo, chunks=CHUNKS, chunks_per_region=2)
    Path(out).write_text(json.dumps({"snapshot": result}))


def _in_child(target: Any, *args: Any) -> int:
    """Run ``target(*args)`` in a forked child; return its wait status."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            target(*args)
        except BaseException as e:  # noqa: BLE001 -- reported through the exit code
            print(f"child failed: {type(e).__name__}: {e}", file=sys.stderr)
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return status


def one_run(api: str, workdir: Path, i: int) -> dict[str, Any]:
    # every kill point with both kinds of re-run, in 6 consecutive runs
    fault = FAULTS[i % len(FAULTS)]
    same_run = (i // len(FAULTS)) % 2 == 0
    base = workdir / f"run-{i:02d}"
    base.mkdir(parents=True)
    repo, marker, out = str(base / "repo"), str(base / "killed-run"), str(base / "rerun.json")
    status = _in_child(attempt, api, repo, marker, fault)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    flow_run_id = Path(marker).read_text() if Path(marker).exists() else None
    if same_run and flow_run_id:
        # what a process worker reports when its flow-run process died, then the UI's retry
        for state in (
            {"type": "CRASHED", "name": "Crashed"},
            {"type": "SCHEDULED", "name": "AwaitingRetry"},
        ):
            _api(
                api, "POST", f"/flow_runs/{flow_run_id}/set_state", {"state": state, "force": True}
            )
    status = _in_child(rerun, api, repo, flow_run_id if same_run else None, out)
    result = json.loads(Path(out).read_text()) if Path(out).exists() else {}
    return {
        "run": i,
        "fault": fault,
        "rerun": "same-flow-run" if same_run else "new-flow-run",
        "killed": killed,
        "killed_flow_run_id": flow_run_id,
        "rerun_exit": os.waitstatus_to_exitcode(status),
        "rerun_snapshot": result.get("snapshot"),
        "repo": repo,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api", required=True)
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--first", type=int, default=0)
    args = parser.parse_args(argv)
    for i in range(args.first, args.first + args.runs):
        print(json.dumps(one_run(args.api, args.workdir, i)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
