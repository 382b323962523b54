"""The README's main job (``bash scripts/dev main`` runs ``python -m flows.main``), small."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pipeline.conftest import ROOT, subprocess_env

pytestmark = pytest.mark.slow


def test_main_job_ingests_appends_and_reads_back_identical(tmp_path: Path) -> None:
    repo = tmp_path / "demo-repo"
    size = ["--ntime", "8", "--nlat", "10", "--nlon", "20"]
    done = subprocess.run(
        [sys.executable, "-m", "flows.main", *size, "--repo", str(repo), "--workers", "1"],
        # a fresh directory: the job must create its Prefect home itself
        cwd=tmp_path,
        env=subprocess_env(tmp_path / "no-such-dir" / "prefect-home", PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    listing = out[out.index("commits on main:") :].splitlines()[1:5]
    messages = [re.sub(r"^\s*\S{20}\s+\S+\s+", "", line) for line in listing]
    assert [m.split(" (")[0] for m in messages] == [
        "append 2 time steps",
        "ingest synthetic weather 8x10x20 from 2024-01-01 every 6h",
        "initialize dataset",
        "Repository initialized",
    ]
    assert "second append -> None (expected None)" in out
    assert "read-back check: identical to the source" in out
    # what a user sees: no tracebacks, no SQLite lock errors, no Dask shutdown noise
    for noise in ("Traceback", "database is locked", "CommClosedError", "distributed.nanny"):
        assert noise not in out, out


SCRIPT = """
from flows.ingest import ingest
from tasks.sources import SyntheticWeatherSource

if __name__ == "__main__":
    print("snapshot", ingest(SyntheticWeatherSource(ntime=6, nlat=8, nlon=12), {repo!r}))
"""


def test_flow_called_from_a_script_without_an_api(tmp_path: Path) -> None:
    """No PREFECT_API_URL: Prefect serves the flow run from one temporary server, the Dask
    workers of the flow's own local cluster report to it, and the output stays clean (with
    analytics off, as the docs advise: Prefect's telemetry heartbeat races the temporary
    server's SQLite migrations and logs "database is locked" tracebacks)."""
    script = tmp_path / "ingest_script.py"
    script.write_text(SCRIPT.format(repo=str(tmp_path / "repo")))
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=subprocess_env(tmp_path / "prefect-home", PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "snapshot " in done.stdout
    assert out.count("Starting temporary server") == 1, out  # none started by Dask workers
    assert "Task run 'write-region-[0:4)' - wrote region" in out  # ran on a Dask worker
    for noise in ("Traceback", "database is locked", "CommClosedError", "distributed.nanny"):
        assert noise not in out, out
