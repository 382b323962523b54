"""The ingest / append / backfill flows on a DaskTaskRunner of worker processes, against
Prefect's test harness, on local storage: what they commit must read back identical to the
source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import xarray as xr

from flows.ingest import append, backfill, ingest
from icechunk import InvalidInputError
from tasks.sources import NetCDFSource, SyntheticWeatherSource
from tests.pipeline.conftest import DATA
from tests.pipeline.helpers import messages, read_dataset, tip

pytestmark = pytest.mark.usefixtures("prefect_harness")


def small_source(ntime: int = 12, seed: int = 0) -> SyntheticWeatherSource:
    return SyntheticWeatherSource(ntime=ntime, nlat=6, nlon=10, seed=seed)


def test_ingest_synthetic(tmp_path: Path, task_runner: Any) -> None:
    source = small_source(ntime=10)
    repo = tmp_path / "repo"
    snapshot = ingest.with_options(task_runner=task_runner)(
        source, str(repo), chunks={"time": 2}, chunks_per_region=2
    )
    assert snapshot == tip(repo)
    assert messages(repo) == [
        f"ingest {source.describe()}",
        "initialize dataset",
        "Repository initialized",
    ]
    xr.testing.assert_identical(read_dataset(repo), source.load(0, 10))


def test_ingest_era_interim_netcdf(tmp_path: Path, task_runner: Any) -> None:
    path = DATA / "eraint_uvz.nc"
    assert path.exists(), f"{path} is missing: the tests need ../shared/data beside the checkout"
    source = NetCDFSource((str(path),), dim="month")
    repo = tmp_path / "repo"
    # one region per month: both months are written by different Dask tasks
    ingest.with_options(task_runner=task_runner)(source, str(repo), chunks_per_region=1)
    stored = read_dataset(repo)
    with xr.open_dataset(path) as expected:
        xr.testing.assert_identical(stored, expected.load())


def test_append_with_nothing_new_makes_no_commit(tmp_path: Path, task_runner: Any) -> None:
    source = small_source(ntime=6)
    repo = tmp_path / "repo"
    run_append = append.with_options(task_runner=task_runner)
    first = run_append(source, str(repo))
    assert first is not None
    before = list(messages(repo))
    assert run_append(source, str(repo)) is None
    assert tip(repo) == first
    assert messages(repo) == before


def test_append_after_new_steps_appear(tmp_path: Path, task_runner: Any) -> None:
    repo = tmp_path / "repo"
    ingest.with_options(task_runner=task_runner)(small_source(ntime=7), str(repo))
    grown = small_source(ntime=12)  # the same first 7 steps, then 5 new ones
    snapshot = append.with_options(task_runner=task_runner)(grown, str(repo))
    assert snapshot == tip(repo)
    assert messages(repo)[0].startswith("append 5 time steps")
    xr.testing.assert_identical(read_dataset(repo), grown.load(0, 12))


def test_append_refuses_a_source_whose_history_changed(tmp_path: Path, task_runner: Any) -> None:
    repo = tmp_path / "repo"
    run_append = append.with_options(task_runner=task_runner)
    run_append(small_source(ntime=4), str(repo))
    before = tip(repo)
    # time steps shifted by 6 h: the stored steps are no longer a prefix of the source's
    shifted = SyntheticWeatherSource(ntime=8, nlat=6, nlon=10, start="2024-01-01T06:00")
    with pytest.raises(InvalidInputError, match="refusing to append"):
        run_append(shifted, str(repo))
    assert tip(repo) == before


def test_backfill_in_batches(tmp_path: Path, task_runner: Any) -> None:
    source = small_source(ntime=12)
    repo = tmp_path / "repo"
    commits = backfill.with_options(task_runner=task_runner)(
        source, str(repo), stop=10, batch_size=4, chunks={"time": 2}
    )
    assert len(commits) == 3
    assert commits[-1] == tip(repo)
    assert [m.split(" (")[0] for m in messages(repo)[:3]] == [
        "append 2 time steps",
        "append 4 time steps",
        "append 4 time steps",
    ]
    xr.testing.assert_identical(read_dataset(repo), source.load(0, 10))
    # a second backfill to the same stop has nothing to do; a longer one continues
    assert backfill.with_options(task_runner=task_runner)(source, str(repo), stop=10) == []
    more = backfill.with_options(task_runner=task_runner)(source, str(repo), stop=12, batch_size=4)
    assert len(more) == 1
    xr.testing.assert_identical(read_dataset(repo), source.load(0, 12))
