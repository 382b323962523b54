"""Unit tests of the pipeline's pieces without a Prefect server or engine: region planning,
append planning, the tasks' ``.fn`` bodies, the retry condition and the repository Block."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st
from prefect.cache_policies import NO_CACHE
from prefect.logging import disable_run_logger
from prefect.states import Completed, Failed
from prefect.testing.standard_test_suites import BlockStandardTestSuite
from pydantic import SecretStr

import tasks
from icechunk import InvalidInputError, StorageError
from tasks import core
from tasks.blocks import IcechunkRepositoryBlock
from tasks.regions import Region, plan_regions
from tasks.sources import NetCDFSource, SyntheticWeatherSource, source_from_spec
from tests.pipeline.helpers import messages, read_dataset

# --- region planning -------------------------------------------------------------------------


@given(
    source_start=st.integers(0, 50),
    length=st.integers(0, 200),
    target_start=st.integers(0, 100),
    chunk_length=st.integers(1, 12),
    chunks_per_region=st.integers(1, 5),
)
def test_plan_regions_cover_the_range_chunk_aligned_and_disjoint(
    source_start: int, length: int, target_start: int, chunk_length: int, chunks_per_region: int
) -> None:
    source_stop = source_start + length
    regions = plan_regions(source_start, source_stop, target_start, chunk_length, chunks_per_region)
    # exact cover, in order, with the target offset preserved
    assert sum(r.size for r in regions) == length
    covered = [i for r in regions for i in range(r.source_start, r.source_stop)]
    assert covered == list(range(source_start, source_stop))
    for r in regions:
        assert r.size > 0
        assert r.target_start - r.source_start == target_start - source_start
    # region boundaries inside the written range fall on target chunk boundaries
    for a, b in itertools.pairwise(regions):
        assert a.target_stop == b.target_start
        assert b.target_start % chunk_length == 0
    # so no target chunk is written by two regions, and none holds more than it should
    chunk_sets = [
        set(range(r.target_start // chunk_length, (r.target_stop - 1) // chunk_length + 1))
        for r in regions
    ]
    for i, a_chunks in enumerate(chunk_sets):
        assert len(a_chunks) <= chunks_per_region
        for b_chunks in chunk_sets[i + 1 :]:
            assert not a_chunks & b_chunks


def test_plan_regions_examples() -> None:
    assert plan_regions(0, 10, 0, 2, 2) == [Region(0, 4, 0), Region(4, 8, 4), Region(8, 10, 8)]
    # appending at target 5 with chunks of 4: the first region fills the partial chunk
    assert plan_regions(0, 6, 5, 4, 1) == [Region(0, 3, 5), Region(3, 6, 8)]
    assert plan_regions(3, 3, 7, 4) == []
    assert str(Region(0, 3, 5)) == "[5:8)"


@pytest.mark.parametrize(
    "args",
    [(5, 4, 0, 1), (-1, 4, 0, 1), (0, 4, -1, 1), (0, 4, 0, 0), (0, 4, 0, 1, 0)],
)
def test_plan_regions_rejects_invalid_input(args: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        plan_regions(*args)


# --- append planning -------------------------------------------------------------------------

TIMES = np.arange("2024-01-01", "2024-01-11", dtype="datetime64[D]").astype("datetime64[ns]")


def test_append_plan_starts_after_the_stored_prefix() -> None:
    assert core.append_plan(TIMES[:0], TIMES) == 0
    assert core.append_plan(TIMES[:4], TIMES) == 4
    assert core.append_plan(TIMES, TIMES) == 10  # nothing new
    assert core.append_plan(TIMES[:4], TIMES, until=6) == 4
    assert core.append_plan(TIMES[:4], TIMES, until=2) == 2  # until before the stored end
    # stored with another datetime resolution (as decoded from the store) still matches
    assert core.append_plan(TIMES[:4].astype("datetime64[s]"), TIMES) == 4


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param(np.concatenate([TIMES[:3], TIMES[4:5]]), id="gap"),
        pytest.param(TIMES[1:5], id="shifted"),
        pytest.param(TIMES[:4][::-1], id="reordered"),
        pytest.param(
            np.concatenate([TIMES, TIMES[-1:] + np.timedelta64(1, "D")]), id="longer-than-source"
        ),
    ],
)
def test_append_plan_refuses_stored_data_that_is_not_a_prefix(stored: np.ndarray) -> None:
    with pytest.raises(InvalidInputError, match="refusing to append"):
        core.append_plan(stored, TIMES)


def test_append_plan_refuses_changed_values() -> None:
    values = np.arange(10.0)
    changed = values[:4].copy()
    changed[2] += 0.5
    with pytest.raises(InvalidInputError):
        core.append_plan(changed, values)


# --- the tasks' bodies, called with .fn() ----------------------------------------------------


def test_task_functions_run_a_whole_ingest_without_the_engine(tmp_path: Path) -> None:
    """The tasks' ``.fn`` compose into an ingest: the coordinator extends and forks, each
    region is written on the fork (here in one process), the forks are merged and committed."""
    source = SyntheticWeatherSource(ntime=9, nlat=4, nlon=6)
    location = str(tmp_path / "repo")
    with disable_run_logger():
        repo = tasks.open_repository.fn(location)
        assert tasks.initialize_dataset.fn(repo, source, chunks={"time": 2}) is not None
        assert tasks.initialize_dataset.fn(repo, source) is None  # idempotent
        start, stop = tasks.plan_append.fn(repo, source, until=7)
        assert (start, stop) == (0, 7)
        session = repo.writable_session("main")
        regions = tasks.extend_dataset.fn(session, source, start, stop, chunks_per_region=2)
        assert [(r.target_start, r.target_stop) for r in regions] == [(0, 4), (4, 7)]
        fork = session.fork()
        forks = [tasks.write_region.fn(fork, source, r) for r in regions]
        snapshot = tasks.merge_and_commit.fn(session, forks, "seven steps", {"by": "test"})
        # the next plan starts where this one stopped
        assert tasks.plan_append.fn(repo, source) == (7, 9)
    assert repo.lookup_branch("main") == snapshot
    assert repo.lookup_snapshot(snapshot).metadata["by"] == "test"
    assert messages(tmp_path / "repo")[:2] == ["seven steps", "initialize dataset"]
    xr.testing.assert_identical(read_dataset(tmp_path / "repo"), source.load(0, 7))


def test_initialize_dataset_refuses_a_different_schema(tmp_path: Path) -> None:
    repo = core.open_repository(str(tmp_path / "repo"))
    core.initialize_dataset(repo, SyntheticWeatherSource(ntime=3, nlat=4, nlon=6))
    with pytest.raises(InvalidInputError, match="different dataset"):
        core.initialize_dataset(repo, SyntheticWeatherSource(ntime=3, nlat=5, nlon=6))


def test_regions_follow_the_stored_chunks_not_the_requested_ones(tmp_path: Path) -> None:
    """An append that does not repeat ``chunks`` still writes chunk-aligned regions."""
    source = SyntheticWeatherSource(ntime=10, nlat=4, nlon=6)
    repo = core.open_repository(str(tmp_path / "repo"))
    core.initialize_dataset(repo, source, chunks={"time": 3})
    session = repo.writable_session("main")
    assert core.target_chunk_length(session, "time") == 3
    regions = core.extend_dataset(session, source, 0, 5, chunks_per_region=1)
    assert [(r.target_start, r.target_stop) for r in regions] == [(0, 3), (3, 5)]
    assert core.stored_length(session, "time") == 5


def test_write_region_task_options() -> None:
    write = tasks.write_region
    assert write.retries == 3
    assert write.retry_condition_fn is tasks.retry_transient_storage_errors
    assert write.cache_policy is NO_CACHE
    assert write.persist_result is False
    assert "icechunk-write" in write.tags
    for t in (tasks.open_repository, tasks.initialize_dataset, tasks.merge_and_commit):
        assert t.cache_policy is NO_CACHE
        assert t.retries == 0  # a commit is never retried blindly


def _raised_from(cause: BaseException) -> BaseException:
    try:
        raise RuntimeError("wrapped") from cause
    except RuntimeError as e:
        return e


@pytest.mark.parametrize(
    ("state", "retry"),
    [
        (Failed(data=StorageError("503 slow down")), True),
        (Failed(data=TimeoutError("read timed out")), True),
        (Failed(data=ConnectionResetError("reset by peer")), True),
        (Failed(data=_raised_from(StorageError("503"))), True),
        (Failed(data=ValueError("bad data")), False),
        (Failed(data=InvalidInputError("bad region")), False),
        (Completed(data=None), False),
    ],
)
def test_only_transient_errors_are_retried(state: object, retry: bool) -> None:
    assert tasks.retry_transient_storage_errors(None, None, state) is retry


def test_source_from_spec() -> None:
    assert source_from_spec({"kind": "synthetic", "ntime": 5}) == SyntheticWeatherSource(ntime=5)
    spec = {"kind": "netcdf", "paths": ["a.nc"], "dim": "month"}
    assert source_from_spec(spec) == NetCDFSource(("a.nc",), dim="month")
    source = SyntheticWeatherSource()
    assert source_from_spec(source) is source
    with pytest.raises(ValueError, match="unknown source kind"):
        source_from_spec({"kind": "grib"})


# --- the repository Block --------------------------------------------------------------------


class TestIcechunkRepositoryBlockStandards(BlockStandardTestSuite):
    @pytest.fixture
    def block(self) -> type[IcechunkRepositoryBlock]:
        return IcechunkRepositoryBlock

    def test_has_a_valid_image(self, block: type[IcechunkRepositoryBlock]) -> None:
        # The upstream check downloads `_logo_url` over the internet, which neither CI nor
        # this machine has, and the block deliberately ships no logo (Prefect's UI then shows
        # its default icon; a made-up URL would be worse). What we can check: no logo is set.
        assert block._logo_url is None


def test_block_secrets_stay_hidden() -> None:
    block = IcechunkRepositoryBlock(
        location="s3://bucket/prefix",
        region="eu-west-1",
        access_key_id=SecretStr("AKIAEXAMPLEKEYID"),
        secret_access_key=SecretStr("wJalrXUtnFEMI-very-secret"),
    )
    for text in (repr(block), str(block), block.model_dump_json(), str(block.model_dump())):
        assert "AKIAEXAMPLEKEYID" not in text
        assert "very-secret" not in text
    options = block.storage_options()
    assert options["secret_access_key"] == "wJalrXUtnFEMI-very-secret"
    assert options["region"] == "eu-west-1"


def test_block_opens_a_local_repository(tmp_path: Path) -> None:
    block = IcechunkRepositoryBlock(location=str(tmp_path / "repo"), spec_version=1)
    repo = block.open_repository()
    assert repo.spec_version == 1
    assert block.open_repository(create=False).lookup_branch("main")


# --- runners and deployments, built without an API ------------------------------------------


def test_task_runner_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.runners import DaskConfig, config_from_env, make_task_runner

    remote = make_task_runner(DaskConfig(address="tcp://10.0.0.1:8786"))
    assert remote.address == "tcp://10.0.0.1:8786"
    local = make_task_runner(DaskConfig(n_workers=3, adapt_max=6))
    assert local.cluster_class == "flows.runners.local_cluster"
    assert local.cluster_kwargs["n_workers"] == 3
    assert local.cluster_kwargs["log_level"] == "warning"
    assert local.adapt_kwargs == {"minimum": 0, "maximum": 6}
    monkeypatch.setenv("ICECHUNK_PREFECT_DASK_N_WORKERS", "4")
    monkeypatch.setenv("ICECHUNK_PREFECT_DASK_LOG_LEVEL", "info")
    assert config_from_env() == DaskConfig(n_workers=4, log_level="info")
    monkeypatch.setenv("ICECHUNK_PREFECT_DASK_ADDRESS", "tcp://scheduler:8786")
    assert config_from_env().address == "tcp://scheduler:8786"


def test_work_pool_deployments_are_built_from_the_project_source() -> None:
    from prefect.schedules import Interval

    from deployments.deploy import PROJECT_ROOT, build_deployments

    source = {"kind": "synthetic", "ntime": 8}
    ingest, append = build_deployments(
        "/data/repo", source, work_pool="pool", extra_schedules=[Interval(60)]
    )
    assert (ingest.name, append.name) == ("ingest-on-demand", "append-every-6h")
    for deployment in (ingest, append):
        assert deployment.work_pool_name == "pool"
        assert deployment.parameters == {"source": source, "repository": "/data/repo"}
        assert deployment.entrypoint in ("flows/ingest.py:ingest", "flows/ingest.py:append")
        assert deployment.storage.to_pull_step() == {
            "prefect.deployments.steps.set_working_directory": {"directory": str(PROJECT_ROOT)}
        }
    assert ingest.schedules in (None, [])
    assert [type(s.schedule).__name__ for s in append.schedules] == [
        "CronSchedule",
        "IntervalSchedule",
    ]
    assert append.schedules[0].schedule.cron == "5 */6 * * *"


def test_served_deployments() -> None:
    from deployments.serve import build_deployments

    ingest, append = build_deployments("/data/repo", {"kind": "synthetic"}, cron="0 * * * *")
    assert ingest.name == "ingest-on-demand"
    assert append.schedules[0].schedule.cron == "0 * * * *"


# --- flows package, events and artifacts, built without an API ------------------------------


def test_flows_package_exports_the_flows_and_entrypoints_load_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    from prefect import Flow
    from prefect.utilities.importtools import import_object

    import flows
    from flows import append, backfill, ingest, on_commit
    from flows.ingest import ingest as ingest_from_module

    for f in (append, backfill, ingest, on_commit):
        assert isinstance(f, Flow)
    assert ingest is ingest_from_module
    assert flows.__all__ == ["append", "backfill", "ingest", "on_commit"]
    monkeypatch.setattr(sys, "path", list(sys.path))  # Prefect's script loader prepends to it
    # a file-path entrypoint, as Prefect loads it for a deployment, gives the package's flow
    # (which pickles as flows.ingest, importable on remote Dask workers)
    for entrypoint, expected in (
        ("flows/ingest.py:ingest", ingest),
        ("flows/ingest.py:append", append),
        ("flows/downstream.py:on_commit", on_commit),
    ):
        assert import_object(str(Path(flows.__file__).parents[1] / entrypoint)) is expected


def test_public_location_strips_credentials_from_urls() -> None:
    from tasks.events import commit_event_id, public_location

    assert public_location("s3://AKIAXX:s3cr3t@bucket/prefix") == "s3://bucket/prefix"
    assert public_location("http://user:pw@host:9000/p") == "http://host:9000/p"
    assert public_location("/data/repo") == "/data/repo"
    assert public_location("s3://bucket/prefix") == "s3://bucket/prefix"
    # one event id per commit, whoever emits it; credentials in the URL do not change it
    a = commit_event_id("s3://bucket/prefix", "SNAP")
    assert a == commit_event_id("s3://k:s@bucket/prefix", "SNAP")
    assert a != commit_event_id("s3://bucket/prefix", "OTHER")


def test_commit_summary_and_inspect_command() -> None:
    from tasks.artifacts import commit_summary_markdown, inspect_command, regions_table

    meta = {
        "appended": {"start": 4, "stop": 8, "first": "a", "last": "b"},
        "steps": 4,
        "dim": "time",
        "regions": [[4, 8]],
        "chunks_written": 12,
        "bytes_written": 3 * 1024 * 1024,
        "idempotency_key": "run/main/time[4:8]/fp",
    }
    text = commit_summary_markdown(
        location="s3://k:s@bucket/repo",
        branch="main",
        snapshot_id="SNAP",
        message="append 4",
        metadata=meta,
        written_at=None,
        created=True,
    )
    assert (
        "| snapshot | `SNAP` |" in text and "3.0 MiB" in text and "| chunks written | 12 |" in text
    )
    assert "k:s@" not in text
    assert (
        inspect_command("/data/my repo", "SNAP")
        == "icechunk log '/data/my repo' --snapshot SNAP -n 1"
    )
    assert regions_table([Region(0, 4, 4)], 10) == [
        {
            "region": "[4:8)",
            "target_start": 4,
            "target_stop": 8,
            "source_start": 0,
            "source_stop": 4,
            "steps": 4,
            "bytes": 40,
            "status": "written",
        }
    ]
