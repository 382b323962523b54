"""Write or read a small repository on an S3 server; runs unchanged under the real icechunk 2.x
(the ``ic2`` oracle) and under ours.

Usage: ``oracle_s3.py write|read STORAGE_JSON [SPEC]``, where ``STORAGE_JSON`` holds the keyword
arguments of ``icechunk.s3_storage``. Prints a JSON summary: ``write`` the snapshot ids it made,
``read`` everything a reader sees (refs, history, array data and attributes).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
import zarr

import icechunk


def _storage(kwargs: dict[str, Any]) -> Any:
    factory = getattr(icechunk, "s3_storage", None)
    if factory is None:  # ours exports it from icechunk.storage
        from icechunk.storage import s3_storage as factory
    return factory(**kwargs)


def write(kwargs: dict[str, Any], spec: int | None = None) -> dict[str, Any]:
    storage = _storage(kwargs)
    if spec is None:
        repo = icechunk.Repository.create(storage)
    else:
        repo = icechunk.Repository.create(storage, spec_version=spec)
    session = repo.writable_session("main")
    root = zarr.group(store=session.store, attributes={"writer": "oracle_s3", "n": 1})
    temps = root.create_array("weather/temps", shape=(6, 8), chunks=(2, 4), dtype="f4")
    temps[:] = np.arange(48, dtype="f4").reshape(6, 8) / 2
    temps.attrs["units"] = "K"
    flags = root.create_array("flags", shape=(10,), chunks=(5,), dtype="i1", fill_value=-1)
    flags[2:8] = 1
    noise = root.create_array("noise", shape=(64, 64), chunks=(32, 32), dtype="f8")
    noise[:] = np.random.default_rng(7).standard_normal((64, 64))  # native (non-inline) chunks
    first = session.commit("first")
    session = repo.writable_session("main")
    zarr.open_array(session.store, path="flags", mode="r+")[0] = 9
    second = session.commit("second")
    repo.create_tag("v1", first)
    repo.create_branch("dev", first)
    return {"first": first, "second": second}


def read(kwargs: dict[str, Any]) -> dict[str, Any]:
    repo = icechunk.Repository.open(_storage(kwargs))
    out: dict[str, Any] = {
        "branches": sorted(repo.list_branches()),
        "tags": sorted(repo.list_tags()),
        "main": [[s.id, s.message] for s in repo.ancestry(branch="main")],
        "v1": repo.lookup_tag("v1"),
        "dev": repo.lookup_branch("dev"),
    }
    for ref, session in (
        ("main", repo.readonly_session(branch="main")),
        ("v1", repo.readonly_session(tag="v1")),
    ):
        group = zarr.open_group(session.store, mode="r")
        out[f"{ref}:attrs"] = dict(group.attrs)
        for path in ("weather/temps", "flags", "noise"):
            arr = zarr.open_array(session.store, path=path, mode="r")
            out[f"{ref}:{path}"] = {"data": np.asarray(arr[:]).tolist(), "attrs": dict(arr.attrs)}
    return out


def main() -> None:
    action, kwargs = sys.argv[1], json.loads(sys.argv[2])
    spec = int(sys.argv[3]) if len(sys.argv) > 3 else None
    result = write(kwargs, spec) if action == "write" else read(kwargs)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
