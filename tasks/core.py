"""The pipeline's logic as plain functions (no Prefect): open, initialize, extend, write, commit.

The Prefect tasks in :mod:`tasks` are thin wrappers around these, so everything here can be
used and tested without Prefect.

The dataset lifecycle is append-only along one dimension (``source.dim``, usually ``time``):

1. :func:`initialize_dataset` commits the *schema*: every variable, attribute and coordinate,
   with length 0 along ``dim``. Idempotent: a matching schema is left alone, a different one is
   refused.
2. Each ingestion appends whole steps in **one commit**: :func:`extend_dataset` grows the arrays
   and writes the new coordinate values in the coordinator's session, :func:`write_region` fills
   regions on forks (on Dask workers), :func:`merge_and_commit` merges and commits. A crash
   anywhere before the commit leaves the repository exactly as it was; a re-run appends the
   missing steps again (nothing duplicated, nothing lost).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr
import zarr

import icechunk
from icechunk import ConflictDetector, ForkSession, InvalidInputError, Repository, Session
from icechunk.xarray import to_icechunk
from tasks.regions import Region, plan_regions
from tasks.sources import DatasetSource

__all__ = [
    "append_plan",
    "extend_dataset",
    "initialize_dataset",
    "merge_and_commit",
    "open_repository",
    "plan_append",
    "stored_coordinate",
    "stored_length",
    "target_chunk_length",
    "write_region",
]

logger = logging.getLogger(__name__)


def storage_from_location(location: str, **options: Any) -> icechunk.Storage:
    """A storage from a location string: a path, ``file://``, ``memory://``, ``s3://``, ``gs://``
    or ``az://`` (the one parser, :func:`icechunk.storage.from_url`).

    ``options`` go to the object-store factory; a local or in-memory location ignores them (a
    repository block may carry credentials whatever its location).
    """
    scheme = location.split("://", 1)[0].lower() if "://" in location else ""
    local = scheme in ("", "file", "memory")
    return icechunk.storage.from_url(location, **({} if local else options))


def open_repository(
    location: str, *, create: bool = True, spec_version: int | None = None, **options: Any
) -> Repository:
    """Open the repository at ``location``; create it there first if ``create`` and missing."""
    storage = storage_from_location(location, **options)
    if create:
        return Repository.open_or_create(storage, create_version=spec_version)
    return Repository.open(storage)


def _schema(sample: xr.Dataset, dim: str) -> xr.Dataset:
    """The dataset with length 0 along ``dim`` (variables without ``dim`` kept whole)."""
    return sample.isel({dim: slice(0, 0)})


def _encoding(schema: xr.Dataset, dim: str, chunks: Mapping[str, int] | None) -> dict[str, Any]:
    chunks = dict(chunks or {})
    out: dict[str, Any] = {}
    for name, var in schema.data_vars.items():
        if dim in var.dims:
            shape = tuple(chunks.get(str(d), 1 if d == dim else schema.sizes[d]) for d in var.dims)
            out[str(name)] = {"chunks": tuple(max(1, c) for c in shape)}
    if dim in schema.variables:
        out[dim] = {"chunks": (max(1, chunks.get(dim, 1)) * 64,)}
        if np.issubdtype(schema[dim].dtype, np.datetime64):
            # Appends must encode later steps exactly: fix a fine unit up front instead of
            # letting xarray infer one from an empty coordinate.
            out[dim].update(units="seconds since 1970-01-01", dtype="int64")
    return out


def _dtype_kind(dtype: np.dtype[Any]) -> str:
    # datetime resolution (ns in memory, us or s as decoded) is not part of the schema
    return dtype.kind if dtype.kind in "mM" else str(dtype)


def _describe_schema(ds: xr.Dataset, dim: str) -> dict[str, Any]:
    return {
        str(name): (
            tuple(str(d) for d in var.dims),
            _dtype_kind(var.dtype),
            tuple(s for d, s in zip(var.dims, var.shape, strict=True) if d != dim),
        )
        for name, var in ds.variables.items()
    }


def initialize_dataset(
    repo: Repository,
    source: DatasetSource,
    *,
    branch: str = "main",
    group: str | None = None,
    chunks: Mapping[str, int] | None = None,
    message: str = "initialize dataset",
) -> str | None:
    """Commit the dataset's schema (length 0 along ``source.dim``) unless it is already there.

    Returns the new snapshot id, or ``None`` when a matching schema was already committed.

    Raises
    ------
    InvalidInputError
        The repository already holds a dataset whose variables, dimensions or dtypes differ.
    """
    dim = source.dim
    sample = source.load(0, 1)
    schema = _schema(sample, dim)
    existing = _open_existing(repo, branch, group)
    if existing is not None:
        want, have = _describe_schema(schema, dim), _describe_schema(existing, dim)
        if want != have:
            diff = sorted(set(want.items()) ^ set(have.items()))
            raise InvalidInputError(
                f"the repository already holds a different dataset on branch {branch!r}: "
                f"differences {diff}; use another branch or repository"
            )
        return None
    session = repo.writable_session(branch)
    to_icechunk(schema, session, group=group, mode="w", encoding=_encoding(schema, dim, chunks))
    return session.commit(message, metadata={"source": source.describe(), "dim": dim})


def _open_existing(repo: Repository, branch: str, group: str | None) -> xr.Dataset | None:
    session = repo.readonly_session(branch)
    try:
        return xr.open_zarr(session.store, group=group, consolidated=False, chunks=None)
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
        return None


def stored_coordinate(
    repo: Repository, dim: str, *, branch: str = "main", group: str | None = None
) -> np.ndarray:
    """The values of ``dim`` committed on ``branch``."""
    ds = _open_existing(repo, branch, group)
    if ds is None:
        return np.array([])
    return np.asarray(ds[dim].values)


def append_plan(stored: np.ndarray, incoming: np.ndarray, until: int | None = None) -> int:
    """Index in ``incoming`` of the first step the repository does not hold yet.

    The stored steps must be a prefix of the incoming ones; anything else (a gap, reordered or
    changed values) is refused so that re-runs can neither duplicate nor skip data.

    Raises
    ------
    InvalidInputError
        ``stored`` is not a prefix of ``incoming``.
    """
    n = len(stored)
    limit = len(incoming) if until is None else min(until, len(incoming))
    if n > len(incoming) or not np.array_equal(stored, incoming[:n]):
        raise InvalidInputError(
            f"the repository holds {n} steps that are not the first {n} steps of the source; "
            "refusing to append (this would duplicate or skip data)"
        )
    return min(n, limit)


def plan_append(
    repo: Repository,
    source: DatasetSource,
    *,
    branch: str = "main",
    until: int | None = None,
    group: str | None = None,
) -> tuple[int, int]:
    """Source positions ``[start, stop)`` that the repository lacks (up to ``until`` steps).

    ``start == stop`` means there is nothing to append. See :func:`append_plan` for the
    checks that refuse gaps and changed values.
    """
    incoming = source.coordinate()
    stored = stored_coordinate(repo, source.dim, branch=branch, group=group)
    start = append_plan(stored, incoming, until)
    stop = len(incoming) if until is None else min(until, len(incoming))
    return start, max(start, stop)


def _dimension_names(array: zarr.Array) -> tuple[str, ...]:
    """Zarr v3 ``dimension_names``, or xarray's ``_ARRAY_DIMENSIONS`` for zarr v2."""
    names = getattr(array.metadata, "dimension_names", None)
    if names is None:
        names = array.attrs.get("_ARRAY_DIMENSIONS", ())
    return tuple(str(n) for n in names)


def target_chunk_length(session: Session, dim: str, *, group: str | None = None) -> int:
    """The length along ``dim`` of the write unit (shard, else chunk) of the data arrays.

    Region writes must start and stop on these boundaries (except at the end of the data) so
    that no two forks write one chunk. Arrays with different units give their least common
    multiple. Coordinates along ``dim`` are excluded: only the coordinator writes them.

    Raises
    ------
    InvalidInputError
        No array in the dataset has the dimension ``dim``.
    """
    root = zarr.open_group(session.store, path=group or "", mode="r")
    lengths = set()
    for name, array in root.arrays():
        dims = _dimension_names(array)
        if name != dim and dim in dims:
            unit = array.shards or array.chunks
            lengths.add(int(unit[dims.index(dim)]))
    if not lengths:
        raise InvalidInputError(f"no data variable of the dataset has the dimension {dim!r}")
    return math.lcm(*lengths)


def stored_length(session: Session, dim: str, *, group: str | None = None) -> int:
    """The current length of the data arrays along ``dim`` in ``session``."""
    root = zarr.open_group(session.store, path=group or "", mode="r")
    for name, array in root.arrays():
        dims = _dimension_names(array)
        if name != dim and dim in dims:
            return int(array.shape[dims.index(dim)])
    raise InvalidInputError(f"no data variable of the dataset has the dimension {dim!r}")


def extend_dataset(
    session: Session,
    source: DatasetSource,
    start: int,
    stop: int,
    *,
    group: str | None = None,
    chunks_per_region: int = 4,
) -> list[Region]:
    """Grow the arrays by source steps ``[start, stop)`` and write their coordinate values.

    Data variables are left unwritten (fill value) for :func:`write_region` to fill. Returns
    the regions to write: chunk-aligned in the target (``chunks_per_region`` chunks each,
    using the chunk length actually stored, whatever ``chunks`` initialized the dataset).
    """
    if stop <= start:
        return []
    dim = source.dim
    target_start = stored_length(session, dim, group=group)
    regions = plan_regions(
        start,
        stop,
        target_start,
        target_chunk_length(session, dim, group=group),
        chunks_per_region,
    )
    part = source.load(start, start + 1)
    coords = source.coordinate()[start:stop]
    template = part.isel({dim: [0] * (stop - start)}).assign_coords({dim: coords})
    lazy = template.chunk({dim: 1})
    lazy = lazy.drop_vars([v for v in lazy.variables if dim not in lazy[v].dims])
    # compute=False writes only metadata (the resize) and the coordinate values: the lazy
    # data is never stored, so its dask chunks need not match the zarr chunks.
    to_icechunk(lazy, session, group=group, append_dim=dim, compute=False, safe_chunks=False)
    return regions


def write_region(
    fork: ForkSession, source: DatasetSource, region: Region, *, group: str | None = None
) -> ForkSession:
    """Load one region from the source and write it through ``fork``; return the fork.

    Raises
    ------
    InvalidInputError
        The loaded data does not fit the stored arrays: a dtype that would be cast unsafely, a
        different grid, or a different number of steps than ``region`` (a source that changed
        since the dataset was initialized). Raised by :func:`icechunk.xarray.to_icechunk`
        before any chunk is written.
    """
    dim = source.dim
    ds = source.load(region.source_start, region.source_stop)
    ds = ds.drop_vars([v for v in ds.variables if dim not in ds[v].dims])
    to_icechunk(ds, fork, group=group, region={dim: slice(region.target_start, region.target_stop)})
    return fork


def merge_and_commit(
    session: Session,
    forks: Sequence[ForkSession],
    *,
    message: str,
    metadata: Mapping[str, Any] | None = None,
    rebase: bool = True,
) -> str:
    """Merge the workers' forks into ``session`` and commit once.

    With ``rebase`` a concurrent commit to the branch is rebased over when the changes do not
    conflict (``ConflictDetector``); conflicting changes raise and nothing is committed.
    """
    session.merge(*forks, on_overlap="error")
    return session.commit(
        message,
        metadata=dict(metadata or {}),
        rebase_with=ConflictDetector() if rebase else None,
        rebase_tries=20,
    )
