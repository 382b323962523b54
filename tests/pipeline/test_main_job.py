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
