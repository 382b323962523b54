"""Overhead of the Prefect ingest flow over a bare ``store_dask`` write of the same data.

    .venv/bin/python -m benchmarks.prefect_overhead            # 512 MiB, 3 repetitions each
    .venv/bin/python -m benchmarks.prefect_overhead --mib 64 --reps 1   # a quick look

Both paths write the same dataset (one float32 variable, 1 MiB per time step) from empty into
a new local repository, on the same ``LocalCluster`` of two worker processes, region by region
(the same chunk-aligned regions), and commit once:

* **bare**: ``tasks.core`` plain functions for the schema and the resize, a dask array of one
  delayed source load per region, ``icechunk.dask.store_dask``, ``session.commit``;
* **prefect**: ``flows.ingest`` on a ``DaskTaskRunner`` pointed at that cluster, against a
  local Prefect API server (task runs, logs, events, artifacts, the idempotency checks).

Repetitions are interleaved (bare, prefect, bare, ...) so that the load of a shared machine
hits both alike. Prints the medians and the ratio, and writes them to
``benchmarks/results-prefect-overhead.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class BenchSource:
    """``data(time, y, x)`` float32, ``ny * nx * 4`` bytes per step, deterministic per step."""

    ntime: int
    ny: int = 512
    nx: int = 512
    dim: str = "time"

    def describe(self) -> str:
        return f"benchmark {self.ntime}x{self.ny}x{self.nx} float32"

    def fingerprint(self) -> str:
        return hashlib.sha256(repr(self).encode()).hexdigest()[:16]

    def coordinate(self) -> np.ndarray:
        return np.arange(self.ntime, dtype="int64")

    def block(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, self.ny, self.nx), dtype="float32")
        for k, i in enumerate(range(start, stop)):
            out[k] = np.random.default_rng(i).standard_normal((self.ny, self.nx), dtype="float32")
        return out

    def load(self, start: int, stop: int) -> xr.Dataset:
        stop = min(stop, self.ntime)
        return xr.Dataset(
            {"data": (("time", "y", "x"), self.block(start, stop))},
            coords={"time": ("time", self.coordinate()[start:stop])},
        )


def bare(source: BenchSource, path: Path, chunk: int, per_region: int) -> float:
    import dask
    import dask.array as da
    import zarr

    from icechunk.dask import store_dask
    from tasks import core

    began = time.perf_counter()
    repo = core.open_repository(str(path))
    core.initialize_dataset(repo, source, chunks={"time": chunk})
    session = repo.writable_session("main")
    regions = core.extend_dataset(session, source, 0, source.ntime, chunks_per_region=per_region)
    target = zarr.open_array(session.store, path="data", mode="r+")
    blocks = [
        da.from_delayed(
            dask.delayed(source.block)(r.source_start, r.source_stop),
            shape=(r.size, source.ny, source.nx),
            dtype="float32",
        )
        for r in regions
    ]
    store_dask(session, sources=[da.concatenate(blocks)], targets=[target])
    session.commit("bare store_dask write")
    return time.perf_counter() - began


def prefect(source: BenchSource, path: Path, chunk: int, per_region: int, address: str) -> float:
    from flows import ingest
    from flows.runners import DaskConfig, make_task_runner

    run = ingest.with_options(task_runner=make_task_runner(DaskConfig(address=address)))
    began = time.perf_counter()
    snapshot = run(source, str(path), chunks={"time": chunk}, chunks_per_region=per_region)
    elapsed = time.perf_counter() - began
    assert snapshot is not None
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=512, help="dataset size (1 MiB per step)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=8, help="time steps per chunk")
    parser.add_argument("--chunks-per-region", type=int, default=8)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results-prefect-overhead.json"
    )
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="prefect-overhead-"))
    os.environ.update(
        PREFECT_HOME=str(work / "prefect-home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL=os.environ.get("PREFECT_LOGGING_LEVEL", "WARNING"),
        DASK_LOGGING__DISTRIBUTED="warning",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
    )
    from prefect.server.api.server import SubprocessASGIServer  # noqa: TID251 -- the API to time against

    server = SubprocessASGIServer()
    server.start(timeout=180)
    os.environ["PREFECT_API_URL"] = server.api_url
    from distributed import Client, LocalCluster

    source = BenchSource(ntime=args.mib)
    times: dict[str, list[float]] = {"bare": [], "prefect": []}
    try:
        with (
            LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
            ) as cluster,
            Client(cluster) as client,
        ):
            client.run(lambda: __import__("benchmarks.prefect_overhead"))  # warm the workers
            # one untimed small run of each: first-call costs (imports on the workers, the
            # flow engine's first run in this process) are not what is measured
            warm = BenchSource(ntime=16)
            bare(warm, work / "warm-bare", args.chunk, args.chunks_per_region)
            prefect(
                warm,
                work / "warm-prefect",
                args.chunk,
                args.chunks_per_region,
                cluster.scheduler_address,
            )
            for rep in range(args.reps):
                for name in ("bare", "prefect"):
                    path = work / f"{name}-{rep}"
                    if name == "bare":
                        t = bare(source, path, args.chunk, args.chunks_per_region)
                    else:
                        t = prefect(
                            source,
                            path,
                            args.chunk,
                            args.chunks_per_region,
                            cluster.scheduler_address,
                        )
                    times[name].append(t)
                    print(f"rep {rep + 1} {name:8s} {t:6.2f} s", flush=True)
                    shutil.rmtree(path)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    medians = {k: statistics.median(v) for k, v in times.items()}
    ratio = medians["prefect"] / medians["bare"]
    result = {
        "mib": args.mib,
        "chunk_steps": args.chunk,
        "chunks_per_region": args.chunks_per_region,
        "regions": -(-args.mib // (args.chunk * args.chunks_per_region)),
        "workers": 2,
        "times_s": times,
        "median_s": medians,
        "ratio_prefect_over_bare": ratio,
        "load_average": os.getloadavg(),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"median bare {medians['bare']:.2f} s, prefect {medians['prefect']:.2f} s: ratio {ratio:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
