"""Datasets for tests: a synthetic stand-in for xarray's "rasm" tutorial dataset, and the
real netCDF files in ``../shared/data`` (there is no internet here for ``xr.tutorial``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ERAINT = SHARED_DATA / "eraint_uvz.nc"
BASIN_MASK = SHARED_DATA / "basin_mask.nc"


def rasm_like(ntime: int = 24, ny: int = 20, nx: int = 30) -> xr.Dataset:
    """A dataset shaped like the ``rasm`` tutorial dataset: monthly ``Tair`` on a 2-d grid."""
    rng = np.random.default_rng(0)
    time = pd.date_range("1980-09-16", periods=ntime, freq="MS")
    tair = rng.normal(5, 10, size=(ntime, ny, nx))
    tair[:, :2, :3] = np.nan  # land points, as in rasm
    yc, xc = np.meshgrid(np.linspace(16, 80, ny), np.linspace(189, 300, nx), indexing="ij")
    return xr.Dataset(
        {
            "Tair": (
                ("time", "y", "x"),
                tair,
                {"units": "C", "long_name": "air_temperature", "type_preferred": "double"},
            )
        },
        coords={
            "time": time,
            "xc": (("y", "x"), xc, {"long_name": "longitude of grid cell center"}),
            "yc": (("y", "x"), yc, {"long_name": "latitude of grid cell center"}),
        },
        attrs={"title": "rasm-like test data", "Conventions": "CF-1.4"},
    )


def open_rasm(chunks: dict[str, int] | None = None) -> xr.Dataset:
    """Stand-in for ``xr.tutorial.open_dataset("rasm", chunks=...)``."""
    ds = rasm_like()
    return ds.chunk(chunks) if chunks else ds
