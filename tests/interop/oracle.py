"""Virtual environments holding the real (Rust-backed) icechunk, used as subprocess oracles.

Each oracle is created once per machine under ``.cache/oracles/<name>`` (git-ignored) and reused
while its requirements are unchanged. Creation takes a file lock, so parallel test processes
wait for one another instead of racing.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "oracles"
SCRIPTS = Path(__file__).resolve().parent / "scripts"


@dataclass(frozen=True)
class Oracle:
    name: str
    python_minor: str  # "3.11" / "3.12"
    requirements: tuple[str, ...]

    @property
    def path(self) -> Path:
        return CACHE / self.name

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


ORACLES = {
    "ic1": Oracle("ic1", "3.11", ("icechunk==1.1.21", "zarr==3.1.6", "numpy<2.4")),
    "ic2": Oracle("ic2", "3.12", ("icechunk==2.3.0", "zarr==3.4.2", "numpy")),
}

# Venvs used only by ``benchmarks/`` (never by the tests): the real icechunk with the same
# dask / distributed / xarray / zarr / numpy versions as the project venv, so the dask and
# xarray workloads run side by side with ours.
EXTRA_ORACLES = {
    "ic2bench": Oracle(
        "ic2bench",
        "3.12",
        (
            "icechunk==2.3.0",
            "zarr==3.4.2",
            "numpy==2.5.5",
            "dask[distributed]==2026.8.0",
            "distributed==2026.8.0",
            "xarray==2026.9.0",
            "pandas==3.1.1",
            "psutil",
        ),
    ),
}


def _find_interpreter(minor: str) -> str:
    candidates = [f"python{minor}"]
    try:
        root = subprocess.run(
            ["pyenv", "root"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        root = str(Path.home() / ".pyenv")
    versions = sorted(Path(root, "versions").glob(f"{minor}.*"), reverse=True)
    candidates += [str(v / "bin" / "python") for v in versions]
    if sys.version_info[:2] == tuple(int(p) for p in minor.split(".")):
        candidates.insert(0, sys.executable)
    for cand in candidates:
        try:
            out = subprocess.run(
                [cand, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and out.stdout.strip() == minor:
            return cand
    raise RuntimeError(f"no Python {minor} interpreter found for the icechunk oracle venv")


def ensure(name: str) -> Oracle:
    """Create (or reuse) the oracle virtual environment ``name`` and return it.

    ``name`` is a key of :data:`ORACLES` (test oracles) or :data:`EXTRA_ORACLES`
    (benchmark-only venvs).
    """
    oracle = ORACLES[name] if name in ORACLES else EXTRA_ORACLES[name]
    CACHE.mkdir(parents=True, exist_ok=True)
    stamp = oracle.path / ".ready"
    want = json.dumps(oracle.requirements)
    with open(CACHE / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text() == want and oracle.python.exists():
            return oracle
        interp = _find_interpreter(oracle.python_minor)
        subprocess.run(["rm", "-rf", str(oracle.path)], check=True)
        subprocess.run([interp, "-m", "venv", str(oracle.path)], check=True)
        env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
        subprocess.run(
            [str(oracle.python), "-m", "pip", "install", "--quiet", *oracle.requirements],
            check=True,
            env=env,
        )
        stamp.write_text(want)
    return oracle


def run(name: str, script: str, *args: str, timeout: float = 300) -> str:
    """Run ``tests/interop/scripts/<script>`` with oracle ``name``; return its stdout.

    Raises ``AssertionError`` with the script's stderr when it fails.
    """
    oracle = ensure(name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["ICECHUNK_LOG"] = "error"
    proc = subprocess.run(
        [str(oracle.python), str(SCRIPTS / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=str(SCRIPTS),
        check=False,
    )
    if proc.returncode != 0:
        how = (
            f"killed by {signal.Signals(-proc.returncode).name}"
            if proc.returncode < 0
            else f"exit status {proc.returncode}"
        )
        raise AssertionError(
            f"oracle {name} failed running {script} {' '.join(args)} ({how}):\n"
            f"{proc.stderr[-4000:]}\n-- stdout --\n{proc.stdout[-1000:]}"
        )
    return proc.stdout


if __name__ == "__main__":
    for n in sys.argv[1:] or list(ORACLES):
        print(ensure(n).python)
