"""Write a repository whose manifests are split, then rewrite them on a branch.

Usage: ``split_write.py PATH --spec {1,2}``

Runs unchanged under real icechunk 1.1.21 / 2.3.0 and under our implementation.  The splitting
config exercises every condition kind: ``name_matches``, ``path_matches``, ``&``/``|``,
``DimensionName``, ``Axis`` and ``Any``.  Commits (messages are unique):

1. ``initial``: ``/temp`` (time, x), ``/grp/salt``, ``/plain`` (no condition matches) and a
   0-d ``/scalar``;
2. ``append``: ``/temp`` grows along time by 3 rows (only its last splits change);
3. ``overwrite``: one chunk of ``/temp`` and of ``/grp/salt`` rewritten, ``/plain`` shrunk;
4. ``rewrite`` on branch ``rewritten`` (from ``main``): ``rewrite_manifests`` with every
   dimension of every array split by 2 chunks.

Prints ``{"snapshots": {message: id}, "library": ...}``.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import zarr
from common import commit, emit, library_info, storage, supports_spec_version

import icechunk
from icechunk import ManifestSplitCondition as Cond
from icechunk import ManifestSplitDimCondition as Dim


def config(splits: dict[Any, dict[Any, int]]) -> Any:
    sc = icechunk.ManifestSplittingConfig.from_dict(splits)
    return icechunk.RepositoryConfig(manifest=icechunk.ManifestConfig(splitting=sc))


INITIAL = config(
    {
        Cond.name_matches("^temp$") & Cond.path_matches("^/temp"): {Dim.DimensionName("time"): 3},
        Cond.path_matches("salt") | Cond.name_matches("^wind$"): {Dim.Axis(0): 2, Dim.Any(): 1},
    }
)
REWRITE = config({Cond.AnyArray(): {Dim.Any(): 2}})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--spec", type=int, choices=(1, 2), required=True)
    args = parser.parse_args()
    if supports_spec_version():
        repo = icechunk.Repository.create(
            storage(args.path), config=INITIAL, spec_version=args.spec
        )
    else:
        assert args.spec == 1
        repo = icechunk.Repository.create(storage(args.path), config=INITIAL)
    snapshots: dict[str, str] = {}

    session = repo.writable_session("main")
    root = zarr.open_group(store=session.store, mode="a")
    temp = root.create_array(
        "temp", shape=(8, 4), chunks=(1, 2), dtype="float64", dimension_names=("time", "x")
    )
    temp[:] = np.arange(32, dtype="float64").reshape(8, 4) + 0.5
    salt = root.create_group("grp").create_array(
        "salt", shape=(6, 5), chunks=(2, 2), dtype="int32", fill_value=-1
    )
    salt[:] = np.arange(30, dtype="int32").reshape(6, 5)
    plain = root.create_array("plain", shape=(7,), chunks=(1,), dtype="int16")
    plain[:] = np.arange(7, dtype="int16") * 3
    scalar = root.create_array("scalar", shape=(), dtype="int64")
    scalar[()] = 42
    snapshots["initial"] = commit(session, "initial")

    session = repo.writable_session("main")
    temp = zarr.open_array(store=session.store, path="temp", mode="a")
    temp.resize((11, 4))
    temp[8:] = -np.arange(12, dtype="float64").reshape(3, 4)
    snapshots["append"] = commit(session, "append")

    session = repo.writable_session("main")
    root = zarr.open_group(store=session.store, mode="a")
    root["temp"][4, 0] = 1000.0
    root["grp/salt"][0, 0] = 999
    root["plain"].resize((4,))
    snapshots["overwrite"] = commit(session, "overwrite")

    rewriter = icechunk.Repository.open(storage(args.path), config=REWRITE)
    rewriter.create_branch("rewritten", snapshots["overwrite"])
    snapshots["rewrite"] = str(rewriter.rewrite_manifests("rewrite", branch="rewritten"))
    emit({"snapshots": snapshots, "library": library_info()})


if __name__ == "__main__":
    main()
