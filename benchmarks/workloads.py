"""Benchmark worker: runs ONE workload with ONE implementation and prints a JSON line.

Only the public icechunk / zarr API is used, so the very same script runs under our
pure-Python ``icechunk`` (``.venv``) and under the real icechunk 2.3.0 (the ic2 oracle venv).
It is started by ``benchmarks/run.py``; run it directly for debugging::

    python benchmarks/workloads.py commit --impl icechunk --n 10000 --kind inline --reps 3

``--impl zarr`` uses a plain ``zarr.storage.LocalStore`` instead of Icechunk (where the
workload has a zarr counterpart).  The last line printed on stdout is a JSON object with
the per-repetition timings (seconds), their median, and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import zarr


def _ic() -> Any:
    import icechunk

    return icechunk


def _new_repo(path: Path) -> Any:
    ic = _ic()
    return ic.Repository.create(ic.local_filesystem_storage(str(path)))


def _open_repo(path: Path) -> Any:
    ic = _ic()
    return ic.Repository.open(ic.local_filesystem_storage(str(path)))


def _chunk_layout(n: int, kind: str) -> tuple[tuple[int, ...], tuple[int, ...], str, Any]:
    """shape, chunks, dtype and data for ``n`` chunks of 1 byte (inline) or 1 KiB (native)."""
    if kind == "inline":
        # 1-byte chunks: below Icechunk's inline threshold, stored inside the manifest
        data = (np.arange(n, dtype=np.int64) % 255 + 1).astype("uint8")
        return (n,), (1,), "uint8", data
    # 1 KiB chunks (256 float32): above the inline threshold, one chunk object each
    data = np.arange(n * 256, dtype="float32") + 1.0
    return (n * 256,), (256,), "float32", data


def _create_array(store: Any, shape: Any, chunks: Any, dtype: str) -> Any:
    return zarr.create_array(
        store,
        name="a",
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        compressors=None,
        fill_value=0,
    )


# --------------------------------------------------------------------------------------------
# (b) commit of N chunk refs (timed alone); the preceding write is timed too, for information
# --------------------------------------------------------------------------------------------
def wl_commit(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    shape, chunks, dtype, data = _chunk_layout(args.n, args.kind)
    commits: list[float] = []
    writes: list[float] = []
    for rep in range(args.reps):
        path = tmp / f"r{rep}"
        if args.impl == "zarr":
            store = zarr.storage.LocalStore(str(path))
            arr = _create_array(store, shape, chunks, dtype)
            t0 = time.perf_counter()
            arr[...] = data
            writes.append(time.perf_counter() - t0)
            continue
        repo = _new_repo(path)
        session = repo.writable_session("main")
        arr = _create_array(session.store, shape, chunks, dtype)
        t0 = time.perf_counter()
        arr[...] = data
        writes.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        session.commit(f"{args.n} refs")
        commits.append(time.perf_counter() - t0)
        shutil.rmtree(path, ignore_errors=True)
    out: dict[str, Any] = {"write": writes}
    if commits:
        out["commit"] = commits
    return out


# --------------------------------------------------------------------------------------------
# (c) merge_sessions of K forks, each having written a disjoint region (merge timed alone)
# --------------------------------------------------------------------------------------------
def wl_merge(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from icechunk.distributed import merge_sessions

    k = args.k
    per_fork = 4  # chunks written by each fork
    times: list[float] = []
    for rep in range(args.reps):
        path = tmp / f"r{rep}"
        repo = _new_repo(path)
        s0 = repo.writable_session("main")
        _create_array(s0.store, (k * per_fork * 16,), (16,), "float32")
        s0.commit("array")
        session = repo.writable_session("main")
        forks = []
        for i in range(k):
            fork = session.fork()
            a = zarr.open_array(fork.store, path="a", mode="r+")
            lo = i * per_fork * 16
            a[lo : lo + per_fork * 16] = np.arange(per_fork * 16, dtype="float32") + i + 1
            # forks come back from workers pickled in real use
            forks.append(pickle.loads(pickle.dumps(fork)))
        t0 = time.perf_counter()
        merged = merge_sessions(*forks)
        times.append(time.perf_counter() - t0)
        session.merge(merged)
        session.commit("merged")
        # sanity check
        check = zarr.open_array(repo.readonly_session("main").store, path="a", mode="r")
        assert float(check[k * per_fork * 16 - 1]) == float(per_fork * 16 - 1 + k), "bad merge"
        shutil.rmtree(path, ignore_errors=True)
    return {"merge": times}


# --------------------------------------------------------------------------------------------
# (d') open a read-only session + read one chunk of an N-chunk array
# --------------------------------------------------------------------------------------------
def wl_open_read(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    shape, chunks, dtype, data = _chunk_layout(args.n, "inline")
    path = tmp / "repo"
    if args.impl == "zarr":
        arr = _create_array(zarr.storage.LocalStore(str(path)), shape, chunks, dtype)
        arr[...] = data
    else:
        repo = _new_repo(path)
        session = repo.writable_session("main")
        _create_array(session.store, shape, chunks, dtype)[...] = data
        session.commit("setup")
        del repo, session
    idx = args.n // 2 + 7
    # Each timed open runs in a fresh child process of the same interpreter (imports done
    # before the clock starts), so no in-process cache of a previous open can help it.
    times: list[float] = []
    for _ in range(args.reps):
        out = (
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "_open_child",
                    "--impl",
                    args.impl,
                    "--path",
                    str(path),
                    "--n",
                    str(idx),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        child = json.loads(out)
        times.append(child["t"])
        assert child["value"] == int(data[idx]), (child, data[idx])
    return {"open_read": times}


# --------------------------------------------------------------------------------------------
# (e') in-process full read ``arr[...]`` of a float32 array in 1 MiB chunks (no compressor)
# --------------------------------------------------------------------------------------------
def wl_full_read(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    side = round((args.mib * 2**20 / 4) ** 0.5)  # square float32 array of ``mib`` MiB
    shape, chunks = (side, side), (512, 512)  # 512*512*4 B = 1 MiB chunks
    data = np.random.default_rng(0).random(shape, dtype="float32")
    path = tmp / "repo"
    if args.impl == "zarr":
        _create_array(zarr.storage.LocalStore(str(path)), shape, chunks, "float32")[...] = data
    else:
        repo = _new_repo(path)
        session = repo.writable_session("main")
        _create_array(session.store, shape, chunks, "float32")[...] = data
        session.commit("setup")
    times: list[float] = []
    for _ in range(args.reps):
        if args.impl == "zarr":
            store = zarr.storage.LocalStore(str(path), read_only=True)
        else:
            store = _open_repo(path).readonly_session("main").store
        a = zarr.open_array(store, path="a", mode="r")
        t0 = time.perf_counter()
        got = a[...]
        times.append(time.perf_counter() - t0)
        assert got.shape == shape and np.array_equal(got[-1], data[-1])
        del got
    return {"full_read": times, "mib": side * side * 4 / 2**20}


def _open_child(args: argparse.Namespace) -> None:
    """Child of :func:`wl_open_read`: time open + read of element ``args.n`` once."""
    if args.impl == "icechunk":
        _ic()
    path = Path(args.path)
    t0 = time.perf_counter()
    if args.impl == "zarr":
        store = zarr.storage.LocalStore(str(path), read_only=True)
    else:
        store = _open_repo(path).readonly_session("main").store
    a = zarr.open_array(store, path="a", mode="r")
    value = a[args.n]
    t = time.perf_counter() - t0
    print(json.dumps({"t": t, "value": int(value)}))


WORKLOADS = {
    "commit": wl_commit,
    "merge": wl_merge,
    "open_read": wl_open_read,
    "full_read": wl_full_read,
}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("workload", choices=[*sorted(WORKLOADS), "_open_child"])
    p.add_argument("--path", default="")
    p.add_argument("--impl", choices=["icechunk", "zarr"], default="icechunk")
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--kind", choices=["inline", "native"], default="inline")
    p.add_argument("--k", type=int, default=64)
    p.add_argument("--mib", type=float, default=64)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args(argv)
    if args.workload == "_open_child":
        _open_child(args)
        return

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "zarr": zarr.__version__,
    }
    if args.impl == "icechunk":
        ic = _ic()
        info["icechunk"] = getattr(ic, "__version__", "?")
        info["icechunk_file"] = ic.__file__
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="icbench-") as d:
        timings = WORKLOADS[args.workload](args, Path(d))
    result: dict[str, Any] = {"info": info, "timings": {}, "extra": {}}
    for key, val in timings.items():
        if isinstance(val, list):
            result["timings"][key] = {"median": statistics.median(val), "all": val}
        else:
            result["extra"][key] = val
    result["wall"] = time.perf_counter() - t_start
    # ru_maxrss is in KiB on Linux
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    main()
