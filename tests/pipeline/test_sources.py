"""Any xarray source: files by glob (``open_mfdataset``), a Zarr store written by plain zarr, an
opener function; ingested and appended by the flows on the Dask task runner, read back
identical. The real netCDF files in ``../shared/data`` are the data."""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
import zarr

from flows import append, ingest
from icechunk import InvalidInputError
from tasks.sources import XarraySource, source_fingerprint, source_from_spec
from tests.pipeline.conftest import DATA
from tests.pipeline.helpers import messages, read_dataset

ERAINT = DATA / "eraint_uvz.nc"
BASIN = DATA / "basin_mask.nc"


def split_months(tmp_path: Path) -> list[Path]:
    """ERA-Interim's two months as two files, bytes as stored (packed int16), minus the
    NaN ``_FillValue`` of its integer variables (a defect of the file; see NetCDFSource)."""
    paths = []
    tmp_path.mkdir(parents=True, exist_ok=True)
    with xr.open_dataset(ERAINT, decode_cf=False) as ds:
        for var in ds.variables.values():
            if var.dtype.kind == "i" and np.isnan(var.attrs.get("_FillValue", 0.0)):
                del var.attrs["_FillValue"]
        for i in range(ds.sizes["month"]):
            path = tmp_path / f"era-{i}.nc"
            ds.isel(month=[i]).to_netcdf(path)
            paths.append(path)
    return paths


@pytest.mark.usefixtures("prefect_harness")
def test_files_by_glob_ingest_then_append_when_a_file_arrives(
    tmp_path: Path, task_runner: Any
) -> None:
    _first, second = split_months(tmp_path / "files")
    pending = second.with_suffix(".later")
    second.rename(pending)  # only the first month exists yet
    source = XarraySource.from_files(str(tmp_path / "files" / "era-*.nc"), dim="month")
    repo = tmp_path / "repo"
    ingest.with_options(task_runner=task_runner)(source, str(repo), chunks_per_region=1)
    assert read_dataset(repo).sizes["month"] == 1
    fingerprint = source_fingerprint(source)
    pending.rename(second)  # the next file lands
    assert source_fingerprint(source) != fingerprint
    snapshot = append.with_options(task_runner=task_runner)(source, str(repo))
    assert snapshot is not None
    assert messages(repo)[0].startswith("append 1 month steps")
    with xr.open_dataset(ERAINT) as expected:
        xr.testing.assert_identical(read_dataset(repo), expected.load())
    # nothing new: no commit
    assert append.with_options(task_runner=task_runner)(source, str(repo)) is None


def plain_zarr_store(path: Path, ntime: int) -> None:
    """A Zarr v3 store written with zarr alone (dimension names, CF time units)."""
    root = zarr.open_group(str(path), mode="a")
    rng = np.random.default_rng(1)
    if "temperature" not in root:
        time = root.create_array(
            "time", shape=(0,), chunks=(8,), dtype="int64", dimension_names=["time"]
        )
        time.attrs.update({"units": "days since 2000-01-01", "calendar": "proleptic_gregorian"})
        y = root.create_array("y", shape=(5,), chunks=(5,), dtype="float64", dimension_names=["y"])
        y[:] = np.linspace(0, 1, 5)
        temp = root.create_array(
            "temperature",
            shape=(0, 5, 7),
            chunks=(2, 5, 7),
            dtype="float32",
            dimension_names=["time", "y", "x"],
            fill_value=np.nan,
        )
        temp.attrs["units"] = "K"
    time, temp = root["time"], root["temperature"]
    old = time.shape[0]
    time.resize((ntime,))
    temp.resize((ntime, 5, 7))
    time[old:] = np.arange(old, ntime)
    temp[old:] = rng.normal(280, 5, (ntime - old, 5, 7)).astype("float32")


@pytest.mark.usefixtures("prefect_harness")
def test_zarr_store_written_by_plain_zarr(tmp_path: Path, task_runner: Any) -> None:
    store = tmp_path / "plain.zarr"
    plain_zarr_store(store, 6)
    source = XarraySource.from_zarr(str(store), dim="time")
    assert source_from_spec({"kind": "zarr", "path": str(store), "dim": "time"}).describe() == (
        source.describe()
    )
    repo = tmp_path / "repo"
    ingest.with_options(task_runner=task_runner)(
        source, str(repo), chunks={"time": 2}, chunks_per_region=1
    )
    xr.testing.assert_identical(read_dataset(repo), xr.open_zarr(store, consolidated=False).load())
    plain_zarr_store(store, 11)  # the store grows
    append.with_options(task_runner=task_runner)(source, str(repo))
    stored = read_dataset(repo)
    assert stored.sizes["time"] == 11
    xr.testing.assert_identical(stored, xr.open_zarr(store, consolidated=False).load())


@pytest.mark.usefixtures("prefect_harness")
def test_opener_function_and_the_schema_check(tmp_path: Path, task_runner: Any) -> None:
    source = XarraySource(open=functools.partial(xr.open_dataset, BASIN), dim="Z")
    repo = tmp_path / "repo"
    ingest.with_options(task_runner=task_runner)(source, str(repo), chunks_per_region=2)
    with xr.open_dataset(BASIN) as expected:
        xr.testing.assert_identical(read_dataset(repo), expected.load())
    # another dataset into the same repository is refused, naming the differences
    store = tmp_path / "plain.zarr"
    plain_zarr_store(store, 4)
    with pytest.raises(InvalidInputError, match="different dataset"):
        ingest.with_options(task_runner=task_runner)(XarraySource.from_zarr(str(store)), str(repo))


def test_bad_sources_are_refused_clearly(tmp_path: Path) -> None:
    lock = threading.Lock()
    with pytest.raises(InvalidInputError, match="cannot be pickled"):
        XarraySource(open=lambda: lock)  # type: ignore[arg-type,return-value]
    with pytest.raises(InvalidInputError, match="needs a callable"):
        XarraySource(open="data.nc")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="no files match"):
        XarraySource.from_files(str(tmp_path / "nothing-*.nc")).coordinate()
    wrong_dim = XarraySource(open=functools.partial(xr.open_dataset, BASIN), dim="time")
    with pytest.raises(InvalidInputError, match="no dimension 'time'"):
        wrong_dim.coordinate()
    spec = {"kind": "files", "pattern": str(ERAINT), "dim": "month"}
    assert source_from_spec(spec).coordinate().tolist() == [1, 7]
