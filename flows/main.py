"""The README's main job.

Until the Prefect pipeline lands (issue: Prefect pipeline), this is a short end-to-end demo of
the store: create a local repository, write a dataset with zarr, commit, branch, tag, and read
everything back, checking it against the source.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import zarr

import icechunk


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", help="repository directory (default: a temporary directory)")
    parser.add_argument("--spec-version", type=int, default=2, choices=(1, 2))
    args = parser.parse_args(argv)

    path = Path(args.repo) if args.repo else Path(tempfile.mkdtemp(prefix="icechunk-demo-"))
    if args.repo and path.exists():
        shutil.rmtree(path)
    repo = icechunk.Repository.create(
        icechunk.local_filesystem_storage(str(path)), spec_version=args.spec_version
    )
    rng = np.random.default_rng(42)
    temperature = rng.normal(280, 10, size=(24, 90, 180)).astype("float32")

    session = repo.writable_session("main")
    root = zarr.group(store=session.store)
    root.attrs["title"] = "icechunk-prefect demo"
    arr = root.create_array(
        "temperature", shape=temperature.shape, chunks=(1, 90, 180), dtype="float32",
        dimension_names=("time", "lat", "lon"), fill_value=float("nan"),
    )
    arr[:] = temperature
    first = session.commit("write temperature", metadata={"source": "demo"})

    session = repo.writable_session("main")
    arr = zarr.open_array(session.store, path="temperature")
    arr[0] = 0.0
    second = session.commit("zero the first time step")
    repo.create_tag("v1", first)

    back = zarr.open_array(repo.readonly_session(tag="v1").store, path="temperature", mode="r")
    latest = zarr.open_array(repo.readonly_session("main").store, path="temperature", mode="r")
    ok = np.array_equal(back[:], temperature) and np.all(latest[0] == 0.0)
    print(f"repository: {path} (spec v{repo.spec_version})")
    for info in repo.ancestry(branch="main"):
        print(f"  {info.id}  {info.written_at:%Y-%m-%d %H:%M:%S}  {info.message}")
    print(f"tag v1 -> {first}; main -> {second}")
    print("read-back check:", "identical to the source" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
