"""Many writers on one S3 repository: dask workers in other processes, concurrent committers,
and create-only races between processes."""

from __future__ import annotations

import itertools
import multiprocessing
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import dask.array
import numpy as np
import pytest
import zarr
from distributed import Client, LocalCluster

import icechunk
import icechunk.dask
from icechunk.storage import s3_storage
from tests.s3._servers import S3Server
from tests.s3._workers import commit_worker, create_worker, warm

# (processes, commits each) per server. SeaweedFS makes a loser of a *simultaneous* conditional
# PUT wait for its distributed lock (~1 s), but commits rarely collide that closely: the full
# contest takes 11-14 s there, against 19-25 s on moto (2 cores shared by everything).
COMMIT_CONTEST = {"moto": (8, 25), "seaweedfs": (8, 25)}


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Client]:
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def test_store_dask_on_worker_processes(
    dask_client: Client, s3_server: S3Server, bucket: str
) -> None:
    repo = icechunk.Repository.create(s3_storage(**s3_server.storage_kwargs(bucket, "dask")))
    session = repo.writable_session("main")
    source = dask.array.random.random((60, 40), chunks=(20, 20))
    target = zarr.create_array(
        session.store, name="array", shape=source.shape, chunks=(10, 10), dtype="f8"
    )
    icechunk.dask.store_dask(session, sources=[source], targets=[target])
    session.commit("wrote a dask array from worker processes")
    back = zarr.open_array(repo.readonly_session("main").store, path="array", mode="r")
    np.testing.assert_array_equal(back[:], source.compute())
    pids = dask_client.run(lambda: __import__("os").getpid())
    assert len(set(pids.values())) == 2


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    """16 warm worker processes, forked from a fork server that has imported the workers module
    (a spawned process would spend about a second of CPU importing numpy, zarr and icechunk)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tests.s3._workers"])
    with ProcessPoolExecutor(16, mp_context=context) as executor:
        list(executor.map(warm, [0.5] * 16))
        yield executor


@pytest.mark.slow
def test_concurrent_committers_lose_nothing(
    pool: ProcessPoolExecutor, s3_server: S3Server, bucket: str
) -> None:
    processes, commits = COMMIT_CONTEST[s3_server.name]
    storage = s3_storage(**s3_server.storage_kwargs(bucket, "contest"))
    repo = icechunk.Repository.create(storage)
    session = repo.writable_session("main")
    zarr.create_array(
        session.store,
        name="data",
        shape=(processes, commits),
        chunks=(1, 1),
        dtype="i4",
        fill_value=-1,
    )
    base = session.commit("create the array")

    start_at = time.time() + 1.0
    futures = [pool.submit(commit_worker, storage, w, commits, start_at) for w in range(processes)]
    busy = [f.result(timeout=600) for f in futures]
    elapsed = time.time() - start_at

    total = processes * commits
    print(
        f"\n{s3_server.name}: {processes} processes x {commits} commits = {total} commits in "
        f"{elapsed:.1f} s ({total / elapsed:.1f} commits/s; slowest worker {max(busy):.1f} s)"
    )
    history = list(icechunk.Repository.open(storage).ancestry(branch="main"))
    new = history[: [s.id for s in history].index(base)]
    assert len(new) == total  # exactly one new commit per commit call
    assert sorted(s.message for s in new) == sorted(
        f"w{w}-c{i}" for w in range(processes) for i in range(commits)
    )
    for child, parent in itertools.pairwise(history):  # one linear chain
        assert child.parent_id == parent.id
    data = zarr.open_array(repo.readonly_session("main").store, path="data", mode="r")[:]
    expected = np.array([[w * 1000 + i for i in range(commits)] for w in range(processes)])
    np.testing.assert_array_equal(data, expected)  # no write lost


def test_create_only_race_between_processes(
    pool: ProcessPoolExecutor, s3_server: S3Server, bucket: str
) -> None:
    writers, key = 16, "refs/tag.v1/ref.json"
    storage = s3_storage(**s3_server.storage_kwargs(bucket, "race"))
    payloads = [f"writer-{i}".encode() for i in range(writers)]
    start_at = time.time() + 0.5
    futures = [pool.submit(create_worker, storage, key, p, start_at) for p in payloads]
    won = [f.result(timeout=300) for f in futures]
    print(f"\n{s3_server.name}: create-only race of {writers} processes: {sum(won)} winner(s)")
    assert sum(won) == 1, won
    body = s3_server.client().get_object(Bucket=bucket, Key=f"race/{key}")
    assert body["Body"].read() == payloads[won.index(True)]
