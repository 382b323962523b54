"""Write or read a repository of virtual chunks pointing into local files.

Usage::

    virtual_repo.py write REPO DATADIR --spec {1,2} [--netcdf FILE]
    virtual_repo.py read REPO DATADIR [--persisted-config]
    virtual_repo.py stale REPO DATADIR

Runs unchanged under the real icechunk 2.3.0 and under our implementation. ``write`` creates
``DATADIR/values.bin`` (100 little-endian int32, modification time 1_000_000_000) and a
repository with a ``file://DATADIR/`` container: array ``a`` (40 int32 in chunks of 10: a
last-modified checksums, no checksum, one missing chunk) and ``b`` (4x4 int32
in 2x2 chunks, set with ``set_virtual_refs_arr``) and, in spec 2, ``c`` (one chunk referenced
as ``vcc://vdata/values.bin``, ``vdata`` naming the container). With ``--netcdf`` (ours only) the variables of
a netCDF file in DATADIR are referenced into group ``era``. ``read`` prints every array (shape,
dtype, a digest of its values, the values of small arrays) and the virtual chunk locations.
``stale`` touches ``values.bin``, reads chunk 0 (checksummed) and chunk 2 (not) of ``a``, and
restores the modification time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
from typing import Any

import numpy as np
import zarr
from common import emit, library_info

import icechunk

OLD = 1_000_000_000


def _config(datadir: str) -> tuple[Any, dict[str, Any]]:
    prefix = f"file://{datadir}/"
    config = icechunk.RepositoryConfig.default()
    config.set_virtual_chunk_container(
        icechunk.VirtualChunkContainer(
            prefix, icechunk.local_filesystem_store(datadir), name="vdata"
        )
    )
    return config, {prefix: icechunk.credentials.LocalFileSystemAccess}


def write(repo_path: str, datadir: str, spec: int, netcdf: str | None) -> dict[str, Any]:
    values = os.path.join(datadir, "values.bin")
    with open(values, "wb") as f:
        f.write(np.arange(100, dtype="<i4").tobytes())
    os.utime(values, (OLD, OLD))
    config, auth = _config(datadir)
    repo = icechunk.Repository.create(
        icechunk.local_filesystem_storage(repo_path),
        config=config,
        authorize_virtual_chunk_access=auth,
        spec_version=spec,
    )
    session = repo.writable_session("main")
    store = session.store
    root = zarr.open_group(store=store, mode="a")
    kwargs: dict[str, Any] = {"dtype": "<i4", "compressors": None, "fill_value": -1}
    root.create_array("a", shape=(40,), chunks=(10,), **kwargs)
    root.create_array("b", shape=(4, 4), chunks=(2, 2), **kwargs)
    url = f"file://{values}"
    store.set_virtual_ref(
        "a/c/0", url, offset=0, length=40, checksum=dt.datetime.fromtimestamp(OLD + 1, dt.UTC)
    )
    # Local files have no portable ETag (the real icechunk 2.3.0 refuses the object-store style
    # one), so the second checksummed chunk uses a later last-modified time.
    store.set_virtual_ref(
        "a/c/1", url, offset=40, length=40, checksum=dt.datetime.fromtimestamp(2 * OLD, dt.UTC)
    )
    store.set_virtual_ref("a/c/2", url, offset=120, length=40)
    failed = store.set_virtual_refs_arr(
        "b",
        (2, 2),
        [url, url, "", url],
        np.array([0, 16, 0, 48], dtype=np.uint64),
        np.array([16, 16, 16, 16], dtype=np.uint64),
    )
    assert not failed, failed
    if spec >= 2:  # a reference relative to the named container
        root.create_array("c", shape=(10,), chunks=(10,), **kwargs)
        store.set_virtual_ref("c/c/0", "vcc://vdata/values.bin", offset=160, length=40)
    if netcdf is not None:
        from icechunk.virtual_files import reference_netcdf

        reference_netcdf(session, netcdf, group="era")
    return {"library": library_info(), "snapshot": session.commit("virtual refs")}


def _arrays(group: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, member in sorted(group.members()):
        path = f"{prefix}/{name}"
        if isinstance(member, zarr.Group):
            out.update(_arrays(member, path))
            continue
        data = np.asarray(member[...])
        little = np.ascontiguousarray(data.astype(data.dtype.newbyteorder("<")))
        doc: dict[str, Any] = {
            "shape": list(data.shape),
            "dtype": data.dtype.newbyteorder("<").str,
            "sha256": hashlib.sha256(little.tobytes()).hexdigest(),
            "attributes": dict(member.attrs),
        }
        if data.size <= 64:
            doc["values"] = data
        out[path] = doc
    return out


def _open(repo_path: str, datadir: str, persisted_config: bool = False) -> Any:
    config, auth = _config(datadir)
    return icechunk.Repository.open(
        icechunk.local_filesystem_storage(repo_path),
        config=None if persisted_config else config,
        authorize_virtual_chunk_access=auth,
    )


def read(repo_path: str, datadir: str, persisted_config: bool = False) -> dict[str, Any]:
    session = _open(repo_path, datadir, persisted_config).readonly_session("main")
    return {
        "library": library_info(),
        "arrays": _arrays(zarr.open_group(store=session.store, mode="r")),
        "locations": sorted(set(session.all_virtual_chunk_locations())),
    }


def stale(repo_path: str, datadir: str) -> dict[str, Any]:
    values = os.path.join(datadir, "values.bin")
    array = zarr.open_array(_open(repo_path, datadir).readonly_session("main").store, path="a")
    os.utime(values)  # now
    results: dict[str, Any] = {}
    try:
        for label, region in (("checksummed", slice(0, 10)), ("unchecked", slice(20, 30))):
            try:
                results[label] = {"values": array[region]}
            except Exception as e:  # noqa: BLE001 - the error is what we report
                results[label] = {"error": type(e).__name__, "message": str(e).split("\n")[0]}
    finally:
        os.utime(values, (OLD, OLD))
    return {"library": library_info(), "results": results}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["write", "read", "stale"])
    parser.add_argument("repo")
    parser.add_argument("datadir")
    parser.add_argument("--spec", type=int, default=2)
    parser.add_argument("--netcdf")
    parser.add_argument(
        "--persisted-config",
        action="store_true",
        help="read: open with the repository's persisted containers instead of a config",
    )
    args = parser.parse_args()
    datadir = os.path.abspath(args.datadir)
    if args.mode == "write":
        emit(write(args.repo, datadir, args.spec, args.netcdf))
    elif args.mode == "read":
        emit(read(args.repo, datadir, args.persisted_config))
    else:
        emit(stale(args.repo, datadir))


if __name__ == "__main__":
    main()
