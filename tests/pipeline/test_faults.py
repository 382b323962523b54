"""Fault injection: transient storage errors are retried, bad data is not, and a Dask worker
killed mid-flow leaves a complete commit or none, never a partial one."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import xarray as xr

from flows.ingest import ingest
from tasks.sources import SyntheticWeatherSource
from tests.pipeline.faults import FaultySource
from tests.pipeline.helpers import chunk_changes, messages, open_repo, read_dataset, tip

pytestmark = pytest.mark.usefixtures("prefect_harness")

# 12 steps in regions [0:4), [4:8), [8:12); the faults hit the middle one
SOURCE = SyntheticWeatherSource(ntime=12, nlat=6, nlon=10, seed=3)
FAULTY_REGION = (4, 8)


def faulty(tmp_path: Path, fault: Any, times: int = 1) -> FaultySource:
    return FaultySource(
        SOURCE, *FAULTY_REGION, fault=fault, marker_dir=str(tmp_path / "marks"), times=times
    )


def history(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """Each commit's message and chunk-level changes, oldest first (ids left out)."""
    infos = list(open_repo(path).ancestry(branch="main"))[::-1]
    return [(b.message, chunk_changes(path, a.id, b.id)) for a, b in itertools.pairwise(infos)]


def test_transient_storage_error_is_retried(tmp_path: Path, task_runner: Any) -> None:
    run = ingest.with_options(task_runner=task_runner)
    source = faulty(tmp_path, "storage")
    run(source, str(tmp_path / "flaky"), chunks_per_region=4)
    assert source.attempts() == 2  # failed once, retried once
    run(SOURCE, str(tmp_path / "clean"), chunks_per_region=4)
    xr.testing.assert_identical(read_dataset(tmp_path / "flaky"), SOURCE.load(0, 12))
    xr.testing.assert_identical(read_dataset(tmp_path / "flaky"), read_dataset(tmp_path / "clean"))
    assert history(tmp_path / "flaky") == history(tmp_path / "clean")


def test_non_transient_error_is_not_retried(tmp_path: Path, task_runner: Any) -> None:
    run = ingest.with_options(task_runner=task_runner)
    source = faulty(tmp_path, "value", times=-1)
    repo = tmp_path / "repo"
    with pytest.raises(ValueError, match="injected bad data"):
        run(source, str(repo), chunks_per_region=4)
    assert source.attempts() == 1
    # the schema commit is there, no data commit: the other regions' writes were dropped
    assert messages(repo) == ["initialize dataset", "Repository initialized"]
    assert read_dataset(repo).sizes["time"] == 0
    # with the data fixed, a re-run completes the ingest
    run(SOURCE, str(repo), chunks_per_region=4)
    xr.testing.assert_identical(read_dataset(repo), SOURCE.load(0, 12))


@pytest.mark.parametrize(
    "allowed_failures",
    [
        pytest.param(0, id="task-lost"),  # the scheduler gives up: KilledWorker, no commit
        pytest.param(3, id="task-rerun"),  # Dask's default: re-run elsewhere, full commit
    ],
)
def test_killed_worker_leaves_a_complete_commit_or_none(
    tmp_path: Path, task_runner: Any, dask_cluster: Any, allowed_failures: int
) -> None:
    from distributed import Client

    run = ingest.with_options(task_runner=task_runner)
    repo = tmp_path / "repo"
    run(SOURCE, str(repo), until=2)  # some data committed before the crash
    before = tip(repo)
    source = faulty(tmp_path, "kill")
    scheduler = dask_cluster.scheduler
    saved, scheduler.allowed_failures = scheduler.allowed_failures, allowed_failures
    try:
        run(source, str(repo), chunks_per_region=4)
        failed = None
    except Exception as e:  # noqa: BLE001 -- either outcome is legitimate, checked below
        failed = e
    finally:
        scheduler.allowed_failures = saved
        with Client(dask_cluster) as client:  # the nanny restarts the killed worker
            client.wait_for_workers(2, timeout=60)
    assert source.attempts() >= 1
    if tip(repo) == before:
        # no commit: the branch and its data are exactly as before the run
        assert failed is not None
        assert allowed_failures == 0
        xr.testing.assert_identical(read_dataset(repo), SOURCE.load(0, 2))
    else:
        # a commit: it holds every step (the lost task was re-run on another worker)
        assert failed is None
        assert allowed_failures > 0
        assert len(messages(repo)) == 4
        xr.testing.assert_identical(read_dataset(repo), SOURCE.load(0, 12))
    # a re-run completes the work, whatever happened
    run(SOURCE, str(repo), chunks_per_region=4)
    xr.testing.assert_identical(read_dataset(repo), SOURCE.load(0, 12))
    assert len(messages(repo)) == 4  # init, repository, first ingest, the completing commit
