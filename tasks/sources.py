"""Where ingested data comes from: picklable descriptions that load one region at a time.

A source never travels as data: each write task receives the (small) source description and
loads only its own region, so arrays move through Zarr/Icechunk, not through Prefect or Dask.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cloudpickle
import dask
import numpy as np
import pandas as pd
import xarray as xr

from icechunk import InvalidInputError

__all__ = [
    "DatasetSource",
    "NetCDFSource",
    "SyntheticWeatherSource",
    "XarraySource",
    "source_fingerprint",
    "source_from_spec",
]


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


def _digest(*parts: object) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else repr(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _files_digest(paths: Sequence[str]) -> list[tuple[str, int, int]]:
    """Path, size and modification time of each file: a change to any shows."""
    out = []
    for p in paths:
        st = os.stat(p)
        out.append((str(Path(p).absolute()), st.st_size, st.st_mtime_ns))
    return out


def source_fingerprint(source: DatasetSource) -> str:
    """A short digest identifying the source's content, recorded with every data commit.

    Uses ``source.fingerprint()`` when the source has one; otherwise a digest of its
    description and of its coordinate along ``dim``.
    """
    own = getattr(source, "fingerprint", None)
    if callable(own):
        return str(own())
    coords = np.asarray(source.coordinate())
    return _digest(source.describe(), source.dim, str(coords.dtype), coords.tobytes())


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

    def fingerprint(self) -> str:
        return _digest("synthetic", self)

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

    def fingerprint(self) -> str:
        return _digest("netcdf", self.dim, self.drop_variables, _files_digest(self.paths))

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


def _open_files(
    pattern: tuple[str, ...], dim: str, kwargs: tuple[tuple[str, Any], ...]
) -> xr.Dataset:
    paths = _expand(pattern)
    options = {"combine": "nested", "concat_dim": dim, **dict(kwargs)}
    if options.get("combine") == "by_coords":
        options.pop("concat_dim")
    return xr.open_mfdataset(paths, **options)


def _open_zarr(path: str, kwargs: tuple[tuple[str, Any], ...]) -> xr.Dataset:
    return xr.open_zarr(path, **{"consolidated": False, **dict(kwargs)})


def _expand(pattern: tuple[str, ...]) -> list[str]:
    """The files matching the glob patterns, sorted (so new files must sort after old ones)."""
    paths = sorted({p for pat in pattern for p in (glob.glob(pat) or [])})
    if not paths:
        raise InvalidInputError(
            f"no files match {list(pattern)}: check the path and the glob pattern"
        )
    return paths


@dataclass(frozen=True)
class XarraySource:
    """Anything ``xarray`` can open: an opener function, files by glob, a Zarr store.

    ``open`` is called (in the flow process and on each Dask worker) to get the dataset,
    lazily; each region loads only its own positions along ``dim``. It must be picklable
    (a module-level function or a :func:`functools.partial` of one; cloudpickle also takes
    lambdas and closures whose captured values pickle) and return the same dataset every
    time, growing only at the end along ``dim`` for appends.

    Use the constructors for the common cases::

        XarraySource(open=my_opener, dim="time")           # any function returning a Dataset
        XarraySource.from_files("/data/era5/*.nc", dim="time")   # open_mfdataset
        XarraySource.from_zarr("/data/store.zarr", dim="time")   # open_zarr

    Parameters
    ----------
    open
        Zero-argument callable returning an ``xarray.Dataset``.
    dim
        The dimension regions are cut along and appends extend.
    name
        A short description for commit metadata (default: the opener's name).
    files
        For :meth:`from_files`: the glob patterns, so the fingerprint follows the files'
        sizes and modification times.
    """

    open: Callable[[], xr.Dataset]
    dim: str = "time"
    name: str | None = None
    files: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not callable(self.open):
            raise InvalidInputError(
                f"XarraySource(open=...) needs a callable returning a Dataset, got "
                f"{type(self.open).__name__}"
            )
        try:
            cloudpickle.dumps(self.open)
        except Exception as e:
            raise InvalidInputError(
                f"the opener {self.open!r} cannot be pickled ({type(e).__name__}: {e}); "
                "Dask workers call it, so define it at module level (or use "
                "functools.partial of such a function) and capture only picklable values"
            ) from e

    @classmethod
    def from_files(
        cls, pattern: str | Sequence[str], *, dim: str = "time", **open_mfdataset_kwargs: Any
    ) -> XarraySource:
        """Files matching ``pattern`` (a glob, or several), opened with
        ``xarray.open_mfdataset`` and concatenated along ``dim`` in sorted path order."""
        patterns = (pattern,) if isinstance(pattern, str) else tuple(pattern)
        patterns = tuple(str(Path(p).expanduser()) for p in patterns)
        kwargs = tuple(sorted(open_mfdataset_kwargs.items()))
        opener = functools.partial(_open_files, patterns, dim, kwargs)
        return cls(open=opener, dim=dim, name="files " + ", ".join(patterns), files=patterns)

    @classmethod
    def from_zarr(cls, path: str, *, dim: str = "time", **open_zarr_kwargs: Any) -> XarraySource:
        """A Zarr store (v2 or v3) opened with ``xarray.open_zarr`` (``consolidated=False``
        unless given: stores written by plain zarr usually have no consolidated metadata)."""
        kwargs = tuple(sorted(open_zarr_kwargs.items()))
        return cls(
            open=functools.partial(_open_zarr, str(path), kwargs), dim=dim, name=f"zarr {path}"
        )

    def describe(self) -> str:
        if self.name:
            return self.name
        func = getattr(self.open, "func", self.open)
        return f"xarray {getattr(func, '__qualname__', type(func).__name__)}"

    def fingerprint(self) -> str:
        coords = self.coordinate()
        parts: list[object] = [self.describe(), self.dim, str(coords.dtype), coords.tobytes()]
        if self.files:
            parts.append(_files_digest(_expand(self.files)))
        return _digest("xarray", *parts)

    def _dataset(self) -> xr.Dataset:
        ds = self.open()
        if not isinstance(ds, xr.Dataset):
            raise InvalidInputError(
                f"the opener of {self.describe()} returned {type(ds).__name__}, not a Dataset"
            )
        if self.dim not in ds.dims:
            raise InvalidInputError(
                f"{self.describe()} has no dimension {self.dim!r} (it has {sorted(map(str, ds.dims))}); "
                "pass dim= the dimension to append along"
            )
        return ds

    def coordinate(self) -> np.ndarray:
        ds = self._dataset()
        try:
            if self.dim in ds.variables:
                with dask.config.set(scheduler="synchronous"):
                    return np.asarray(ds[self.dim].values)
            return np.arange(ds.sizes[self.dim])
        finally:
            ds.close()

    def load(self, start: int, stop: int) -> xr.Dataset:
        ds = self._dataset()
        try:
            # the region is loaded in this process: inside a Dask worker, the default
            # scheduler would be the cluster itself, and a task waiting on tasks deadlocks
            with dask.config.set(scheduler="synchronous"):
                part = ds.isel({self.dim: slice(start, stop)}).load()
        finally:
            ds.close()
        for var in part.variables.values():
            var.encoding = {k: v for k, v in var.encoding.items() if k in _KEPT_ENCODING}
        return part


# what a region write may inherit from the source's encoding: CF decoding, not its storage
# layout (chunks, compressors, filters of the source format would clash with the target's)
_KEPT_ENCODING = frozenset(
    {"units", "calendar", "dtype", "_FillValue", "scale_factor", "add_offset"}
)


def source_from_spec(spec: Any) -> DatasetSource:
    """A source from a JSON-friendly spec (as deployments pass it), or the source itself.

    ``{"kind": "synthetic", "ntime": 48, ...}``, ``{"kind": "netcdf", "paths": [...],
    "dim": "time"}``, ``{"kind": "files", "pattern": "/data/*.nc", "dim": "time"}`` (glob,
    ``open_mfdataset``) or ``{"kind": "zarr", "path": "/data/store.zarr", "dim": "time"}``.
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
    if kind == "files":
        return XarraySource.from_files(options.pop("pattern"), **options)
    if kind == "zarr":
        return XarraySource.from_zarr(options.pop("path"), **options)
    raise ValueError(f"unknown source kind {kind!r}: use 'synthetic', 'netcdf', 'files' or 'zarr'")
