"""The README's main job: ``ingest`` then ``append`` on embedded defaults.

A local repository, a local Dask cluster of worker processes and Prefect's local API (a
temporary server, unless ``PREFECT_API_URL`` points at one). The data is a realistic gridded
weather dataset the package generates itself (size configurable), or real netCDF files given on
the command line. Prints the commits it made and checks that the data reads back identical to
the source.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path


def _prefect_environment(root: Path) -> object | None:
    """Point this process and the Dask workers it spawns at one local Prefect API.

    Unless ``PREFECT_API_URL`` is set, start Prefect's local API server (SQLite under
    ``.cache/prefect-home``) and export its URL, so worker-side task runs report to the same
    API instead of each starting a temporary server of its own. Returns the server to stop.

    Must run before Prefect (or distributed) is imported: both read these variables once.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    # distributed logs every scheduler/nanny/worker start and stop at INFO, and its comms'
    # shutdown races at ERROR; this job reports progress through Prefect's logs instead.
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    if os.environ.get("PREFECT_API_URL"):
        return None
    home = Path(os.environ.setdefault("PREFECT_HOME", str(root / ".cache" / "prefect-home")))
    home.mkdir(parents=True, exist_ok=True)
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start(timeout=180)
    os.environ["PREFECT_API_URL"] = server.api_url
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("netcdf", nargs="*", help="netCDF files to ingest (default: synthetic)")
    parser.add_argument("--dim", default="time", help="dimension to append along (netCDF)")
    parser.add_argument("--repo", default="demo-repo", help="repository directory (recreated)")
    parser.add_argument("--ntime", type=int, default=32, help="synthetic: time steps")
    parser.add_argument("--nlat", type=int, default=180, help="synthetic: latitudes")
    parser.add_argument("--nlon", type=int, default=360, help="synthetic: longitudes")
    parser.add_argument("--workers", type=int, default=2, help="local Dask worker processes")
    parser.add_argument("--chunks-per-region", type=int, default=4)
    args = parser.parse_args(argv)

    root = Path.cwd()
    server = _prefect_environment(root)
    try:
        from flows.runners import local_cluster

        # One cluster for the job's three flow runs (each flow run would otherwise start and
        # stop a cluster of its own), started after the API so its workers know the URL.
        with local_cluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
        ) as cluster:
            return _run(args, cluster.scheduler_address)
    finally:
        _drain_prefect_workers()
        if server is not None:
            server.stop()  # type: ignore[attr-defined]


def _drain_prefect_workers() -> None:
    """Deliver queued logs and events before the API server goes away."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    EventsWorker.drain_all(timeout=10)


def _run(args: argparse.Namespace, dask_address: str) -> int:
    """Ingest, append, append again; print the commits and the read-back check."""

    import xarray as xr

    import flows
    import icechunk
    from flows.runners import DaskConfig, make_task_runner
    from tasks.sources import NetCDFSource, SyntheticWeatherSource

    runner = make_task_runner(DaskConfig(address=dask_address))
    ingest = flows.ingest.with_options(task_runner=runner)
    append = flows.append.with_options(task_runner=runner)

    repo_path = Path(args.repo).absolute()
    if repo_path.exists():
        shutil.rmtree(repo_path)

    if args.netcdf:
        full = NetCDFSource(tuple(str(Path(p).absolute()) for p in args.netcdf), dim=args.dim)
        n = len(full.coordinate())
        first, first_until = full, max(1, n // 2)
    else:
        full = SyntheticWeatherSource(ntime=args.ntime, nlat=args.nlat, nlon=args.nlon)
        n = args.ntime
        first, first_until = full, max(1, (3 * n) // 4)

    started = time.perf_counter()
    print(f"==> ingest: {first.describe()}, first {first_until} of {n} {full.dim} steps")
    snap1 = ingest(
        first, str(repo_path), until=first_until, chunks_per_region=args.chunks_per_region
    )
    print(f"==> append: the remaining {n - first_until} steps (a recurring run)")
    snap2 = append(full, str(repo_path), chunks_per_region=args.chunks_per_region)
    print("==> append again: nothing new, so no commit")
    snap3 = append(full, str(repo_path))
    elapsed = time.perf_counter() - started

    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(repo_path)))
    print(f"\nrepository {repo_path} (spec v{repo.spec_version}), commits on main:")
    for info in repo.ancestry(branch="main"):
        print(f"  {info.id}  {info.written_at:%H:%M:%S}  {info.message}")
    stored = xr.open_zarr(repo.readonly_session("main").store, consolidated=False).load()
    expected = full.load(0, n)
    try:
        xr.testing.assert_identical(stored, expected)
        identical = True
    except AssertionError as e:
        identical = False
        print(e)
    print(f"\ningest -> {snap1}\nappend -> {snap2}\nsecond append -> {snap3} (expected None)")
    print(f"read-back check: {'identical to the source' if identical else 'MISMATCH'}")
    print(f"total time {elapsed:.1f} s")
    return 0 if identical and snap3 is None and snap1 and snap2 else 1


if __name__ == "__main__":
    sys.exit(main())
