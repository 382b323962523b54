"""Shared process pools for the distributed-write tests: one spawn ``ProcessPoolExecutor`` and
one ``distributed`` cluster of two worker processes for the whole test session (each module
connects its own client, so the cluster is never the default scheduler outside them)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest


@pytest.fixture(scope="session")
def process_pool() -> Iterator[ProcessPoolExecutor]:
    """Two spawned worker processes (in-memory storage cannot cross them: use local files)."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as executor:
        yield executor


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[object]:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=2, processes=True, dashboard_address=":0"
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def dask_client(local_cluster: object) -> Iterator[object]:
    """A client of the shared cluster: dask computations in the module run in its workers."""
    from distributed import Client

    with Client(local_cluster) as client:
        yield client
