"""``to_icechunk``: xarray's ``Dataset.to_zarr`` for Icechunk sessions, distributed-safe.

Metadata and numpy-backed variables are written directly through the session; dask-backed
variables are written on a :class:`~icechunk.session.ForkSession` by the dask workers, and the
forks are merged back into the session. The caller commits.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Literal

import xarray as xr
from xarray.backends.writers import ArrayWriter, dump_to_store, get_writable_zarr_store

from icechunk.dask import store_dask
from icechunk.session import Session

if TYPE_CHECKING:
    from icechunk.store import IcechunkStore

__all__ = ["to_icechunk"]


class _CollectingWriter(ArrayWriter):  # type: ignore[misc]
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

    # a DataArray is written the way DataArray.to_zarr does it
    dataset = obj._to_temp_dataset() if isinstance(obj, xr.DataArray) else obj

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
    writer = _CollectingWriter()
    dump_to_store(dataset, zstore, writer, encoding=dict(encoding or {}))
    if not compute or not writer.sources:
        return
    import zarr

    fork = session.fork()
    targets = [zarr.open_array(fork.store, path=t.path, mode="r+") for t in writer.targets]
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
