"""Print the data and manifest layout of every commit of a repository from ``split_write.py``.

Usage: ``split_read.py PATH``

Runs unchanged under real icechunk 1.1.21 / 2.3.0 and under our implementation.  Prints, keyed
by commit message (unique in those repositories), for every snapshot reachable from ``main``
and ``rewritten``: its metadata, the sorted chunk-ref counts of its manifest files (the layout)
and the full data of every array.
"""

from __future__ import annotations

import argparse
from typing import Any

import zarr
from common import emit, library_info, open_repo

ARRAYS = ("temp", "grp/salt", "plain", "scalar")


def manifest_sizes(repo: Any, snapshot_id: str) -> list[int]:
    """Chunk refs per manifest file of a snapshot (2.x: ``list_manifest_files``)."""
    lister = getattr(repo, "list_manifest_files", None)
    files = lister(snapshot_id) if lister else repo.lookup_snapshot(snapshot_id).manifests
    return sorted(int(m.num_chunk_refs) for m in files)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    args = parser.parse_args()
    repo = open_repo(args.path)
    commits: dict[str, Any] = {}
    for branch in ("main", "rewritten"):
        for info in repo.ancestry(branch=branch):
            if info.parent_id is None or info.message in commits:
                continue
            session = repo.readonly_session(snapshot_id=info.id)
            group = zarr.open_group(store=session.store, mode="r")
            commits[info.message] = {
                "metadata": info.metadata,
                "parent": repo.lookup_snapshot(info.parent_id).message,
                "manifest_refs": manifest_sizes(repo, info.id),
                "data": {name: group[name][...] for name in ARRAYS},
            }
    emit({"commits": commits, "library": library_info()})


if __name__ == "__main__":
    main()
