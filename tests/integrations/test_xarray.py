"""``icechunk.xarray.to_icechunk`` under a ``distributed`` cluster of worker processes:
round trips of real netCDF files and of synthetic datasets, region writes from separate
processes through forks, appends along two dimensions in one session, the write modes, and the
``compute=False`` template workflow. Every check reads back the committed snapshot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from icechunk import Repository, Session, local_filesystem_storage
from icechunk.distributed import merge_sessions
from icechunk.xarray import to_icechunk
from tests.datasets import BASIN_MASK, ERAINT, rasm_like
from tests.integrations._workers import write_slice_region, write_time_region

# Opening the ERA-Interim file: its packed int16 variables carry a NaN _FillValue that xarray
# drops with this warning; the tests give them a valid one when writing.
pytestmark = pytest.mark.filterwarnings(
    "ignore:variable '[zuv]' has non-conforming '_FillValue':xarray.SerializationWarning"
)


@pytest.fixture(autouse=True)
def client(dask_client: Any) -> Iterator[Any]:
    """Every test here runs its dask work on the shared 2-process cluster."""
    yield dask_client


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.create(local_filesystem_storage(str(tmp_path / "repo")))


def _committed(repo: Repository, group: str | None = None, **kwargs: Any) -> xr.Dataset:
    return xr.open_zarr(
        repo.readonly_session("main").store, group=group, consolidated=False, **kwargs
    )


def _chunk_count(repo: Repository, path: str) -> int:
    return len(list(repo.readonly_session("main").chunk_coordinates(path)))


# -- round trips ------------------------------------------------------------------------------


def test_roundtrip_eraint(repo: Repository) -> None:
    with xr.open_dataset(ERAINT) as source:
        ds = source.chunk({"month": 1, "level": 1})
        for v in ("z", "u", "v"):
            ds[v].encoding["_FillValue"] = np.int16(-32767)
        session = repo.writable_session("main")
        to_icechunk(ds, session)
        session.commit("era-interim")
        back = _committed(repo)
        xr.testing.assert_identical(back, ds)
        assert back.z.encoding["dtype"] == np.dtype("int16")  # still packed
        assert back.z.encoding["scale_factor"] == ds.z.encoding["scale_factor"]
        assert back.z.encoding["chunks"] == (1, 1, 241, 480)
        assert _chunk_count(repo, "/z") == 6


def test_roundtrip_basin_mask(repo: Repository) -> None:
    with xr.open_dataset(BASIN_MASK) as source:
        ds = source.chunk({"Z": 11, "X": 180})
        session = repo.writable_session("main")
        to_icechunk(ds, session, group="ocean/basins")
        session.commit("basins")
        back = _committed(repo, "ocean/basins")
        xr.testing.assert_identical(back, ds)
        assert back.basin.encoding["dtype"] == np.dtype("int8")
        assert back.basin.encoding["missing_value"] == -100
        assert _chunk_count(repo, "/ocean/basins/basin") == 6
        # numpy-backed (not chunked) too, into the same session's other group
        session = repo.writable_session("main")
        to_icechunk(source.load(), session, group="eager")
        session.commit("eager")
        xr.testing.assert_identical(_committed(repo, "eager"), ds)


def synthetic() -> xr.Dataset:
    """Many dtypes, fill values, packing, attributes and 0-d variables."""
    rng = np.random.default_rng(1)
    t = pd.date_range("2000-01-01", periods=6, freq="D")
    ds = xr.Dataset(
        {
            "i1": (("t", "x"), rng.integers(-100, 100, (6, 4)).astype("i1")),
            "u2": (("t", "x"), rng.integers(0, 1000, (6, 4)).astype("u2")),
            "i8": (("t",), np.arange(6, dtype="i8"), {"units": "count"}),
            "f4": (("t", "x"), rng.normal(size=(6, 4)).astype("f4")),
            "f8": (("t", "x"), np.where(rng.random((6, 4)) > 0.5, np.nan, 1.5)),
            "flag": (("t", "x"), rng.random((6, 4)) > 0.5),
            "when": (("t",), t + pd.Timedelta("3h")),
            "lag": (("t",), pd.to_timedelta(np.arange(6), unit="h")),
            "name": (("x",), np.array(["a", "bb", "ccc", ""], dtype="U3")),
            "packed": (("t",), np.arange(6) * 0.25),
            "c16": (("x",), np.arange(4) + 1j),
            "scalar": ((), 3.5, {"note": "0-d"}),
            "scalar_i": ((), np.int32(7)),
        },
        coords={"t": t, "x": np.arange(4) * 10, "label": ("x", ["p", "q", "r", "s"])},
        attrs={
            "title": "synthetic",
            "nested": {"a": [1, 2, 3], "b": {"c": "d"}},
            "flag": True,
            "list": [1.5, 2.5],
        },
    )
    ds["u2"].encoding = {"_FillValue": 9999}
    ds["f4"].encoding = {"_FillValue": -1.0, "chunks": (3, 2)}
    ds["packed"].encoding = {"dtype": "i2", "scale_factor": 0.25, "_FillValue": -32768}
    return ds


@pytest.mark.parametrize("backing", ["numpy", "dask", "mixed"])
def test_roundtrip_synthetic(
    repo: Repository, backing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = synthetic()
    if backing == "dask":
        ds = ds.chunk({"t": 3, "x": 2})
    elif backing == "mixed":
        ds = ds.chunk({"t": 3, "x": 2})
        for name in ("name", "when", "scalar", "c16"):
            ds[name] = ds[name].load()
    else:
        # numpy-backed variables are written directly, without forking the session
        def no_fork(self: Session) -> None:
            raise AssertionError("to_icechunk forked for numpy data")

        monkeypatch.setattr(Session, "fork", no_fork)
    session = repo.writable_session("main")
    to_icechunk(ds, session, group="syn")
    session.commit("synthetic")
    back = _committed(repo, "syn")
    xr.testing.assert_identical(back, ds)
    assert back.u2.encoding["_FillValue"] == 9999
    assert back.f4.encoding["chunks"] == (3, 2)
    assert back.packed.encoding["dtype"] == np.dtype("i2")
    assert back.scalar.shape == ()


@pytest.mark.parametrize("name", [None, "temperature", "t"])
def test_roundtrip_dataarray(repo: Repository, name: str | None) -> None:
    da = synthetic()["f8"].chunk({"t": 2}).rename(name)
    session = repo.writable_session("main")
    to_icechunk(da, session, group="da")
    session.commit("dataarray")
    back = xr.open_dataarray(
        repo.readonly_session("main").store, group="da", engine="zarr", consolidated=False
    )
    xr.testing.assert_identical(back, da)


def test_roundtrip_before_commit_and_split_every(repo: Repository) -> None:
    ds = rasm_like(ntime=12).chunk({"time": 1, "y": 10})
    session = repo.writable_session("main")
    to_icechunk(ds, session, split_every=2)
    assert ds.identical(xr.open_zarr(session.store, consolidated=False))  # uncommitted
    session.commit("rasm")
    xr.testing.assert_identical(_committed(repo), ds)
    assert _chunk_count(repo, "/Tair") == 24


def test_chunkmanager_store_kwargs_reach_dask(repo: Repository) -> None:
    ds = rasm_like(ntime=4).chunk({"time": 1})
    session = repo.writable_session("main")
    # the distributed client is the default scheduler here; this runs on local threads
    to_icechunk(ds, session, chunkmanager_store_kwargs={"scheduler": "threads"})
    with pytest.raises(TypeError, match="compute"):
        to_icechunk(ds, session, mode="w", chunkmanager_store_kwargs={"compute": False})
    session.commit("threads")
    xr.testing.assert_identical(_committed(repo), ds)


# -- region writes from separate processes -----------------------------------------------------


@pytest.mark.parametrize("how", ["to_icechunk", "to_zarr"])
@pytest.mark.parametrize("commit_template", [True, False], ids=["committed", "dirty"])
def test_region_writes_from_worker_processes(
    repo: Repository, client: Any, how: str, commit_template: bool
) -> None:
    ntime = 6
    ds = rasm_like(ntime=ntime)
    session = repo.writable_session("main")
    to_icechunk(
        ds.chunk({"time": 1}), session, group="rasm", compute=False, encoding={}
    )  # template: metadata and the numpy coordinates only
    assert "/rasm/Tair" not in session.status().updated_chunks
    if commit_template:
        session.commit("template")
        session = repo.writable_session("main")
    futures = [
        client.submit(write_time_region, session.fork(), i, how, "rasm", ntime, pure=False)
        for i in range(ntime)
    ]
    forks = client.gather(futures)
    assert len({id(f) for f in forks}) == ntime
    merge_sessions(session, *forks)
    session.commit("regions")
    xr.testing.assert_identical(_committed(repo, "rasm"), ds)
    assert _chunk_count(repo, "/rasm/Tair") == ntime


def test_explicit_slice_regions_from_processes(repo: Repository, client: Any) -> None:
    ds = rasm_like()
    session = repo.writable_session("main")
    ds.to_zarr(
        session.store,
        compute=False,
        encoding={"Tair": {"chunks": (1, 20, 30)}},
        mode="w",
        consolidated=False,
    )
    session.commit("initialize store")
    session = repo.writable_session("main")
    fork = session.fork()
    forks = client.gather([client.submit(write_slice_region, fork, i) for i in range(24)])
    session.merge(*forks)
    session.commit("finished writes")
    xr.testing.assert_identical(_committed(repo), ds)


def test_compute_false_template_then_region_fills(repo: Repository) -> None:
    ds = rasm_like(ntime=4)
    session = repo.writable_session("main")
    # only Tair is chunked: dask-backed coordinates would be left for the region writes too
    to_icechunk(ds.assign(Tair=ds.Tair.chunk({"time": 2})), session, compute=False)
    session.commit("template")
    template = _committed(repo)
    assert _chunk_count(repo, "/Tair") == 0
    assert np.isnan(template.Tair.values).all()
    xr.testing.assert_identical(template.time, ds.time)  # numpy coordinates were written
    xr.testing.assert_identical(template.xc, ds.xc)

    session = repo.writable_session("main")
    to_icechunk(ds.isel(time=slice(0, 2)).chunk({"time": 2}), session, region="auto")
    to_icechunk(
        ds[["Tair"]].drop_vars(["xc", "yc"]).isel(time=slice(2, 4)),
        session,
        region={"time": slice(2, 4)},
    )
    session.commit("filled")
    xr.testing.assert_identical(_committed(repo), ds)


# -- appends -----------------------------------------------------------------------------------


def _grid(x: range, y: range) -> xr.Dataset:
    xs, ys = np.meshgrid(np.array(x), np.array(y), indexing="ij")
    return xr.Dataset(
        {"v": (("x", "y"), (xs * 100 + ys).astype("f8")), "w": (("x",), np.array(x) * 1.0)},
        coords={"x": np.array(x), "y": np.array(y)},
    )


def test_append_along_two_dimensions_in_one_session(repo: Repository) -> None:
    """Regression of real icechunk #1006: two appends along different dimensions, both
    through dask and forks, before a single commit."""
    encoding = {"v": {"chunks": (2, 2)}, "w": {"chunks": (2,)}}
    session = repo.writable_session("main")
    to_icechunk(_grid(range(4), range(4)).chunk(2), session, encoding=encoding)
    session.commit("4x4")

    session = repo.writable_session("main")
    to_icechunk(_grid(range(4, 8), range(4)).chunk(2), session, append_dim="x")
    to_icechunk(_grid(range(8), range(4, 10)).drop_vars("w").chunk(2), session, append_dim="y")
    to_icechunk(_grid(range(8, 10), range(10)).chunk(2), session, append_dim="x")
    session.commit("appended along x, y, x")
    xr.testing.assert_identical(_committed(repo), _grid(range(10), range(10)))
    assert _chunk_count(repo, "/v") == 25


def test_append_mode_a_minus_keeps_other_variables(repo: Repository) -> None:
    ds = rasm_like(ntime=4).chunk({"time": 2})
    session = repo.writable_session("main")
    to_icechunk(ds, session)
    more = rasm_like(ntime=8).isel(time=slice(4, 8)).chunk({"time": 2})
    changed = more.assign_coords(xc=more.xc + 1)  # not along time
    to_icechunk(changed, session, append_dim="time", mode="a-")
    session.commit("a-")
    back = _committed(repo)
    xr.testing.assert_identical(back, rasm_like(ntime=8))  # xc untouched

    session = repo.writable_session("main")
    to_icechunk(changed.isel(time=[0]), session, append_dim="time", mode="a")
    session.commit("a")
    back = _committed(repo)
    assert back.sizes["time"] == 9
    np.testing.assert_array_equal(back.xc.values, more.xc.values + 1)  # "a" overwrites


# -- modes -------------------------------------------------------------------------------------


def test_write_modes(repo: Repository) -> None:
    first = xr.Dataset({"a": ("x", np.arange(4.0)), "b": ("x", np.ones(4))}).chunk(2)
    session = repo.writable_session("main")
    to_icechunk(first, session, group="g")  # default mode w-
    with pytest.raises(FileExistsError):  # w- on an existing group
        to_icechunk(first, session, group="g")
    with pytest.raises(FileExistsError):
        to_icechunk(first, session, group="g", mode="w-")
    session.commit("first")

    # "a": add a variable, overwrite another
    session = repo.writable_session("main")
    to_icechunk(
        xr.Dataset({"a": ("x", np.arange(4.0) * 2), "c": ("x", np.zeros(4))}).chunk(2),
        session,
        group="g",
        mode="a",
    )
    session.commit("a")
    back = _committed(repo, "g")
    assert sorted(back.data_vars) == ["a", "b", "c"]
    np.testing.assert_array_equal(back.a.values, np.arange(4.0) * 2)

    # "r+": only existing variables, no resizing
    session = repo.writable_session("main")
    with pytest.raises(ValueError, match="r\\+"):
        to_icechunk(xr.Dataset({"new": ("x", np.zeros(4))}), session, group="g", mode="r+")
    with pytest.raises(ValueError):
        to_icechunk(xr.Dataset({"a": ("x", np.zeros(6))}).chunk(2), session, group="g", mode="r+")
    to_icechunk(xr.Dataset({"b": ("x", np.full(4, 5.0))}).chunk(2), session, group="g", mode="r+")
    session.commit("r+")
    np.testing.assert_array_equal(_committed(repo, "g").b.values, 5.0)

    # "w": replace the whole group
    session = repo.writable_session("main")
    to_icechunk(xr.Dataset({"d": ("y", np.arange(3))}).chunk(1), session, group="g", mode="w")
    session.commit("w")
    back = _committed(repo, "g")
    assert list(back.data_vars) == ["d"]
    assert sorted(
        p for p, _ in repo.readonly_session("main").list_nodes() if p.startswith("/g/")
    ) == ["/g/d"]


def test_mode_validation(repo: Repository) -> None:
    session = repo.writable_session("main")
    ds = xr.Dataset({"a": ("x", np.arange(4.0))})
    with pytest.raises(ValueError, match="append_dim"):
        to_icechunk(ds, session, mode="w", append_dim="x")
    with pytest.raises(ValueError, match="region"):
        to_icechunk(ds, session, mode="w", region="auto")
    with pytest.raises(ValueError, match="mode"):
        to_icechunk(ds, session, mode="r")
    with pytest.raises(TypeError):
        to_icechunk(ds, session, compute=True, bogus=1)  # type: ignore[call-arg]


def test_safe_and_align_chunks(repo: Repository) -> None:
    ds = xr.Dataset({"a": ("x", np.arange(12.0))}).chunk({"x": (3, 3, 3, 3)})
    encoding = {"a": {"chunks": (2,)}}
    session = repo.writable_session("main")
    with pytest.raises(ValueError, match="chunk"):
        to_icechunk(ds, session, encoding=encoding)  # dask chunks straddle zarr chunks
    to_icechunk(ds, session, encoding=encoding, mode="w", align_chunks=True)
    session.commit("aligned")
    xr.testing.assert_identical(_committed(repo), ds)
