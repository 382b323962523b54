"""``to_icechunk``: xarray's ``Dataset.to_zarr`` for Icechunk sessions, distributed-safe.

Metadata and numpy-backed variables are written directly through the session; dask-backed
variables are written on a :class:`~icechunk.session.ForkSession` by the dask workers, and the
forks are merged back into the session. The caller commits.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import xarray as xr
from xarray.backends.common import ArrayWriter
from xarray.backends.writers import (
    _validate_dataset_names,
    dump_to_store,
    get_writable_zarr_store,
)
from xarray.conventions import decode_cf_variable

from icechunk.dask import _check_store_kwargs, _on_store, store_dask
from icechunk.errors import InvalidInputError
from icechunk.session import Session

if TYPE_CHECKING:
    from icechunk.store import IcechunkStore

__all__ = ["LazyArrayWriter", "is_dask_collection", "to_icechunk"]


def is_dask_collection(x: Any) -> bool:
    """Whether ``x`` is a dask collection (always ``False`` when dask is not installed)."""
    try:
        from dask.base import is_dask_collection as _dask_is_collection
    except ImportError:
        return False
    return bool(_dask_is_collection(x))


class LazyArrayWriter(ArrayWriter):
    """xarray's ``ArrayWriter`` that holds every write until asked.

    :meth:`add` files a dask-backed source under ``sources``/``targets``/``regions`` (written
    later by the fork/merge step, or by ``sync``) and any other source under the eager lists,
    which :meth:`write_eager` writes into their targets and empties. Nothing is written by
    :meth:`add` itself, so every array exists before the first chunk is written.
    """

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.eager_sources: list[Any] = []
        self.eager_targets: list[Any] = []
        self.eager_regions: list[tuple[slice, ...] | None] = []

    def add(self, source: Any, target: Any, region: Any = None) -> Any:
        """File the write of ``source`` into ``target`` (at ``region``, default all of it)."""
        if is_dask_collection(source):
            self.sources.append(source)
            self.targets.append(target)
            self.regions.append(region)
        else:
            self.eager_sources.append(source)
            self.eager_targets.append(target)
            self.eager_regions.append(region)

    def write_eager(self) -> None:
        """Write every non-dask source filed so far into its target, then forget them."""
        for source, target, region in zip(
            self.eager_sources, self.eager_targets, self.eager_regions, strict=True
        ):
            target[region if region is not None else ...] = source
        self.eager_sources, self.eager_targets, self.eager_regions = [], [], []


def to_icechunk(
    obj: xr.DataArray | xr.Dataset,
    session: Session | None = None,
    *,
    store: IcechunkStore[Session] | None = None,
    group: str | None = None,
    mode: Literal["w", "w-", "a", "a-", "r+", "r"] | None = None,
    safe_chunks: bool = True,
    align_chunks: bool = False,
    append_dim: Hashable | None = None,
    region: Mapping[str, slice | Literal["auto"]] | Literal["auto"] | None = None,
    encoding: Mapping[Any, Any] | None = None,
    chunkmanager_store_kwargs: MutableMapping[Any, Any] | None = None,
    split_every: int | None = None,
    compute: bool = True,
) -> None:
    """Write an xarray object into an Icechunk session, like ``Dataset.to_zarr``.

    Parameters
    ----------
    obj
        The Dataset or DataArray to write. Dask-backed variables are written by the dask
        scheduler in use (threads, processes or ``distributed``) through forks of ``session``.
    session
        A writable session. ``store=session.store`` (the seed document's form) also works.
    group, mode, safe_chunks, align_chunks, append_dim, region, encoding
        As in :meth:`xarray.Dataset.to_zarr` (zarr format 3, no consolidated metadata). The
        default mode is ``"a"`` with ``append_dim``, ``"r+"`` with ``region``, else ``"w-"``.
    chunkmanager_store_kwargs
        Extra keyword arguments for the dask computation.
    split_every
        Fan-in of the tree reduction that merges the workers' forks.
    compute
        ``False`` writes only the template: every ``zarr.json`` and the numpy-backed variables
        (typically coordinates), not the dask-backed data. Fill it later with region writes.

    Raises
    ------
    InvalidInputError
        A variable written into an existing array (region, append or ``mode="a"`` writes) has
        a dtype that would be cast unsafely into the stored one, other dimensions, or a length
        that does not fit the region or the stored array. Raised before anything is written.

    Notes
    -----
    This function does not commit: call ``session.commit(...)`` afterwards.
    """
    if session is None:
        if store is None:
            raise TypeError("to_icechunk needs a session (or store=session.store)")
        session = store.session
    elif store is not None:
        raise TypeError("pass either session or store, not both")
    if not isinstance(session, Session):
        raise TypeError(f"expected an icechunk Session, received {type(session).__name__!r}")
    session._require_writable()
    _check_store_kwargs("to_icechunk", chunkmanager_store_kwargs or {})

    dataset = _as_dataset(obj)
    _validate_dataset_names(dataset)
    for v in dataset.variables.values():
        if v.size == 0:  # as xarray does: zero-length dask arrays break dask's store
            v.load()

    zstore = get_writable_zarr_store(
        session.store,
        mode=mode,
        group=group,
        consolidated=False,
        append_dim=append_dim,
        region=region,
        safe_chunks=safe_chunks,
        align_chunks=align_chunks,
        zarr_format=3,
    )
    dataset = zstore._validate_and_autodetect_region(dataset)
    zstore._validate_encoding(encoding or {})
    # before anything is written: zarr would cast silently, xarray fails half-way
    _check_existing_variables(zstore, dataset)
    writer = LazyArrayWriter()
    # writes every zarr.json (resizing for appends); files the variables' data writes
    dump_to_store(  # type: ignore[no-untyped-call]
        dataset, zstore, writer, encoding=dict(encoding or {})
    )
    writer.write_eager()  # the numpy-backed variables
    if not compute or not writer.sources:
        return

    fork = session.fork()
    targets = [_on_store(t, fork.store) for t in writer.targets]
    regions = [
        r if r is not None else tuple(slice(None) for _ in t.shape)
        for r, t in zip(writer.regions, targets, strict=True)
    ]
    merged = store_dask(
        sources=writer.sources,
        targets=targets,
        regions=regions,
        split_every=split_every,
        **dict(chunkmanager_store_kwargs or {}),
    )
    session.merge(merged)  # type: ignore[arg-type]


def _as_dataset(obj: xr.DataArray | xr.Dataset) -> xr.Dataset:
    """The Dataset ``DataArray.to_zarr`` would write (so ``xr.open_dataarray`` reads it back)."""
    if isinstance(obj, xr.Dataset):
        return obj
    if not isinstance(obj, xr.DataArray):
        raise TypeError(f"expected an xarray Dataset or DataArray, got {type(obj).__name__!r}")
    from xarray.backends.api import DATAARRAY_NAME, DATAARRAY_VARIABLE

    if obj.name is None:
        return obj.to_dataset(name=DATAARRAY_VARIABLE)
    if obj.name in obj.coords or obj.name in obj.dims:
        dataset = obj.to_dataset(name=DATAARRAY_VARIABLE)
        dataset.attrs[DATAARRAY_NAME] = obj.name
        return dataset
    return obj.to_dataset()


def _check_existing_variables(zstore: Any, dataset: xr.Dataset) -> None:
    """Refuse writes into existing arrays that zarr would cast unsafely or xarray would reject.

    For every variable of ``dataset`` that already exists in the target (modes ``"a"``,
    ``"r+"``, region and append writes), the dtype must cast to the stored (decoded) dtype
    within its kind (``numpy.can_cast(..., "same_kind")``: no float into int, no complex into
    float, no numbers into datetimes), and the shape must match: the region's length along
    region dimensions, anything along ``append_dim``, the stored length elsewhere.

    Raises
    ------
    InvalidInputError
        Naming each offending variable, what was expected and what was given, and what to do.
        Raised before anything is written.
    """
    if zstore._mode == "w":
        return
    existing = set(zstore.array_keys())
    region: dict[Hashable, slice] = dict(zstore._write_region or {})
    append_dim = zstore._append_dim
    problems: list[str] = []
    for name, var in dataset.variables.items():
        if str(name) not in existing:
            continue
        stored = decode_cf_variable(name, zstore.open_store_variable(str(name)))
        if not _castable(var.dtype, stored.dtype):
            problems.append(
                f"variable {str(name)!r} has dtype {var.dtype}, but the stored array has dtype "
                f"{stored.dtype} (writing would cast unsafely); convert it first, e.g. "
                f"ds[{str(name)!r}] = ds[{str(name)!r}].astype({str(stored.dtype)!r})"
            )
        if set(var.dims) != set(stored.dims):
            problems.append(
                f"variable {str(name)!r} has dimensions {var.dims}, but the stored array has "
                f"{stored.dims}; rename or transpose the variable's dimensions to match"
            )
            continue
        for dim, size in var.sizes.items():
            if dim == append_dim:
                continue
            if dim in region:
                start, stop, _ = region[dim].indices(stored.sizes[dim])
                expected = max(0, stop - start)
                where = f"the region {dim}={region[dim]} of the stored length {stored.sizes[dim]}"
                advice = f"select {expected} elements along {dim!r} or change the region"
            else:
                expected = stored.sizes[dim]
                where = f"the stored length along {dim!r}"
                advice = f"write whole {dim!r} rows, or add {dim!r} to region (or use append_dim)"
            if size != expected:
                problems.append(
                    f"variable {str(name)!r} has {size} elements along {dim!r}, but "
                    f"{where} holds {expected}; {advice}"
                )
    if problems:
        raise InvalidInputError("nothing was written: " + "; ".join(problems))


def _castable(given: np.dtype[Any], stored: np.dtype[Any]) -> bool:
    """Whether values of ``given`` may be written into an array of ``stored`` without loss of
    kind (between strings and objects, xarray's own checks apply)."""
    if given.kind in "SUO" or stored.kind in "SUO":
        return given.kind in "SUO" and stored.kind in "SUO"
    if given.kind in "mM" or stored.kind in "mM":
        return given.kind == stored.kind
    return bool(np.can_cast(given, stored, casting="same_kind"))
