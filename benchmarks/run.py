"""Side-by-side benchmark: our icechunk vs the real icechunk 2.3.0 vs plain zarr LocalStore.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.run [--quick] [--out results.json] [--only commit,merge]

Every (workload, implementation) pair runs in a fresh subprocess of ``benchmarks/workloads.py``:

* ``ours``  -- ``.venv/bin/python`` (imports this repository's ``icechunk``)
* ``real``  -- the ic2 oracle interpreter (real icechunk 2.3.0), started from a temporary
  working directory so that this repository's ``icechunk/`` package cannot shadow it
* ``zarr``  -- ``.venv/bin/python`` with ``zarr.storage.LocalStore`` (where meaningful)

The runner prints a table of medians with the ratios ours/real and ours/zarr, and writes all
raw timings (and per-process peak RSS) to a JSON file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "benchmarks" / "workloads.py"
OURS_PY = ROOT / ".venv" / "bin" / "python"
REAL_PY = ROOT / ".cache" / "oracles" / "ic2" / "bin" / "python"

# (label, worker arguments, metric keys, run the zarr baseline too?)
Case = tuple[str, list[str], list[str], bool]


def cases(quick: bool) -> list[Case]:
    out: list[Case] = []
    sizes = [10_000] if quick else [10_000, 100_000]
    for n in sizes:
        for kind in ("inline", "native"):
            label = (
                f"commit {n // 1000}k refs ({'1 B inline' if kind == 'inline' else '1 KiB native'})"
            )
            reps = "1" if quick and kind == "native" else "3"
            out.append(
                (
                    label,
                    ["commit", "--n", str(n), "--kind", kind, "--reps", reps],
                    ["commit", "write"],
                    True,
                )
            )
    out.extend(
        (f"merge_sessions {k} forks", ["merge", "--k", str(k)], ["merge"], False) for k in (64, 256)
    )
    n_open = 10_000 if quick else 100_000
    out.append(
        (
            f"open ro session + read 1 chunk ({n_open // 1000}k-chunk array)",
            ["open_read", "--n", str(n_open)],
            ["open_read"],
            True,
        )
    )
    mib = 16 if quick else 64
    out.append(
        (
            f"full in-process read {mib} MiB (1 MiB chunks)",
            ["full_read", "--mib", str(mib), "--reps", "3" if quick else "5"],
            ["full_read"],
            True,
        )
    )
    return out


def run_worker(impl: str, args: list[str], timeout: float) -> dict[str, Any]:
    py = REAL_PY if impl == "real" else OURS_PY
    if impl == "zarr" and args[0] == "commit":
        # plain zarr is only a write-time reference here (no commit): one repetition
        # (writing 10k-100k chunk files is slow and would dominate the run)
        args = [*args, "--reps", "1"]
    cmd = [str(py), str(WORKER), *args, "--impl", "zarr" if impl == "zarr" else "icechunk"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
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


def fmt_t(x: float | None) -> str:
    if x is None:
        return "-"
    if x < 1e-3:
        return f"{x * 1e6:.0f} us"
    if x < 1:
        return f"{x * 1e3:.1f} ms"
    return f"{x:.2f} s"


def fmt_r(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="small sizes, finishes in < 60 s")
    p.add_argument("--out", default="benchmarks/results.json", help="JSON output path")
    p.add_argument(
        "--only",
        default="",
        help="comma-separated workload names (commit,merge,open_read,full_read)",
    )
    p.add_argument("--timeout", type=float, default=1800, help="per-subprocess timeout (s)")
    a = p.parse_args(argv)

    for py in (OURS_PY, REAL_PY):
        if not py.exists():
            print(f"missing interpreter: {py}", file=sys.stderr)
            return 2
    only = {w for w in a.only.split(",") if w}
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for label, args, metrics, with_zarr in cases(a.quick):
        if only and args[0] not in only:
            continue
        impls = ["ours", "real"] + (["zarr"] if with_zarr else [])
        res = {impl: run_worker(impl, args, a.timeout) for impl in impls}
        for impl, r in res.items():
            if "error" in r:
                print(f"[{label}] {impl}: {r['error']}", file=sys.stderr)
        for m in metrics:
            med = {impl: r.get("timings", {}).get(m, {}).get("median") for impl, r in res.items()}
            if all(v is None for v in med.values()):
                continue
            row = {
                "workload": label,
                "metric": m,
                "median_s": med,
                "all_s": {
                    impl: r.get("timings", {}).get(m, {}).get("all") for impl, r in res.items()
                },
                "ratio_ours_real": None
                if not med.get("ours") or not med.get("real")
                else med["ours"] / med["real"],
                "ratio_ours_zarr": None
                if not med.get("ours") or not med.get("zarr")
                else med["ours"] / med["zarr"],
                "peak_rss_mib": {impl: r.get("peak_rss_mib") for impl, r in res.items()},
                "errors": {impl: r["error"] for impl, r in res.items() if "error" in r},
            }
            rows.append(row)
            print(
                f"  {label:52s} {m:9s} ours {fmt_t(med.get('ours')):>9s}  real {fmt_t(med.get('real')):>9s}"
                f"  zarr {fmt_t(med.get('zarr')):>9s}",
                flush=True,
            )
        info = {impl: r.get("info") for impl, r in res.items() if "info" in r}
        if rows:
            rows[-1].setdefault("info", info)

    # table
    hdr = (
        "workload",
        "metric",
        "ours",
        "real 2.3.0",
        "zarr",
        "ours/real",
        "ours/zarr",
        "peak RSS MiB o/r/z",
    )
    table = [hdr]
    for r in rows:
        m = r["median_s"]
        rss = "/".join(
            "-" if r["peak_rss_mib"].get(i) is None else f"{r['peak_rss_mib'][i]:.0f}"
            for i in ("ours", "real", "zarr")
        )
        table.append(
            (
                r["workload"],
                r["metric"],
                fmt_t(m.get("ours")),
                fmt_t(m.get("real")),
                fmt_t(m.get("zarr")),
                fmt_r(m.get("ours"), m.get("real")),
                fmt_r(m.get("ours"), m.get("zarr")),
                rss,
            )
        )
    widths = [max(len(str(row[i])) for row in table) for i in range(len(hdr))]
    print()
    for i, row in enumerate(table):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    total = time.perf_counter() - started
    print(f"\ntotal {total:.1f} s ({'quick' if a.quick else 'full'} mode)")

    doc = {
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "mode": "quick" if a.quick else "full",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "interpreters": {"ours": str(OURS_PY), "real": str(REAL_PY)},
        "total_s": total,
        "rows": rows,
    }
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
