"""Write or read a spec-2 repository with rectilinear (variable) chunk grids.

Usage: ``rectilinear.py write PATH`` / ``rectilinear.py read PATH`` / ``rectilinear.py spec1 PATH``

Runs unchanged under real icechunk 2.3.0 and under our implementation. ``write`` creates arrays
with explicit edges, run-length-encoded edges and a shrinking resize (edges reaching past the
array), then commits. ``read`` prints every array's metadata, stored chunk keys and data.
``spec1`` prints whether a spec-1 repository accepts a rectilinear array.
"""

from __future__ import annotations

import asyncio
import json
import sys

import numpy as np
import zarr
from common import emit, library_info

import icechunk as ic

zarr.config.set({"array.rectilinear_chunks": True})

ARRAYS = {
    "explicit": ([[3, 7], [2, 4]], np.arange(60, dtype="i4").reshape(10, 6)),
    "rle": ([[3, 3, 4], [1] * 6], np.arange(60, dtype="f8").reshape(10, 6) / 7),
    "shrunk": ([[3, 3, 4], [2, 2, 2]], np.ones((10, 6), dtype="u2")),
}


def write(path: str) -> dict[str, object]:
    repo = ic.Repository.create(ic.local_filesystem_storage(path), spec_version=2)
    session = repo.writable_session("main")
    for name, (chunks, values) in ARRAYS.items():
        array = zarr.create_array(
            session.store,
            name=name,
            shape=values.shape,
            chunks=chunks,
            dtype=values.dtype,
            fill_value=0,
        )
        array[:] = values
    zarr.open_array(session.store, path="shrunk").resize((2, 6))
    return {"snapshot": session.commit("rectilinear")}


async def _keys(store: object) -> list[str]:
    return sorted([k async for k in store.list()])  # type: ignore[attr-defined]


def read(path: str) -> dict[str, object]:
    repo = ic.Repository.open(ic.local_filesystem_storage(path))
    store = repo.readonly_session("main").store
    out: dict[str, object] = {"keys": asyncio.run(_keys(store))}
    for name in ARRAYS:
        array = zarr.open_array(store, path=name, mode="r")
        meta = array.metadata.to_dict()
        out[name] = {
            "chunk_grid": json.loads(json.dumps(meta["chunk_grid"])),
            "shape": list(array.shape),
            "data": array[...].tolist(),
        }
    return out


def spec1(path: str) -> dict[str, object]:
    repo = ic.Repository.create(ic.local_filesystem_storage(path), spec_version=1)
    session = repo.writable_session("main")
    try:
        zarr.create_array(session.store, name="a", shape=(10,), chunks=[[3, 7]], dtype="i4")
    except Exception as exc:  # noqa: BLE001 - the error is what is printed
        return {
            "accepted": False,
            "error": type(exc).__name__,
            "spec_hint": "spec_version=2" in str(exc),
        }
    return {"accepted": True}


if __name__ == "__main__":
    mode, where = sys.argv[1], sys.argv[2]
    emit({"library": library_info(), **{"write": write, "read": read, "spec1": spec1}[mode](where)})
