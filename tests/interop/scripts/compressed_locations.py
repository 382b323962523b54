"""Write or read a spec-2 repository of 1,200 virtual chunks whose locations may be compressed.

Usage::

    compressed_locations.py write REPO DATADIR [--min-num-chunks N] [--dict-size B] [--level L]
    compressed_locations.py read REPO DATADIR

Runs unchanged under the real icechunk 2.3.0 and under our implementation. ``write`` creates
twelve files ``DATADIR/part00.bin`` ... ``part11.bin`` of 100 little-endian int32 each (file
``k`` holds ``100 k ... 100 k + 99``) and array ``v`` (1,200 int32, one per chunk, chunk ``i``
referencing int ``i % 100`` of file ``i // 100``), with the given
``ManifestVirtualChunkLocationCompressionConfig`` fields (unset: the defaults). Both modes print
``inspect_manifest``'s ``compression`` section for each manifest of the branch tip; ``read``
also prints the values of ``v`` and the distinct virtual locations.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import numpy as np
import zarr
from common import emit, library_info

import icechunk

N = 1200
PER_FILE = 100


def _config(datadir: str, compression: Any = None) -> tuple[Any, dict[str, Any]]:
    prefix = f"file://{datadir}/"
    config = icechunk.RepositoryConfig.default()
    config.set_virtual_chunk_container(
        icechunk.VirtualChunkContainer(prefix, icechunk.local_filesystem_store(datadir))
    )
    if compression is not None:
        config.manifest = icechunk.ManifestConfig(virtual_chunk_location_compression=compression)
    return config, {prefix: icechunk.credentials.LocalFileSystemAccess}


def _compression_report(repo: Any) -> list[dict[str, Any]]:
    tip = repo.lookup_branch("main")
    return [repo.inspect_manifest(m.id)["compression"] for m in repo.list_manifest_files(tip)]


def write(repo_path: str, datadir: str, args: argparse.Namespace) -> dict[str, Any]:
    for k in range(N // PER_FILE):
        with open(os.path.join(datadir, f"part{k:02d}.bin"), "wb") as f:
            f.write(np.arange(k * PER_FILE, (k + 1) * PER_FILE, dtype="<i4").tobytes())
    fields = {
        "dictionary_max_size_bytes": args.dict_size,
        "compression_level": args.level,
    }
    compression = None
    if args.min_num_chunks is not None or any(v is not None for v in fields.values()):
        compression = icechunk.ManifestVirtualChunkLocationCompressionConfig(
            args.min_num_chunks, **{k: v for k, v in fields.items() if v is not None}
        )
    config, auth = _config(datadir, compression)
    repo = icechunk.Repository.create(
        icechunk.local_filesystem_storage(repo_path),
        config=config,
        authorize_virtual_chunk_access=auth,
    )
    session = repo.writable_session("main")
    root = zarr.open_group(store=session.store, mode="a")
    root.create_array("v", shape=(N,), chunks=(1,), dtype="<i4", compressors=None, fill_value=-1)
    specs = [
        icechunk.VirtualChunkSpec(
            index=[i],
            location=f"file://{datadir}/part{i // PER_FILE:02d}.bin",
            offset=4 * (i % PER_FILE),
            length=4,
        )
        for i in range(N)
    ]
    failed = session.store.set_virtual_refs("v", specs)
    assert not failed, failed
    snapshot = session.commit("1200 virtual refs")
    return {
        "library": library_info(),
        "snapshot": snapshot,
        "compression": _compression_report(repo),
    }


def read(repo_path: str, datadir: str) -> dict[str, Any]:
    config, auth = _config(datadir)
    repo = icechunk.Repository.open(
        icechunk.local_filesystem_storage(repo_path),
        config=config,
        authorize_virtual_chunk_access=auth,
    )
    session = repo.readonly_session("main")
    array = zarr.open_array(session.store, path="v", mode="r")
    return {
        "library": library_info(),
        "values": np.asarray(array[...]).tolist(),
        "locations": sorted(set(session.all_virtual_chunk_locations())),
        "compression": _compression_report(repo),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["write", "read"])
    parser.add_argument("repo")
    parser.add_argument("datadir")
    parser.add_argument("--min-num-chunks", type=int)
    parser.add_argument("--dict-size", type=int)
    parser.add_argument("--level", type=int)
    args = parser.parse_args()
    datadir = os.path.abspath(args.datadir)
    if args.mode == "write":
        emit(write(args.repo, datadir, args))
    else:
        emit(read(args.repo, datadir))


if __name__ == "__main__":
    main()
