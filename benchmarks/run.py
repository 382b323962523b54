"""Side-by-side benchmark: our icechunk vs the real icechunk 2.3.0 vs plain zarr LocalStore.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.run --quick            # about 2 minutes
    .venv/bin/python -m benchmarks.run                    # full mode, 8-15 minutes
    .venv/bin/python -m benchmarks.run --only dask,commit # a subset of the workloads
    .venv/bin/python -m benchmarks.run --tiny             # smallest sizes, 1 repetition (CI)
    .venv/bin/python -m benchmarks.run --tiny --compare   # ... and each ratio vs baseline.json
    .venv/bin/python -m benchmarks.run --only dask --variant commit=ICECHUNK_LOCAL_WRITEBACK=commit

Repetitions are interleaved across implementations (ours, real, zarr, ours, real, zarr, ...)
so that the load of a shared machine hits all alike. Every repetition of a non-dask workload
is a fresh subprocess of ``benchmarks/workloads.py``; a dask workload keeps one worker
process (``--serve``, hence one ``LocalCluster``) per implementation for all its repetitions:

* ``ours``  -- ``.venv/bin/python`` (imports this repository's ``icechunk``)
* ``real``  -- the ``ic2bench`` oracle venv (icechunk 2.3.0 with the project's zarr, numpy,
  dask, distributed and xarray versions; built on first use by ``tests/interop/oracle.py``),
  started from a temporary working directory so that this repository's ``icechunk/`` cannot
  shadow it
* ``zarr``  -- ``.venv/bin/python`` with ``zarr.storage.LocalStore`` (where meaningful)

The runner prints a Markdown table of medians with the ratios ours/real and ours/zarr
(< 1: we are faster) and the peak RSS, and writes every raw timing to a JSON file.
"""

from __future__ import annotations

import argparse
import compileall
import datetime as dt
import importlib.util
import json
import os
import platform
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "benchmarks" / "workloads.py"
OURS_PY = ROOT / ".venv" / "bin" / "python"
REAL_ORACLE = "ic2bench"
"""The real icechunk 2.3.0 with the project's zarr, numpy, dask, distributed and xarray, in every
mode: the smoke test too compares the Dask and xarray workloads (building it takes about 20 s
from the local package index, the first time)."""
BASELINE = ROOT / "benchmarks" / "baseline.json"
IMPLS = ("ours", "real", "zarr")
WORKLOAD_NAMES = (
    "dask",
    "commit",
    "virtual",
    "manifest",
    "merge",
    "open_read",
    "full_read",
    "xr_region",
)
"""Names ``--only`` selects by: a case's ``select`` name, else its worker workload."""


@dataclass
class Case:
    """One benchmarked workload configuration.

    ``args`` are the worker's arguments (the first is the workload name); ``metrics`` the
    timing keys reported; ``impls`` the implementations run; ``reps`` the repetitions per
    implementation (``impl_reps`` overrides it for one implementation); ``reuse_setup``
    gives each implementation a persistent ``--workdir`` so the untimed setup is built once;
    ``serve`` runs all repetitions of an implementation in one ``--serve`` worker process.
    """

    label: str
    args: list[str]
    metrics: list[str]
    impls: tuple[str, ...] = IMPLS
    reps: int = 3
    impl_reps: dict[str, int] = field(default_factory=dict)
    reuse_setup: bool = False
    serve: bool = False
    select: str = ""

    @property
    def workload(self) -> str:
        """The name ``--only`` selects the case by (``select``, else the worker workload)."""
        return self.select or self.args[0]


def cases(mode: str) -> list[Case]:
    """The workloads of ``mode`` (``quick``, ``full`` or ``tiny``, the smoke test's)."""
    quick, tiny = mode == "quick", mode == "tiny"
    reps = 1 if tiny else 3
    workers = "1" if tiny else "2"  # one worker process starts faster: tiny is a smoke test
    out: list[Case] = []
    # (a) + (d): dask write / commit / dask read on a LocalCluster of 2 worker processes
    mib = 4 if tiny else 32 if quick else 512
    out.append(
        Case(
            f"dask {mib} MiB f32, 1 MiB chunks, {workers} workers",
            ["dask", "--mib", str(mib), "--workers", workers],
            ["write", "write_cpu", "write_user_cpu", "commit", "machine_cpu", "read", "read_cpu"],
            reps=reps,
            serve=True,
        )
    )
    # (b) commit of N refs: written chunks (inline / native) and virtual refs
    if tiny:
        written = [(1000, "inline"), (1000, "native")]
        virtual = [1000]
    elif quick:
        written = [(10_000, "inline")]
        virtual = [100_000]
    else:
        written = [(10_000, "inline"), (10_000, "native"), (100_000, "inline")]
        virtual = [100_000, 1_000_000]
    for n, kind in written:
        what = "1 B inline" if kind == "inline" else "1 KiB native"
        out.append(
            Case(
                f"commit {_count(n)} refs ({what})",
                ["commit", "--n", str(n), "--kind", kind],
                ["commit", "write"],
                # plain zarr only gives a write-time reference here: one repetition, and none
                # for 100k chunks (writing 100k files takes a minute and would dominate the run)
                impls=IMPLS if n < 100_000 else ("ours", "real"),
                reps=reps,
                impl_reps={"zarr": 1},
            )
        )
    out.extend(
        Case(
            f"commit {_count(n)} virtual refs",
            ["commit", "--n", str(n), "--kind", "virtual"],
            ["commit", "write", "build_specs", "set_refs"],
            impls=("ours", "real"),
            reps=reps,
            select="virtual",
        )
        for n in virtual
    )
    # chunk manifest codec: encode + decode of N native refs (ours only, in process)
    n_manifest = 10_000 if tiny else 100_000 if quick else 1_000_000
    out.append(
        Case(
            f"manifest codec {_count(n_manifest)} native refs (ours only)",
            ["manifest", "--n", str(n_manifest)],
            ["encode", "decode"],
            impls=("ours",),
            reps=reps,
        )
    )
    # (c) merge_sessions of K forks
    out.extend(
        Case(
            f"merge_sessions {k} forks",
            ["merge", "--k", str(k)],
            ["merge"],
            impls=("ours", "real"),
            reps=reps,
        )
        for k in ((8,) if tiny else (64, 256))
    )
    # (d) open a session + read one chunk of an N-chunk array (fresh process per open)
    n_open = 1000 if tiny else 10_000 if quick else 100_000
    out.append(
        Case(
            f"open ro session + read 1 chunk ({_count(n_open)}-chunk array)",
            ["open_read", "--n", str(n_open)],
            ["open_read"],
            reps=reps,
            reuse_setup=True,
        )
    )
    # in-process full read (no dask)
    if not tiny:
        fr = 16 if quick else 64
        out.append(
            Case(
                f"in-process arr[...] read {fr} MiB (1 MiB chunks)",
                ["full_read", "--mib", str(fr)],
                ["full_read"],
                reps=reps,
                reuse_setup=True,
            )
        )
    # (e) the seed's region-per-time-step pattern: forks on the cluster, merge, commit
    steps = 4 if tiny else 12 if quick else 36
    out.append(
        Case(
            f"xarray region per time step, {steps} steps (205x275 f64), {workers} workers",
            ["xr_region", "--steps", str(steps), "--workers", workers],
            ["total", "write", "write_cpu", "merge", "commit"],
            reps=reps,
            serve=True,
        )
    )
    return out


def _count(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k"


def real_python() -> Path:
    """Interpreter of the :data:`REAL_ORACLE` venv, built through ``tests/interop/oracle.py``
    on first use."""
    spec = importlib.util.spec_from_file_location(
        "_bench_oracle", ROOT / "tests" / "interop" / "oracle.py"
    )
    assert spec is not None and spec.loader is not None
    oracle = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = oracle  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(oracle)
    return Path(oracle.ensure(REAL_ORACLE).python)


def run_worker(
    py: Path,
    impl: str,
    args: list[str],
    timeout: float,
    workdir: Path | None,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run one worker process for one repetition; its JSON result, or ``{"error": ...}``."""
    cmd = [str(py), str(WORKER), *args, "--reps", "1"]
    cmd += ["--impl", "zarr" if impl == "zarr" else "icechunk"]
    if workdir is not None:
        cmd += ["--workdir", str(workdir)]
    env = _worker_env(extra_env)
    with tempfile.TemporaryDirectory(prefix="icbench-cwd-") as cwd:
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd,
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timeout after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-600:]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    result["process_wall"] = time.perf_counter() - t0
    return result


def _worker_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["ICECHUNK_LOG"] = "error"  # the real icechunk warns about local storage on stderr
    env.update(extra or {})
    return env


WARMUP_REP = 1000
"""The repetition number of the untimed warm-up of a ``--serve`` worker (see :func:`_warm_up`)."""


def _warm_up(server: Server, timeout: float) -> dict[str, Any]:
    """Run one untimed repetition on a new ``--serve`` worker; ``{}``, or its error/skip.

    The timed repetitions then start with the cluster's workers' heaps and the page cache
    warm: on this VM a first write into memory the guest has not touched for a while costs
    several times the CPU of a later one, which made whichever implementation ran first
    look slower (and its worker CPU figure meaningless).
    """
    r = server.request(WARMUP_REP, timeout)
    return {k: r[k] for k in ("error", "skipped") if k in r}


class Server:
    """A worker process in ``--serve`` mode: one repetition per request, one process (and
    one dask cluster) for all repetitions of one (workload, implementation)."""

    def __init__(
        self, py: Path, impl: str, args: list[str], extra_env: dict[str, str] | None = None
    ) -> None:
        self.cwd = tempfile.mkdtemp(prefix="icbench-cwd-")
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in close())
        cmd = [str(py), str(WORKER), *args, "--serve"]
        cmd += ["--impl", "zarr" if impl == "zarr" else "icechunk"]
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.cwd,
            env=_worker_env(extra_env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
        self._buf = b""

    def request(self, rep: int, timeout: float) -> dict[str, Any]:
        """Run repetition ``rep``; its JSON result, or ``{"error": ...}``."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        t0 = time.perf_counter()
        try:
            self.proc.stdin.write(json.dumps({"rep": rep}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            return {"error": f"worker exited: {self._stderr_tail()}"}
        while True:
            line = self._readline(t0 + timeout)
            if line is None:
                self.proc.kill()
                self.proc.wait()
                return {"error": f"timeout after {timeout:.0f} s"}
            if not line:
                self.proc.wait()
                return {"error": f"exit {self.proc.returncode}: {self._stderr_tail()}"}
            if line.startswith("{"):
                break
        result: dict[str, Any] = json.loads(line)
        if "error" in result:
            result["error"] += f"\n{self._stderr_tail()}"
        result["process_wall"] = time.perf_counter() - t0
        return result

    def _readline(self, deadline: float) -> str | None:
        """Next stdout line ('' at EOF, None at the deadline), read unbuffered so that
        ``select`` never waits on a line already sitting in a buffer."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.perf_counter()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            data = os.read(fd, 1 << 16)
            if not data:
                return ""
            self._buf += data
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode() + "\n"

    def _stderr_tail(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().strip()[-600:]

    def close(self) -> None:
        """End the worker (EOF on its stdin lets it shut its cluster down cleanly)."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()
        shutil.rmtree(self.cwd, ignore_errors=True)


def run_case(
    case: Case,
    pys: dict[str, Path],
    timeout: float,
    envs: dict[str, dict[str, str]] | None = None,
) -> dict[str, Any]:
    """All repetitions of ``case``, interleaved across implementations; the raw results.

    ``envs`` holds the extra environment of each implementation (the ``--variant`` ones).
    """
    envs = envs or {}
    per_impl: dict[str, dict[str, Any]] = {
        impl: {"all": {}, "peak_rss_mib": None, "workers_peak_rss_mib": None} for impl in case.impls
    }
    workdirs = {
        impl: Path(tempfile.mkdtemp(prefix=f"icbench-{impl}-"))
        for impl in case.impls
        if case.reuse_setup
    }
    servers: dict[str, Server] = {}  # started on first use, so their start-ups do not overlap
    try:
        for rep in range(case.reps):
            for impl in case.impls:
                rec = per_impl[impl]
                if "skipped" in rec or "error" in rec or rep >= case.impl_reps.get(impl, case.reps):
                    continue
                # Start every repetition with nothing dirty on the machine: the write-back of
                # the previous one's data (and of its deleted files) would otherwise land in
                # whichever commit syncs next, charging one implementation for another's
                # leftovers. A repetition's own writes stay in its own commit.
                os.sync()
                if case.serve:
                    r = {}
                    if impl not in servers:
                        servers[impl] = Server(pys[impl], impl, case.args, envs.get(impl))
                        if case.reps > 1:
                            r = _warm_up(servers[impl], timeout)
                    if not r:
                        r = servers[impl].request(rep, timeout)
                else:
                    r = run_worker(
                        pys[impl], impl, case.args, timeout, workdirs.get(impl), envs.get(impl)
                    )
                if "error" in r or "skipped" in r:
                    key = "error" if "error" in r else "skipped"
                    rec[key] = r[key]
                    print(f"  [{case.label}] {impl}: {key}: {r[key]}", file=sys.stderr, flush=True)
                    continue
                rec["info"] = r.get("info")
                for m, t in r.get("timings", {}).items():
                    rec["all"].setdefault(m, []).extend(t["all"])
                rec["peak_rss_mib"] = max(rec["peak_rss_mib"] or 0.0, r["peak_rss_mib"])
                wrss = r.get("extra", {}).get("workers_peak_rss_mib")
                if wrss is not None:
                    rec["workers_peak_rss_mib"] = max(rec["workers_peak_rss_mib"] or 0.0, wrss)
    finally:
        for server in servers.values():
            server.close()
        for d in workdirs.values():
            shutil.rmtree(d, ignore_errors=True)
    for rec in per_impl.values():
        rec["median"] = {m: statistics.median(v) for m, v in rec["all"].items()}
    return per_impl


def fmt_t(x: float | None, cpu: bool = False) -> str:
    if x is None:
        return "-"
    if x < 1e-3:
        s = f"{x * 1e6:.0f} us"
    elif x < 1:
        s = f"{x * 1e3:.1f} ms"
    else:
        s = f"{x:.2f} s"
    return s + " cpu" if cpu else s


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def fmt_r(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}"


def fmt_mib(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"


def rows_of(
    case: Case, per_impl: dict[str, dict[str, Any]], load: tuple[float, float] | None = None
) -> list[dict[str, Any]]:
    """One JSON row per metric of ``case`` (``load``: 1-minute load average before, after)."""
    variants = [i for i in case.impls if i.startswith("ours:")]
    rows = []
    for m in case.metrics:
        med = {impl: per_impl[impl]["median"].get(m) for impl in case.impls}
        if all(v is None for v in med.values()) and not any(
            "skipped" in r or "error" in r for r in per_impl.values()
        ):
            continue
        rows.append(
            {
                "workload": case.label,
                "workload_id": case.workload,
                "metric": m,
                "median_s": med,
                "all_s": {impl: per_impl[impl]["all"].get(m) for impl in case.impls},
                "ratio_ours_real": ratio(med.get("ours"), med.get("real")),
                "ratio_ours_zarr": ratio(med.get("ours"), med.get("zarr")),
                "ratio_variants": {
                    v: {
                        "real": ratio(med.get(v), med.get("real")),
                        "zarr": ratio(med.get(v), med.get("zarr")),
                    }
                    for v in variants
                },
                "peak_rss_mib": {impl: per_impl[impl]["peak_rss_mib"] for impl in case.impls},
                "workers_peak_rss_mib": {
                    impl: per_impl[impl]["workers_peak_rss_mib"] for impl in case.impls
                },
                "load_avg_1m": list(load) if load else None,
                "skipped": {i: r["skipped"] for i, r in per_impl.items() if "skipped" in r},
                "errors": {i: r["error"] for i, r in per_impl.items() if "error" in r},
            }
        )
    return rows


def _cell(r: dict[str, Any], impl: str) -> str:
    if impl in r["skipped"]:
        return "skipped"
    if impl in r["errors"]:
        return "error"
    return fmt_t(r["median_s"].get(impl), r["metric"].endswith("_cpu"))


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The results as a Markdown table (medians, ratios, peak RSS, load average)."""
    variants = sorted({v for r in rows for v in r.get("ratio_variants", {})})
    hdr = [
        "workload",
        "metric",
        "ours",
        "real 2.3.0",
        "zarr",
        "ours/real",
        "ours/zarr",
    ]
    for v in variants:
        hdr += [v, f"{v}/real", f"{v}/zarr"]
    hdr += ["peak RSS MiB o/r/z", "workers' peak RSS MiB o/r/z", "load 1m"]
    lines = ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    prev = None
    for r in rows:
        first = r["workload"] != prev
        cells = [
            r["workload"] if first else "",
            r["metric"],
            *(_cell(r, i) for i in IMPLS),
            fmt_r(r["ratio_ours_real"]),
            fmt_r(r["ratio_ours_zarr"]),
        ]
        for v in variants:
            rv = r.get("ratio_variants", {}).get(v)
            cells += [_cell(r, v), fmt_r(rv["real"]), fmt_r(rv["zarr"])] if rv else ["-", "-", "-"]
        load = r.get("load_avg_1m")
        if first:
            cells += [
                "/".join(fmt_mib(r["peak_rss_mib"].get(i)) for i in IMPLS),
                "/".join(fmt_mib(r["workers_peak_rss_mib"].get(i)) for i in IMPLS)
                if any(r["workers_peak_rss_mib"].values())
                else "-",
                f"{load[0]:.1f}-{load[1]:.1f}" if load else "-",
            ]
        else:
            cells += ["", "", ""]
        prev = r["workload"]
        lines.append("| " + " | ".join(cells) + " |")
    notes = sorted(
        {f"{i}: {why}" for r in rows for i, why in {**r["skipped"], **r["errors"]}.items()}
    )
    if notes:
        lines += ["", *(f"- {n}" for n in notes)]
    return "\n".join(lines)


def _row_key(r: dict[str, Any]) -> str:
    return f"{r['workload']} :: {r['metric']}"


def compare_table(rows: list[dict[str, Any]], baseline: dict[str, Any]) -> str:
    """Each ratio of ``rows`` next to the same ratio in ``baseline`` (one mode's section)."""
    base = {_row_key(r): r for r in baseline.get("rows", [])}
    hdr = (
        "workload",
        "metric",
        "ours/real",
        "baseline",
        "change",
        "ours/zarr",
        "baseline",
        "change",
    )
    intro = (
        f"Against {BASELINE.relative_to(ROOT)} ({baseline.get('date_utc', '?')}, load "
        f"{baseline.get('load_avg_1m', '?')}); change = now / baseline (> 1: relatively slower "
        "now). Same-run ratios; absolute times are not compared."
    )
    lines = [
        intro,
        "",
        "| " + " | ".join(hdr) + " |",
        "|" + "---|" * len(hdr),
    ]
    for r in rows:
        b = base.get(_row_key(r))
        cells = [r["workload"], r["metric"]]
        for key in ("ratio_ours_real", "ratio_ours_zarr"):
            now = r.get(key)
            then = b.get(key) if b else None
            cells += [fmt_r(now), fmt_r(then), fmt_r(ratio(now, then))]
        lines.append("| " + " | ".join(cells) + " |")
    missing = sorted(set(base) - {_row_key(r) for r in rows})
    if missing:
        lines += ["", f"- not in this run: {', '.join(missing)}"]
    return "\n".join(lines)


def _baseline_section(rows: list[dict[str, Any]], doc: dict[str, Any]) -> dict[str, Any]:
    keep = ("workload", "workload_id", "metric", "median_s", "ratio_ours_real", "ratio_ours_zarr")
    return {
        "date_utc": doc["date_utc"],
        "load_avg_1m": doc["load_avg_1m"],
        "machine": doc["machine"],
        "rows": [{k: r[k] for k in keep} for r in rows],
    }


def _parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """``NAME=VAR=VALUE[,VAR=VALUE...]`` -> (``ours:NAME``, environment)."""
    name, sep, assignments = text.partition("=")
    env = {}
    for item in assignments.split(","):
        var, eq, value = item.partition("=")
        if not eq or not var:
            raise ValueError(item)
        env[var] = value
    if not sep or not name or not env:
        raise ValueError(text)
    return f"ours:{name}", env


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="small sizes, about 2 minutes")
    g.add_argument("--tiny", action="store_true", help="smallest sizes, 1 repetition (smoke test)")
    p.add_argument("--out", default="", help="JSON output (default benchmarks/results-<mode>.json)")
    p.add_argument(
        "--only", default="", help=f"comma-separated workloads ({','.join(WORKLOAD_NAMES)})"
    )
    p.add_argument("--timeout", type=float, default=1800, help="per-subprocess timeout (s)")
    p.add_argument(
        "--compare",
        action="store_true",
        help=f"print each ratio against {BASELINE.relative_to(ROOT)} (same mode)",
    )
    p.add_argument(
        "--save-baseline",
        action="store_true",
        help=f"store this run's ratios as the mode's section of {BASELINE.relative_to(ROOT)}",
    )
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=VAR=VALUE",
        help="also run ours with extra environment variables, as implementation ours:NAME "
        "(interleaved with the others; e.g. commit=ICECHUNK_LOCAL_WRITEBACK=commit)",
    )
    a = p.parse_args(argv)
    mode = "tiny" if a.tiny else "quick" if a.quick else "full"
    only = {w for w in a.only.split(",") if w}
    if only - set(WORKLOAD_NAMES):
        p.error(f"unknown workloads {sorted(only - set(WORKLOAD_NAMES))}")
    envs: dict[str, dict[str, str]] = {}
    for text in a.variant:
        try:
            name, env = _parse_variant(text)
        except ValueError:
            p.error(f"bad --variant {text!r}: expected NAME=VAR=VALUE[,VAR=VALUE...]")
        envs[name] = env

    if not OURS_PY.exists():
        print(f"missing interpreter: {OURS_PY}", file=sys.stderr)
        return 2
    # Bytecode for this repository's package, as pip writes it for the real one at install:
    # with PYTHONDONTWRITEBYTECODE set (as in the development sandbox) every fresh worker
    # process would otherwise compile each module it imports, lazily imported ones inside
    # timed calls too.
    compileall.compile_dir(ROOT / "icechunk", quiet=1)
    real = real_python()
    pys = {"ours": OURS_PY, "zarr": OURS_PY, "real": real, **dict.fromkeys(envs, OURS_PY)}
    started = time.perf_counter()
    load_start = os.getloadavg()[0]
    rows: list[dict[str, Any]] = []
    raw: list[dict[str, Any]] = []
    for case in cases(mode):
        if only and case.workload not in only:
            continue
        if envs and "ours" in case.impls:
            at = case.impls.index("ours") + 1
            case.impls = (*case.impls[:at], *envs, *case.impls[at:])
        t0 = time.perf_counter()
        load0 = os.getloadavg()[0]
        per_impl = run_case(case, pys, a.timeout, envs)
        load = (load0, os.getloadavg()[0])
        new = rows_of(case, per_impl, load)
        rows += new
        raw.append({"workload": case.label, "args": case.args, "results": per_impl})
        for r in new:
            med = r["median_s"]
            print(
                f"  {case.label[:58]:58s} {r['metric']:11s}"
                + "".join(f"  {i} {fmt_t(med.get(i)):>9s}" for i in case.impls),
                flush=True,
            )
        print(f"  ({time.perf_counter() - t0:.0f} s, load {load[0]:.1f}-{load[1]:.1f})", flush=True)

    table = markdown_table(rows)
    total = time.perf_counter() - started
    load_end = os.getloadavg()[0]
    print()
    print(table)
    print(
        f"\ntotal {total:.1f} s ({mode} mode), 1-minute load average {load_start:.1f} -> {load_end:.1f}"
    )
    doc = {
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "mode": mode,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "interpreters": {k: str(v) for k, v in pys.items()},
        "variants": envs,
        "total_s": total,
        "load_avg_1m": [round(load_start, 2), round(load_end, 2)],
        "rows": rows,
        "raw": raw,
        "markdown": table,
    }
    if a.compare:
        section = (
            json.loads(BASELINE.read_text()).get("modes", {}).get(mode)
            if BASELINE.exists()
            else None
        )
        print()
        if section is None:
            print(f"(no {mode}-mode section in {BASELINE.relative_to(ROOT)}: nothing to compare)")
        else:
            doc["compare"] = compare_table(rows, section)
            print(doc["compare"])
    out = Path(a.out or ROOT / "benchmarks" / f"results-{mode}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2))
    print(f"wrote {out}")
    if a.save_baseline:
        base = json.loads(BASELINE.read_text()) if BASELINE.exists() else {"modes": {}}
        base.setdefault("modes", {})[mode] = _baseline_section(rows, doc)
        BASELINE.write_text(json.dumps(base, indent=2) + "\n")
        print(f"wrote the {mode} section of {BASELINE}")
    errors = sorted({f"{r['workload']}: {i}" for r in rows for i in r["errors"]})
    if errors or not rows:
        # the only failure: a workload could not run (a slower ratio never fails the run)
        print(f"benchmark could not run: {errors or 'no workload ran'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
