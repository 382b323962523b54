"""Every code example of the seed document (docs/distributed-writes-with-dask.md), run as
written there with its typos fixed and ``xr.tutorial`` replaced by a local dataset; once on a
``distributed`` cluster of worker processes and once with threads."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dask
import dask.array
import numpy as np
import pytest
import xarray as xr
import zarr
from distributed import Client, LocalCluster

import icechunk
import icechunk.dask
import icechunk.xarray
from icechunk import Repository, Session, local_filesystem_storage
from icechunk.distributed import merge_sessions
from tests.datasets import open_rasm


@pytest.fixture(scope="module", params=["processes", "threads"])
def client(request: pytest.FixtureRequest) -> Iterator[Client]:
    processes = request.param == "processes"
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=processes, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


def test_dask_section(client: Client, tmp_path: Path) -> None:
    storage = icechunk.local_filesystem_storage(str(tmp_path / "icechunk-xarray"))
    icechunk_repo = icechunk.Repository.create(storage)
    icechunk_session = icechunk_repo.writable_session("main")

    shape = (100, 100)
    dask_chunks = (20, 20)
    dask_array = dask.array.random.random(shape, chunks=dask_chunks)

    zarr_chunks = (10, 10)
    group = zarr.group(store=icechunk_session.store, overwrite=True)
    zarray = group.create_array(
        "array", shape=shape, chunks=zarr_chunks, dtype="f8", fill_value=float("nan")
    )

    icechunk.dask.store_dask(icechunk_session, sources=[dask_array], targets=[zarray])
    icechunk_session.commit("wrote a dask array!")

    back = zarr.open_array(icechunk_repo.readonly_session("main").store, path="array", mode="r")
    np.testing.assert_array_equal(back[:], dask_array.compute())


def test_xarray_simple_section(client: Client, tmp_path: Path) -> None:
    repo = Repository.create(local_filesystem_storage(str(tmp_path / "repo")))
    icechunk_session = repo.writable_session("main")

    dataset = open_rasm(chunks={"time": 1}).isel(time=slice(24))
    icechunk.xarray.to_icechunk(dataset, store=icechunk_session.store)

    roundtripped = xr.open_zarr(icechunk_session.store, consolidated=False)
    assert dataset.identical(roundtripped)

    icechunk_session.commit("wrote an Xarray dataset!")
    ondisk = xr.open_zarr(repo.readonly_session("main").store, consolidated=False)
    xr.testing.assert_identical(dataset, ondisk)


def test_xarray_distributed_section(client: Client) -> None:
    ds = open_rasm().isel(time=slice(24))
    repo = Repository.create(local_filesystem_storage(tempfile.mkdtemp()))
    session = repo.writable_session("main")

    chunks = tuple(1 if dim == "time" else ds.sizes[dim] for dim in ds.Tair.dims)
    ds.to_zarr(session.store, compute=False, encoding={"Tair": {"chunks": chunks}}, mode="w")
    session.commit("initialize store")

    def write_timestamp(*, itime: int, session: Session) -> Session:
        ds = open_rasm().isel(time=[itime])
        ds.to_zarr(session.store, region="auto", consolidated=False)
        return session

    session = repo.writable_session("main")
    with ThreadPoolExecutor() as executor:
        futures = [
            executor.submit(write_timestamp, itime=i, session=session)
            for i in range(ds.sizes["time"])
        ]
        sessions = [f.result() for f in futures]

    session = merge_sessions(session, *sessions)
    session.commit("finished writes")

    ondisk = xr.open_zarr(repo.readonly_session(branch="main").store, consolidated=False)
    xr.testing.assert_identical(ds, ondisk)
