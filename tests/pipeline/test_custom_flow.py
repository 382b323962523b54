"""Users compose the package's tasks into flows of their own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import xarray as xr
from prefect import flow, unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from icechunk import StorageError
from tasks import (
    IcechunkRepositoryBlock,
    SyntheticWeatherSource,
    extend_dataset,
    initialize_dataset,
    merge_and_commit,
    open_repository,
    plan_append,
    write_region,
)
from tests.pipeline.faults import FaultySource
from tests.pipeline.helpers import messages, open_repo, read_dataset

pytestmark = pytest.mark.usefixtures("prefect_harness")


def make_flow(write: Any = write_region, resolve: bool = True) -> Any:
    """A user's own flow: schema, plan, grow, fork, write regions in parallel, one commit.

    ``resolve=False`` passes the futures of ``write.map`` straight to ``merge_and_commit``.
    """

    @flow(name="my-ingest", persist_result=False)
    def my_ingest(location: str | IcechunkRepositoryBlock, source: Any) -> str | None:
        repo = open_repository(location)
        initialize_dataset(repo, source, chunks={"time": 3})
        start, stop = plan_append(repo, source)
        if start == stop:
            return None
        session = repo.writable_session("main")
        regions = extend_dataset(session, source, start, stop, chunks_per_region=1)
        fork = session.fork()
        futures = write.map(unmapped(fork), unmapped(source), regions)
        forks = futures.result() if resolve else futures
        return merge_and_commit(session, forks, "my own ingest", {"pipeline": "mine"})

    return my_ingest


my_ingest = make_flow()


@pytest.mark.parametrize("runner", ["dask-processes", "threads"])
def test_custom_flow_from_the_tasks(tmp_path: Path, runner: str, request: Any) -> None:
    if runner == "threads":
        task_runner: Any = ThreadPoolTaskRunner(max_workers=3)
    else:
        task_runner = request.getfixturevalue("task_runner")
    source = SyntheticWeatherSource(ntime=8, nlat=5, nlon=7, seed=11)
    repo = tmp_path / "repo"
    snapshot = my_ingest.with_options(task_runner=task_runner)(str(repo), source)
    info = open_repo(repo).lookup_snapshot(snapshot)
    assert info.message == "my own ingest"
    assert info.metadata["pipeline"] == "mine"
    assert messages(repo) == ["my own ingest", "initialize dataset", "Repository initialized"]
    assert info.metadata["pipeline"] == "mine"
    xr.testing.assert_identical(read_dataset(repo), source.load(0, 8))
    # nothing new: the user's flow stops before opening a session
    assert my_ingest.with_options(task_runner=task_runner)(str(repo), source) is None


def test_users_tune_retries_with_options(tmp_path: Path, task_runner: Any) -> None:
    source = SyntheticWeatherSource(ntime=6, nlat=5, nlon=7)
    broken = FaultySource(source, 3, 6, fault="storage", marker_dir=str(tmp_path), times=-1)
    impatient = write_region.with_options(retries=1, retry_delay_seconds=0)
    with pytest.raises(StorageError, match="injected transient"):
        make_flow(impatient).with_options(task_runner=task_runner)(str(tmp_path / "repo"), broken)
    assert broken.attempts() == 2
    assert messages(tmp_path / "repo") == ["initialize dataset", "Repository initialized"]


def test_failed_region_futures_never_give_a_partial_commit(
    tmp_path: Path, task_runner: Any
) -> None:
    """Passing unresolved futures on: Prefect does not run ``merge_and_commit`` when one
    failed (and, a Prefect quirk, the flow still completes, returning ``None``); in any case
    nothing is committed. ``tasks.write_regions`` raises instead."""
    source = SyntheticWeatherSource(ntime=6, nlat=5, nlon=7)
    broken = FaultySource(source, 3, 6, fault="value", marker_dir=str(tmp_path), times=-1)
    run = make_flow(resolve=False).with_options(task_runner=task_runner)
    assert run(str(tmp_path / "repo"), broken) is None
    assert messages(tmp_path / "repo") == ["initialize dataset", "Repository initialized"]


def test_repository_block_as_flow_parameter(tmp_path: Path, task_runner: Any) -> None:
    """A saved block is loaded by name and passed to a flow; its secrets never reach the
    API's record of the flow run's parameters."""
    from prefect import get_client

    IcechunkRepositoryBlock(
        location=str(tmp_path / "repo"), access_key_id="AKIA-NOT-A-REAL-KEY"
    ).save("pipeline-test-repo", overwrite=True)
    block = IcechunkRepositoryBlock.load("pipeline-test-repo")
    assert block.access_key_id is not None
    assert block.access_key_id.get_secret_value() == "AKIA-NOT-A-REAL-KEY"
    source = SyntheticWeatherSource(ntime=4, nlat=5, nlon=7)
    state = my_ingest.with_options(task_runner=task_runner)(block, source, return_state=True)
    assert state.is_completed()
    xr.testing.assert_identical(read_dataset(tmp_path / "repo"), source.load(0, 4))
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert "AKIA-NOT-A-REAL-KEY" not in repr(run.parameters)
