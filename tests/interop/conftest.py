"""Fixtures for the interop tests: run the scripts in ``scripts/`` under each implementation.

An *implementation* is ``"ic1"`` (real icechunk 1.1.21), ``"ic2"`` (real icechunk 2.3.0) or
``"ours"`` (this project's ``icechunk``, importable by the interpreter running pytest).

Every script run is a subprocess, so :class:`Interop` memoizes them (one write per repository,
one dump per repository and reader, ...) and runs them on a small thread pool.  Before the first
test, every selected test's case is asked to ``start`` its jobs, so the whole module's
subprocesses overlap instead of running one after the other.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.interop import oracle

IMPLEMENTATIONS = ("ic1", "ic2", "ours")
ORACLES = ("ic1", "ic2")
TIMEOUT = 90.0  # seconds for one script run; a hang fails the test instead of blocking it
OUR_PACKAGE = oracle.ROOT / "icechunk"
# After our implementation hangs once, its remaining runs fail at once instead of each waiting
# for TIMEOUT (a hang is usually not specific to one script).
_ours_timed_out: list[str] = []


def run_ours(script: str, *args: str, timeout: float = TIMEOUT) -> str:
    """Run ``scripts/<script>`` with our implementation; return its stdout.

    Mirrors :func:`tests.interop.oracle.run`: same environment, working directory and error
    reporting, but the interpreter is the one running pytest, which has our package installed.
    """
    if _ours_timed_out:
        raise AssertionError(f"not run: ours already timed out running {_ours_timed_out[0]}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["ICECHUNK_LOG"] = "error"
    try:
        proc = subprocess.run(
            [sys.executable, str(oracle.SCRIPTS / script), *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=str(oracle.SCRIPTS),
        )
    except subprocess.TimeoutExpired as exc:
        _ours_timed_out.append(f"{script} {' '.join(args)}")
        raise AssertionError(
            f"ours timed out after {timeout} s running {script} {' '.join(args)}"
        ) from exc
    if proc.returncode != 0:
        raise AssertionError(
            f"ours failed running {script} {' '.join(args)}:\n{proc.stderr[-4000:]}"
        )
    return proc.stdout


def run_script(impl: str, script: str, *args: str, timeout: float = TIMEOUT) -> dict[str, Any]:
    """Run a script with implementation ``impl`` and parse the JSON document it prints.

    Also checks that the script really ran the intended library, so that, for example, a real
    icechunk accidentally installed in the test environment cannot make "ours" tests pass.
    """
    if impl == "ours":
        out = run_ours(script, *args, timeout=timeout)
    else:
        try:
            out = oracle.run(impl, script, *args, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(
                f"oracle {impl} timed out after {timeout} s running {script} {' '.join(args)}"
            ) from exc
    doc: dict[str, Any] = json.loads(out)
    module = Path(doc["library"]["icechunk_file"]).resolve()
    ours = module.is_relative_to(OUR_PACKAGE.resolve())
    assert ours == (impl == "ours"), f"{script} under {impl!r} imported icechunk from {module}"
    return doc


@dataclass(frozen=True)
class Repo:
    """A repository written by ``writer`` with ``write_repo.py``, optionally extended (on a
    copy) by ``extender`` with ``extend_repo.py``."""

    writer: str
    spec: int
    scenario: str = "data"
    extender: str | None = None

    @property
    def name(self) -> str:
        base = f"{self.writer}-spec{self.spec}-{self.scenario}"
        return base if self.extender is None else f"{base}+{self.extender}"

    @property
    def base(self) -> Repo:
        return Repo(self.writer, self.spec, self.scenario)


def extension_label(impl: str) -> str:
    """``extend_repo.py --label``: branch ``from-<label>``, tag ``<label>-tag``."""
    return "ours" if impl == "ours" else "oracle"


class Interop:
    """Memoized, concurrent script runs.  Every method returns a ``Future``.

    A job only ever waits on jobs submitted before it, and the pool takes jobs in submission
    order, so waiting inside a job cannot deadlock.
    """

    def __init__(self, root: Path, workers: int) -> None:
        self.root = root
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="interop")
        self._jobs: dict[tuple[Any, ...], Future[Any]] = {}
        self._lock = threading.RLock()

    def _job(self, key: tuple[Any, ...], make: Callable[[], Callable[[], Any]]) -> Future[Any]:
        with self._lock:
            if key not in self._jobs:
                self._jobs[key] = self._pool.submit(make())  # make() submits dependencies
            return self._jobs[key]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def path(self, repo: Repo) -> Path:
        return self.root / repo.name

    def repo(self, repo: Repo) -> Future[dict[str, Any]]:
        """Write (or write and extend) ``repo``; the result is the script's output."""

        def make() -> Callable[[], dict[str, Any]]:
            if repo.extender is None:
                args = (str(self.path(repo)), "--spec", str(repo.spec))
                return lambda: run_script(
                    repo.writer, "write_repo.py", *args, "--scenario", repo.scenario
                )
            base = self.repo(repo.base)

            def extend() -> dict[str, Any]:
                base.result()
                shutil.copytree(self.path(repo.base), self.path(repo))
                label = extension_label(repo.extender or "")
                return run_script(
                    repo.extender or "", "extend_repo.py", str(self.path(repo)), "--label", label
                )

            return extend

        return self._job(("repo", repo), make)

    def dump(self, reader: str, repo: Repo) -> Future[dict[str, Any]]:
        """``dump_repo.py`` output for ``repo`` read by ``reader``."""

        def make() -> Callable[[], dict[str, Any]]:
            written = self.repo(repo)

            def dump() -> dict[str, Any]:
                written.result()
                return run_script(reader, "dump_repo.py", str(self.path(repo)))

            return dump

        return self._job(("dump", reader, repo), make)

    def recreate_tag(self, impl: str, repo: Repo, tag: str) -> Future[dict[str, Any]]:
        """``recreate_tag.py`` by ``impl``, on a private copy of ``repo``."""

        def make() -> Callable[[], dict[str, Any]]:
            written = self.repo(repo)

            def recreate() -> dict[str, Any]:
                written.result()
                copy = self.root / f"{repo.name}~recreate-{tag}-by-{impl}"
                shutil.copytree(self.path(repo), copy)
                return run_script(impl, "recreate_tag.py", str(copy), tag)

            return recreate

        return self._job(("recreate", impl, repo, tag), make)


@pytest.fixture(scope="session")
def oracle_envs() -> dict[str, oracle.Oracle]:
    """The real-icechunk virtualenvs, created (or checked) once per session."""
    return {name: oracle.ensure(name) for name in ORACLES}


@pytest.fixture(scope="session")
def interop(
    oracle_envs: dict[str, oracle.Oracle], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Interop]:
    workers = max(2, min(4, os.cpu_count() or 2))
    runner = Interop(tmp_path_factory.mktemp("interop"), workers)
    yield runner
    runner.close()


@pytest.fixture(scope="session", autouse=True)
def _start_selected_cases(request: pytest.FixtureRequest) -> None:
    """Start the jobs of every selected interop test up front, so that they run concurrently."""
    here = Path(__file__).parent
    items = [
        item
        for item in request.session.items
        if here in Path(str(item.path)).parents and hasattr(item, "callspec")
    ]
    if not items:
        return
    runner: Interop = request.getfixturevalue("interop")
    for item in items:
        for value in item.callspec.params.values():
            start = getattr(value, "start", None)
            if callable(start):
                start(runner)
