"""Where ingested data comes from: picklable descriptions that load one region at a time.

A source never travels as data: each write task receives the (small) source description and
loads only its own region, so arrays move through Zarr/Icechunk, not through Prefect or Dask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["DatasetSource", "NetCDFSource", "SyntheticWeatherSource", "source_from_spec"]


class DatasetSource(Protocol):
    """What the pipeline needs from a source of data."""

    @property
    def dim(self) -> str:
        """The dimension regions are cut along (and appends extend), usually ``time``."""
        ...

    def describe(self) -> str:
        """A short human-readable description, recorded in commit metadata."""
        ...

    def coordinate(self) -> np.ndarray:
        """All values of ``dim`` the source holds, in order."""
        ...

    def load(self, start: int, stop: int) -> xr.Dataset:
        """The source's dataset restricted to ``dim`` positions ``[start, stop)``, in memory."""
        ...


@dataclass(frozen=True)
class SyntheticWeatherSource:
    """A realistic gridded weather dataset generated on the fly (no files needed).

    Variables ``t2m`` (K), ``u10``/``v10`` (m s-1) and ``tp`` (mm) on ``(time, lat, lon)``
    (float32). Every time step is a deterministic function of its index, so any region can be
    generated independently, in any process, and a re-run produces identical bytes.
    """

    ntime: int = 48
    nlat: int = 90
    nlon: int = 180
    start: str = "2024-01-01"
    freq: str = "6h"
    seed: int = 0
    dim: str = "time"

    def describe(self) -> str:
        return (
            f"synthetic weather {self.ntime}x{self.nlat}x{self.nlon} from {self.start} "
            f"every {self.freq} (seed {self.seed})"
        )

    def coordinate(self) -> np.ndarray:
        return pd.date_range(self.start, periods=self.ntime, freq=self.freq).values

    def load(self, start: int, stop: int) -> xr.Dataset:
        stop = min(stop, self.ntime)
        lat = np.linspace(89.0, -89.0, self.nlat, dtype="float32")
        lon = np.linspace(-179.0, 179.0, self.nlon, dtype="float32")
        times = self.coordinate()[start:stop]
        shape = (stop - start, self.nlat, self.nlon)
        t2m = np.empty(shape, dtype="float32")
        u10 = np.empty(shape, dtype="float32")
        v10 = np.empty(shape, dtype="float32")
        tp = np.empty(shape, dtype="float32")
        base = 288.0 - 40.0 * np.sin(np.deg2rad(np.abs(lat)))[:, None]
        for k, i in enumerate(range(start, stop)):
            rng = np.random.default_rng([self.seed, i])
            phase = 2 * np.pi * i / 4.0
            t2m[k] = (
                base
                + 5 * np.cos(phase + np.deg2rad(lon))[None, :]
                + rng.normal(0, 1, (self.nlat, self.nlon))
            )
            u10[k] = rng.normal(0, 5, (self.nlat, self.nlon))
            v10[k] = rng.normal(0, 5, (self.nlat, self.nlon))
            tp[k] = np.maximum(rng.gamma(0.3, 2.0, (self.nlat, self.nlon)) - 0.2, 0)
        dims = ("time", "lat", "lon")
        return xr.Dataset(
            {
                "t2m": (dims, t2m, {"units": "K", "long_name": "2 metre temperature"}),
                "u10": (dims, u10, {"units": "m s-1", "long_name": "10 metre U wind"}),
                "v10": (dims, v10, {"units": "m s-1", "long_name": "10 metre V wind"}),
                "tp": (dims, tp, {"units": "mm", "long_name": "total precipitation"}),
            },
            coords={
                "time": ("time", times),
                "lat": ("lat", lat, {"units": "degrees_north"}),
                "lon": ("lon", lon, {"units": "degrees_east"}),
            },
            attrs={"title": "icechunk-prefect synthetic weather", "source": self.describe()},
        )


@dataclass(frozen=True)
class NetCDFSource:
    """One or more netCDF files (concatenated along ``dim``)."""

    paths: Sequence[str]
    dim: str = "time"
    drop_variables: tuple[str, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        return "netCDF " + ", ".join(Path(p).name for p in self.paths)

    def _open(self) -> xr.Dataset:
        datasets = [self._open_one(p) for p in self.paths]
        if len(datasets) == 1:
            return datasets[0]
        return xr.concat(datasets, dim=self.dim)

    def _open_one(self, path: str) -> xr.Dataset:
        """``xr.open_dataset``, minus one common CF defect: packed integer variables with a
        NaN ``_FillValue`` (ERA-Interim files have them). No integer equals NaN, so the
        attribute masks nothing; xarray drops it too, but warns on every open, and a source
        is opened once per region."""
        raw = xr.open_dataset(
            path, decode_cf=False, drop_variables=list(self.drop_variables) or None
        )
        for var in raw.variables.values():
            fill = var.attrs.get("_FillValue")
            if var.dtype.kind in "iu" and isinstance(fill, float) and np.isnan(fill):
                del var.attrs["_FillValue"]
        return xr.decode_cf(raw)

    def coordinate(self) -> np.ndarray:
        with self._open() as ds:
            return np.asarray(ds[self.dim].values)

    def load(self, start: int, stop: int) -> xr.Dataset:
        with self._open() as ds:
            return ds.isel({self.dim: slice(start, stop)}).load()

    def encoding_hints(self) -> dict[str, Any]:
        return {}


def source_from_spec(spec: Any) -> DatasetSource:
    """A source from a JSON-friendly spec (as deployments pass it), or the source itself.

    ``{"kind": "synthetic", "ntime": 48, ...}`` or ``{"kind": "netcdf", "paths": [...],
    "dim": "time"}``.
    """
    if not isinstance(spec, dict):
        return spec  # type: ignore[no-any-return]
    options = dict(spec)
    kind = options.pop("kind", None)
    if kind == "synthetic":
        return SyntheticWeatherSource(**options)
    if kind == "netcdf":
        options["paths"] = tuple(options["paths"])
        return NetCDFSource(**options)
    raise ValueError(f"unknown source kind {kind!r}: use 'synthetic' or 'netcdf'")
