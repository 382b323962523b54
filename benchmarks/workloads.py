"""Benchmark worker: runs ONE workload with ONE implementation and prints a JSON line.

Only the public icechunk / zarr / dask / xarray API is used, so the very same script runs under
our pure-Python ``icechunk`` (``.venv``) and under the real icechunk 2.3.0 (the ``ic2bench``
oracle venv, which has the same zarr, numpy, dask, distributed and xarray versions).
It is started by ``benchmarks/run.py``, once per repetition (or, for the dask workloads, once
per implementation in ``--serve`` mode: one repetition per stdin line ``{"rep": N}``, one
JSON line back, the ``LocalCluster`` kept across repetitions) so that the runner can interleave
implementations; run it directly for debugging::

    python benchmarks/workloads.py commit --impl icechunk --n 10000 --kind inline --reps 3

``--impl zarr`` uses a plain ``zarr.storage.LocalStore`` instead of Icechunk (where the
workload has a zarr counterpart).  The last line printed on stdout is a JSON object with
the per-repetition timings (seconds), their median, the process's peak RSS and, for the dask
workloads, the peak RSS of the cluster's worker processes.  A workload that cannot run with
this implementation prints ``{"skipped": "<reason>"}`` instead of failing.

``--workdir DIR`` keeps the workload's setup (the repository / store to read) in ``DIR``
between processes: the first repetition builds it, later repetitions reuse it, so an expensive
untimed setup is paid once per implementation, not once per repetition.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
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


class Skip(Exception):
    """Raised by a workload that cannot run with this implementation (yet)."""


def _ic() -> Any:
    import icechunk

    return icechunk


NO_FSYNC_ENV = "ICECHUNK_BENCH_NO_FSYNC"
"""Set to ``1`` (``--variant nosync=ICECHUNK_BENCH_NO_FSYNC=1``): ours creates repositories with
``StorageSettings(unsafe_use_fsync=False)``, the real one's behaviour (nothing flushed to the
device), to measure what durability costs in the same run."""


def _new_repo(path: Path, config: Any = None) -> Any:
    ic = _ic()
    if os.environ.get(NO_FSYNC_ENV) == "1":
        config = config if config is not None else ic.RepositoryConfig.default()
        config.storage = ic.StorageSettings(unsafe_use_fsync=False)
    return ic.Repository.create(ic.local_filesystem_storage(str(path)), config=config)


def _open_repo(path: Path, **kwargs: Any) -> Any:
    ic = _ic()
    return ic.Repository.open(ic.local_filesystem_storage(str(path)), **kwargs)


def _chunk_layout(n: int, kind: str) -> tuple[tuple[int, ...], tuple[int, ...], str, Any]:
    """shape, chunks, dtype and data for ``n`` chunks of 1 byte (inline) or 1 KiB (native)."""
    if kind == "inline":
        # 1-byte chunks: below Icechunk's inline threshold, stored inside the manifest
        data = (np.arange(n, dtype=np.int64) % 255 + 1).astype("uint8")
        return (n,), (1,), "uint8", data
    # 1 KiB chunks (256 float32): above the inline threshold, one chunk object each
    data = np.arange(n * 256, dtype="float32") + 1.0
    return (n * 256,), (256,), "float32", data


def _create_array(store: Any, shape: Any, chunks: Any, dtype: str, name: str = "a") -> Any:
    return zarr.create_array(
        store,
        name=name,
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        compressors=None,
        fill_value=0,
    )


def _workdir(args: argparse.Namespace, tmp: Path) -> Path:
    """Directory for a reusable setup: ``--workdir`` if given, else the process's temp dir."""
    return Path(args.workdir) if args.workdir else tmp


# --------------------------------------------------------------------------------------------
# (b) commit of N chunk refs (timed alone); the preceding write is timed too, for information
# --------------------------------------------------------------------------------------------
def wl_commit(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    if args.kind == "virtual":
        return _commit_virtual(args, tmp)
    shape, chunks, dtype, data = _chunk_layout(args.n, args.kind)
    commits: list[float] = []
    writes: list[float] = []
    for rep in range(args.first_rep, args.first_rep + args.reps):
        path = tmp / f"r{rep}"
        if args.impl == "zarr":
            store = zarr.storage.LocalStore(str(path))
            arr = _create_array(store, shape, chunks, dtype)
            t0 = time.perf_counter()
            arr[...] = data
            writes.append(time.perf_counter() - t0)
            shutil.rmtree(path, ignore_errors=True)
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


def _commit_virtual(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """N virtual refs (8-byte pieces of one local file) set as refs, then committed.

    Uses ``store.set_virtual_refs`` with ``VirtualChunkSpec`` where both exist, else
    ``store.set_virtual_ref`` per chunk; skips (with the reason) when neither exists.  A
    ``file://`` virtual chunk container is configured when the API for it exists.
    """
    if args.impl == "zarr":
        raise Skip("plain zarr has no virtual references")
    ic = _ic()
    spec_cls = getattr(ic, "VirtualChunkSpec", None)
    batch = spec_cls is not None and hasattr(ic.IcechunkStore, "set_virtual_refs")
    if not batch and not hasattr(ic.IcechunkStore, "set_virtual_ref"):
        raise Skip(
            "this icechunk has no virtual-reference API yet "
            "(IcechunkStore.set_virtual_refs + VirtualChunkSpec, or IcechunkStore.set_virtual_ref)"
        )
    container_cls = getattr(ic, "VirtualChunkContainer", None)
    store_factory = getattr(ic, "local_filesystem_store", None)
    validate = container_cls is not None and store_factory is not None
    n = args.n
    src_dir = tmp / "virtual-src"
    src_dir.mkdir()
    src = src_dir / "data.bin"
    src.write_bytes((np.arange(n, dtype="<f8") + 1.0).tobytes())
    prefix = f"file://{src_dir}/"
    location = f"file://{src}"
    commits: list[float] = []
    writes: list[float] = []
    build_times: list[float] = []  # the VirtualChunkSpec objects alone
    set_times: list[float] = []  # set_virtual_refs alone
    for rep in range(args.first_rep, args.first_rep + args.reps):
        path = tmp / f"r{rep}"
        config = None
        if validate:
            config = ic.RepositoryConfig.default()
            config.set_virtual_chunk_container(container_cls(prefix, store_factory(str(src_dir))))
        repo = _new_repo(path, config)
        session = repo.writable_session("main")
        _create_array(session.store, (n,), (1,), "float64")
        store = session.store
        t0 = time.perf_counter()
        if batch:
            specs = [
                spec_cls(index=[i], location=location, offset=8 * i, length=8) for i in range(n)
            ]
            t1 = time.perf_counter()
            failed = store.set_virtual_refs("a", specs, validate_containers=validate)
            set_times.append(time.perf_counter() - t1)
            build_times.append(t1 - t0)
            del specs
        else:
            failed = None
            for i in range(n):
                store.set_virtual_ref(
                    f"a/c/{i}", location, offset=8 * i, length=8, validate_container=validate
                )
        writes.append(time.perf_counter() - t0)
        if failed:
            raise RuntimeError(f"{len(failed)} virtual refs refused, e.g. {failed[:3]}")
        t0 = time.perf_counter()
        session.commit(f"{n} virtual refs")
        commits.append(time.perf_counter() - t0)
        shutil.rmtree(path, ignore_errors=True)
    out: dict[str, Any] = {"write": writes, "commit": commits}
    if build_times:
        out["build_specs"] = build_times
        out["set_refs"] = set_times
    return out


# --------------------------------------------------------------------------------------------
# (c) merge_sessions of K forks, each having written a disjoint region (merge timed alone)
# --------------------------------------------------------------------------------------------
def wl_merge(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    if args.impl == "zarr":
        raise Skip("plain zarr has no sessions to merge")
    from icechunk.distributed import merge_sessions

    k = args.k
    per_fork = 4  # chunks written by each fork
    times: list[float] = []
    for rep in range(args.first_rep, args.first_rep + args.reps):
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
    path = _workdir(args, tmp) / "repo"
    ready = path.parent / "ready"
    if not ready.exists():
        shutil.rmtree(path, ignore_errors=True)
        if args.impl == "zarr":
            arr = _create_array(zarr.storage.LocalStore(str(path)), shape, chunks, dtype)
            arr[...] = data
        else:
            repo = _new_repo(path)
            session = repo.writable_session("main")
            _create_array(session.store, shape, chunks, dtype)[...] = data
            session.commit("setup")
            del repo, session
        ready.touch()
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


# --------------------------------------------------------------------------------------------
# in-process full read ``arr[...]`` of a float32 array in 1 MiB chunks (no compressor)
# --------------------------------------------------------------------------------------------
def wl_full_read(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    side = round((args.mib * 2**20 / 4) ** 0.5)  # square float32 array of ``mib`` MiB
    shape, chunks = (side, side), (512, 512)  # 512*512*4 B = 1 MiB chunks
    data = np.random.default_rng(0).random(shape, dtype="float32")
    path = _workdir(args, tmp) / "repo"
    ready = path.parent / "ready"
    if not ready.exists():
        shutil.rmtree(path, ignore_errors=True)
        if args.impl == "zarr":
            store = zarr.storage.LocalStore(str(path))
            _create_array(store, shape, chunks, "float32")[...] = data
        else:
            repo = _new_repo(path)
            session = repo.writable_session("main")
            _create_array(session.store, shape, chunks, "float32")[...] = data
            session.commit("setup")
        ready.touch()
    times: list[float] = []
    for _ in range(args.reps):
        if args.impl == "zarr":
            store = zarr.storage.LocalStore(str(path), read_only=True)
        else:
            store = _open_repo(path).readonly_session("main").store
        a = zarr.open_array(store, path="a", mode="r")
        # one untimed read first: the timed one then measures the store, not the first touch
        # of 2 x 64 MiB of fresh memory (on this VM a page the host has reclaimed costs as
        # much as copying a chunk, and which process finds them reclaimed is luck)
        warm = a[...]
        del warm
        t0 = time.perf_counter()
        got = a[...]
        times.append(time.perf_counter() - t0)
        assert got.shape == shape and np.array_equal(got[-1], data[-1])
        del got
    return {"full_read": times, "mib": side * side * 4 / 2**20}


# --------------------------------------------------------------------------------------------
# dask helpers: a LocalCluster of worker processes, their CPU time and peak RSS
# --------------------------------------------------------------------------------------------
def _worker_usage() -> tuple[float, float, float]:
    """(user + system CPU seconds, peak RSS MiB, user CPU seconds) of the calling process (run
    on each worker)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, ru.ru_utime


_CLIENT: list[Any] = []  # the process's (cluster, client), made on first use


def _client(workers: int) -> Any:
    """A ``distributed`` client of a ``LocalCluster`` of ``workers`` processes x 1 thread.

    One cluster per worker process: in ``--serve`` mode it is reused by every repetition.
    """
    if not _CLIENT:
        try:
            from distributed import Client, LocalCluster
        except ImportError as e:
            raise Skip(f"no dask.distributed in this interpreter ({e})") from None

        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        client = Client(cluster)
        client.run(_warm_imports)
        _CLIENT.extend([cluster, client])
    return _CLIENT[1]


def _warm_imports() -> None:
    """Import on a worker what the workloads use, so no timed repetition pays for it."""
    import dask.array
    import xarray

    del dask.array, xarray
    try:
        import icechunk
        import icechunk.dask
        import icechunk.xarray

        del icechunk
    except ImportError:  # the plain-zarr runs do not need it
        pass


def _close_client() -> None:
    if _CLIENT:
        cluster, client = _CLIENT
        client.close()
        cluster.close()
        _CLIENT.clear()


def _cluster_cpu(client: Any) -> dict[str, tuple[float, float]]:
    """Per worker: its CPU seconds so far, (user + system, user)."""
    return {w: (u[0], u[2]) for w, u in client.run(_worker_usage).items()}


def _cpu_delta(
    before: dict[str, tuple[float, float]],
    after: dict[str, tuple[float, float]],
    *,
    user: bool = False,
) -> float:
    """Sum over workers of the CPU seconds spent between two :func:`_cluster_cpu` calls.

    ``user``: the user part alone, reported beside the total because on this VM the system
    part swings by a factor of two or more from one repetition to the next (a first write into
    guest memory the host has reclaimed costs a page fault on the host, charged to the guest
    as system time).
    """
    if set(before) != set(after):
        raise RuntimeError(f"the cluster's workers changed: {sorted(before)} -> {sorted(after)}")
    part = 1 if user else 0
    return sum(after[w][part] - before[w][part] for w in after)


def _machine_busy() -> float:
    """Busy CPU seconds of the whole machine so far (``/proc/stat``; all processes, kernel
    threads included: the kernel's write-back threads are not any worker's)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return float("nan")
    # user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait
    busy = sum(fields[:8]) - fields[3] - fields[4]
    return busy / os.sysconf("SC_CLK_TCK")


def _cluster_peak_rss(client: Any) -> float:
    return max(u[1] for u in client.run(_worker_usage).values())


def _grid_shape(mib: int, side: int = 512) -> tuple[int, int]:
    """Shape of a float32 array of ``mib`` chunks of ``side`` x ``side`` (1 MiB for 512)."""
    rows = 2 ** (int(math.log2(mib)) // 2)
    return rows * side, (mib // rows) * side


# --------------------------------------------------------------------------------------------
# (a) + (d) dask write of a float32 array in 1 MiB chunks on a LocalCluster, commit, dask read
# --------------------------------------------------------------------------------------------
def wl_dask(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    try:
        import dask.array as da
    except ImportError as e:
        raise Skip(f"no dask in this interpreter ({e})") from None

    shape = _grid_shape(int(args.mib))
    zchunks = (512, 512)
    dchunks = (1024, 1024)  # each dask chunk covers 4 zarr chunks: tasks never share a chunk
    out: dict[str, list[float]] = {
        k: []
        for k in (
            "write",
            "write_cpu",
            "write_user_cpu",
            "commit",
            "machine_cpu",
            "read",
            "read_cpu",
        )
    }
    client = _client(args.workers)
    for rep in range(args.first_rep, args.first_rep + args.reps):
        path = tmp / f"r{rep}"
        src = da.random.default_rng(rep).random(shape, dtype="float32", chunks=dchunks)
        expect = np.asarray(src[:512, :512].compute())
        if args.impl == "zarr":
            target = _create_array(zarr.storage.LocalStore(str(path)), shape, zchunks, "float32")
            cpu0 = _cluster_cpu(client)
            busy0 = _machine_busy()
            t0 = time.perf_counter()
            da.store(src, target, lock=False)
            out["write"].append(time.perf_counter() - t0)
            out["machine_cpu"].append(_machine_busy() - busy0)
            cpu1 = _cluster_cpu(client)
            out["write_cpu"].append(_cpu_delta(cpu0, cpu1))
            out["write_user_cpu"].append(_cpu_delta(cpu0, cpu1, user=True))
            read_store = zarr.storage.LocalStore(str(path), read_only=True)
        else:
            import icechunk.dask

            repo = _new_repo(path)
            s0 = repo.writable_session("main")
            _create_array(s0.store, shape, zchunks, "float32")
            s0.commit("array")
            session = repo.writable_session("main")
            fork = session.fork()
            target = zarr.open_array(fork.store, path="a", mode="r+")
            cpu0 = _cluster_cpu(client)
            busy0 = _machine_busy()
            t0 = time.perf_counter()
            merged = icechunk.dask.store_dask(sources=[src], targets=[target])
            session.merge(merged)
            out["write"].append(time.perf_counter() - t0)
            cpu1 = _cluster_cpu(client)
            t0 = time.perf_counter()
            session.commit("dask write")
            out["commit"].append(time.perf_counter() - t0)
            out["machine_cpu"].append(_machine_busy() - busy0)
            out["write_cpu"].append(_cpu_delta(cpu0, cpu1))
            out["write_user_cpu"].append(_cpu_delta(cpu0, cpu1, user=True))
            read_store = repo.readonly_session("main").store
        # (d) full read with dask on the same cluster
        arr = zarr.open_array(read_store, path="a", mode="r")
        cpu0 = _cluster_cpu(client)
        t0 = time.perf_counter()
        total = da.from_zarr(arr, chunks=dchunks).sum(dtype="float64").compute()
        out["read"].append(time.perf_counter() - t0)
        out["read_cpu"].append(_cpu_delta(cpu0, _cluster_cpu(client)))
        assert np.array_equal(arr[:512, :512], expect), "read back differs"
        assert 0.4 < float(total) / (shape[0] * shape[1]) < 0.6, total
        shutil.rmtree(path, ignore_errors=True)
    workers_rss = _cluster_peak_rss(client)
    res: dict[str, Any] = {k: v for k, v in out.items() if v}
    res["workers_peak_rss_mib"] = workers_rss
    res["mib"] = shape[0] * shape[1] * 4 / 2**20
    return res


# --------------------------------------------------------------------------------------------
# (e) the seed's pattern: template, then one region write per time step in forks on the
#     cluster, merge, commit (plain zarr: the same region writes into a LocalStore)
# --------------------------------------------------------------------------------------------
_NY, _NX = 205, 275  # the rasm dataset's grid


def _step_dataset(itime: int) -> Any:
    """Time step ``itime`` of a rasm-like dataset (``Tair`` float64), without y/x coords."""
    import xarray as xr

    rng = np.random.default_rng(itime)
    tair = rng.random((1, _NY, _NX)) * 40 - 20
    return xr.Dataset({"Tair": (("time", "y", "x"), tair)})


def _write_step_icechunk(itime: int, fork: Any) -> Any:
    import icechunk.xarray

    ds = _step_dataset(itime)
    icechunk.xarray.to_icechunk(ds, fork, region={"time": slice(itime, itime + 1)})
    return fork


def _write_step_zarr(itime: int, path: str) -> int:
    ds = _step_dataset(itime)
    ds.to_zarr(
        zarr.storage.LocalStore(path),
        region={"time": slice(itime, itime + 1)},
        consolidated=False,
        zarr_format=3,
    )
    return itime


def wl_xr_region(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    try:
        import dask.array as da
        import pandas as pd
        import xarray as xr
    except ImportError as e:
        raise Skip(f"no dask/xarray in this interpreter ({e})") from None

    nt = args.steps
    template = xr.Dataset(
        {"Tair": (("time", "y", "x"), da.zeros((nt, _NY, _NX), chunks=(1, _NY, _NX)))},
        coords={
            "time": pd.date_range("1980-09-16", periods=nt, freq="MS"),
            "y": np.arange(_NY),
            "x": np.arange(_NX),
        },
    )
    encoding = {"Tair": {"chunks": (1, _NY, _NX), "compressors": None}}
    out: dict[str, list[float]] = {k: [] for k in ("write", "write_cpu", "merge", "commit")}
    client = _client(args.workers)
    for rep in range(args.first_rep, args.first_rep + args.reps):
        path = tmp / f"r{rep}"
        if args.impl == "zarr":
            store = zarr.storage.LocalStore(str(path))
            template.to_zarr(store, compute=False, encoding=encoding, mode="w", consolidated=False)
            cpu0 = _cluster_cpu(client)
            t0 = time.perf_counter()
            futures = client.map(_write_step_zarr, range(nt), path=str(path), pure=False)
            client.gather(futures)
            out["write"].append(time.perf_counter() - t0)
            out["write_cpu"].append(_cpu_delta(cpu0, _cluster_cpu(client)))
            read_store: Any = zarr.storage.LocalStore(str(path), read_only=True)
        else:
            repo = _new_repo(path)
            s0 = repo.writable_session("main")
            template.to_zarr(
                s0.store, compute=False, encoding=encoding, mode="w", consolidated=False
            )
            s0.commit("initialize store")
            session = repo.writable_session("main")
            cpu0 = _cluster_cpu(client)
            t0 = time.perf_counter()
            futures = [
                client.submit(_write_step_icechunk, i, session.fork(), pure=False)
                for i in range(nt)
            ]
            forks = client.gather(futures)
            out["write"].append(time.perf_counter() - t0)
            out["write_cpu"].append(_cpu_delta(cpu0, _cluster_cpu(client)))
            t0 = time.perf_counter()
            session.merge(*forks)
            out["merge"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            session.commit("finished writes")
            out["commit"].append(time.perf_counter() - t0)
            read_store = repo.readonly_session("main").store
        got = xr.open_zarr(read_store, consolidated=False)
        want = _step_dataset(nt - 1)["Tair"].values[0]
        assert np.array_equal(got["Tair"].isel(time=nt - 1).values, want), "bad region"
        shutil.rmtree(path, ignore_errors=True)
    workers_rss = _cluster_peak_rss(client)
    res: dict[str, Any] = {k: v for k, v in out.items() if v}
    if args.impl != "zarr":
        res["total"] = [
            w + m + c for w, m, c in zip(out["write"], out["merge"], out["commit"], strict=True)
        ]
    else:
        res["total"] = list(out["write"])
    res["workers_peak_rss_mib"] = workers_rss
    return res


def wl_manifest(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Encode and decode (timed apart) one chunk manifest of N native refs, in process.

    This repository's codec only (``icechunk.format``): the real one's is not exposed to
    Python (its commit and open workloads time it inside them). Replaces what used to be a
    timed unit test (benchmarks never run as tests).
    """
    if args.impl == "zarr":
        raise Skip("plain zarr has no chunk manifests")
    try:
        from icechunk.format import decode_manifest, encode_manifest
        from icechunk.format.model import ArrayManifest, ChunkKind, ChunkRefs, Manifest
    except ImportError:
        raise Skip("this icechunk's manifest codec is not exposed to Python") from None
    n = args.n
    rng = np.random.default_rng(0)
    coords = np.stack(np.unravel_index(np.arange(n), (1000, -(-n // 1000))), axis=1)
    refs = ChunkRefs(
        coords=coords.astype(np.uint32),
        kind=np.full(n, ChunkKind.NATIVE, dtype=np.uint8),
        chunk_id=rng.integers(0, 256, (n, 12), dtype=np.uint8),
        offset=np.zeros(n, dtype=np.uint64),
        length=rng.integers(1, 1 << 40, n, dtype=np.uint64),
    )
    m = Manifest(os.urandom(12), [ArrayManifest(os.urandom(8), refs)], 2)
    encodes: list[float] = []
    decodes: list[float] = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        data = encode_manifest(m, 2)
        t1 = time.perf_counter()
        decoded = decode_manifest(data, "manifests/BENCH")
        t2 = time.perf_counter()
        if len(decoded.arrays[0].refs) != n:
            raise RuntimeError(f"decoded {len(decoded.arrays[0].refs)} refs, wrote {n}")
        encodes.append(t1 - t0)
        decodes.append(t2 - t1)
    return {"encode": encodes, "decode": decodes}


WORKLOADS = {
    "commit": wl_commit,
    "manifest": wl_manifest,
    "merge": wl_merge,
    "open_read": wl_open_read,
    "full_read": wl_full_read,
    "dask": wl_dask,
    "xr_region": wl_xr_region,
}


def run_once(args: argparse.Namespace) -> dict[str, Any]:
    """Run ``args.reps`` repetitions of ``args.workload``; the JSON-able result."""
    info: dict[str, Any] = {"python": sys.version.split()[0], "zarr": zarr.__version__}
    if args.impl == "icechunk":
        ic = _ic()
        info["icechunk"] = getattr(ic, "__version__", "?")
        info["icechunk_file"] = ic.__file__
    t_start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="icbench-") as d:
            timings = WORKLOADS[args.workload](args, Path(d))
    except Skip as e:
        return {"info": info, "skipped": str(e)}
    result: dict[str, Any] = {"info": info, "timings": {}, "extra": {}}
    for key, val in timings.items():
        if isinstance(val, list):
            result["timings"][key] = {"median": statistics.median(val), "all": val}
        else:
            result["extra"][key] = val
    result["wall"] = time.perf_counter() - t_start
    # ru_maxrss is in KiB on Linux
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def serve(args: argparse.Namespace) -> None:
    """Answer one repetition per stdin line ``{"rep": N}`` with one JSON line, until EOF.

    The process (and its dask cluster) lives across repetitions, so the runner can interleave
    implementations without paying a cluster start per repetition.  A failing repetition
    prints ``{"error": ...}`` and ends the process.
    """
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            args.first_rep, args.reps = int(json.loads(line)["rep"]), 1
            try:
                result = run_once(args)
            except Exception as e:
                print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
                raise
            print(json.dumps(result), flush=True)
    finally:
        _close_client()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("workload", choices=[*sorted(WORKLOADS), "_open_child"])
    p.add_argument("--path", default="")
    p.add_argument("--workdir", default="", help="persistent directory for a reusable setup")
    p.add_argument("--impl", choices=["icechunk", "zarr"], default="icechunk")
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--kind", choices=["inline", "native", "virtual"], default="inline")
    p.add_argument("--k", type=int, default=64)
    p.add_argument("--mib", type=float, default=64)
    p.add_argument("--steps", type=int, default=36)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--first-rep", type=int, default=0, help="index of the first repetition")
    p.add_argument("--serve", action="store_true", help="one repetition per stdin line")
    args = p.parse_args(argv)
    if args.workload == "_open_child":
        _open_child(args)
    elif args.serve:
        serve(args)
    else:
        try:
            print(json.dumps(run_once(args)))
        finally:
            _close_client()


if __name__ == "__main__":
    main()
