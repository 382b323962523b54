"""``to_icechunk``: xarray's ``Dataset.to_zarr`` for Icechunk sessions, distributed-safe.

Metadata and numpy-backed variables are written directly through the session; dask-backed
variables are written on a :class:`~icechunk.session.ForkSession` by the dask workers, and the
forks are merged back into the session. The caller commits.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Literal

import xarray as xr
from xarray.backends.common import ArrayWriter
from xarray.backends.writers import (
    _validate_dataset_names,
    dump_to_store,
    get_writable_zarr_store,
)

from icechunk.dask import _check_store_kwargs, _on_store, store_dask
from icechunk.session import Session

if TYPE_CHECKING:
    from icechunk.store import IcechunkStore

__all__ = ["to_icechunk"]


class _CollectingWriter(ArrayWriter):
    """Writes numpy sources now; collects chunked (dask) sources for the fork/merge step."""

    def sync(self, compute: bool = True, chunkmanager_store_kwargs: Any = None) -> None:
        return None


def to_icechunk(
    obj: xr.DataArray | xr.Dataset,
    session: Session | None = None,
    *,
    store: IcechunkStore | None = None,
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
    writer = _CollectingWriter()  # type: ignore[no-untyped-call]
    # writes every zarr.json (resizing for appends) and the numpy-backed variables
    dump_to_store(  # type: ignore[no-untyped-call]
        dataset, zstore, writer, encoding=dict(encoding or {})
    )
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
