"""Functions that run in other processes (``ProcessPoolExecutor`` with the spawn context, or
``distributed`` workers) for the integration tests. They live in an importable module so the
child processes can unpickle them by reference."""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr

from icechunk.session import Session

Op = tuple[Any, ...]
"""One operation on a session (see :func:`apply_ops`)."""


def apply_ops(session: Session, ops: list[Op]) -> Session:
    """Apply operations to ``session`` through zarr and return it.

    * ``("write", path, coords, value)``: fill one whole chunk with ``value`` (writing the fill
      value makes zarr delete the chunk, since ``write_empty_chunks`` is off);
    * ``("delete", path, coords)``: delete the chunk's key through the store;
    * ``("resize", path, shape)``: resize the array;
    * ``("attr", path, key, value)``: set one attribute of the array.
    """
    store = session.store
    for op in ops:
        kind, path = op[0], op[1]
        arr = zarr.open_array(store, path=path, mode="r+")
        if kind == "write":
            coords, value = op[2], op[3]
            region = tuple(
                slice(c * n, (c + 1) * n) for c, n in zip(coords, arr.chunks, strict=True)
            )
            arr[region] = np.full(arr.chunks, value, dtype=arr.dtype)
        elif kind == "delete":
            key = path + "/c/" + "/".join(map(str, op[2]))
            zarr.core.sync.sync(store.delete(key))
        elif kind == "resize":
            arr.resize(tuple(op[2]))
        elif kind == "attr":
            arr.attrs[op[2]] = op[3]
        else:  # pragma: no cover
            raise ValueError(f"unknown op {op!r}")
    return session


def write_through_array(arr: zarr.Array, region: tuple[slice, ...], value: int) -> zarr.Array:
    """Write ``value`` into ``arr[region]`` and return the array (its store holds the fork)."""
    arr[region] = value
    return arr


def read_array(obj: Any, path: str | None = None) -> np.ndarray[Any, Any]:
    """The data of a zarr array, given a session, a store or the array itself."""
    if isinstance(obj, zarr.Array):
        return np.asarray(obj[...])
    store = obj.store if isinstance(obj, Session) else obj
    return np.asarray(zarr.open_array(store, path=path, mode="r")[...])


def read_via_open_group(obj: Any, path: str) -> np.ndarray[Any, Any]:
    """Read an array through ``zarr.open_group`` in its default mode (``"a"``)."""
    store = obj.store if isinstance(obj, Session) else obj
    return np.asarray(zarr.open_group(store)[path][...])


def try_write(obj: Any, path: str | None = None) -> Exception | None:
    """Attempt a write through a session, store or zarr array; return the error (or None)."""
    try:
        if isinstance(obj, zarr.Array):
            obj[...] = 7
        else:
            store = obj.store if isinstance(obj, Session) else obj
            arr = zarr.open_array(store, path=path, mode="r+")
            arr[...] = 7
    except Exception as e:  # noqa: BLE001 - handed back to the test
        return e
    return None


def session_facts(obj: Any) -> dict[str, Any]:
    """What a session (or store) looks like after crossing a process boundary."""
    session = obj if isinstance(obj, Session) else obj.session
    return {
        "type": type(session).__name__,
        "read_only": session.read_only,
        "branch": session.branch,
        "snapshot_id": session.snapshot_id,
        "has_uncommitted_changes": session.has_uncommitted_changes,
    }


def write_time_region(
    session: Session, itime: int, how: str, group: str | None = None, ntime: int = 24
) -> Session:
    """Write time step ``itime`` of the rasm-like dataset into ``session`` (a fork) with
    ``region="auto"``, through ``to_icechunk`` or xarray's ``to_zarr`` on ``session.store``."""
    from icechunk.xarray import to_icechunk
    from tests.datasets import rasm_like

    ds = rasm_like(ntime=ntime).isel(time=[itime])
    if how == "to_icechunk":
        to_icechunk(ds, session, region="auto", group=group)
    else:
        ds.to_zarr(session.store, region="auto", consolidated=False, group=group)
    return session


def write_slice_region(session: Session, itime: int) -> Session:
    """Like :func:`write_time_region` with an explicit ``region={"time": slice(...)}`` and only
    the variables that have a time dimension (as xarray requires for explicit regions)."""
    from icechunk.xarray import to_icechunk
    from tests.datasets import rasm_like

    ds = rasm_like().drop_vars(["xc", "yc"]).isel(time=slice(itime, itime + 1))
    to_icechunk(ds, session, region={"time": slice(itime, itime + 1)})
    return session
