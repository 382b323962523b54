"""Expiration and garbage collection against the real icechunk, in both directions.

``scripts/maintenance_repo.py write`` builds the same history with each implementation, expires
the snapshots older than the fourth commit on ``main`` and garbage-collects with that cutoff:

* the real icechunk (2.3.0 for both specs, 1.1.21 for spec 1) reads what we expired and collected;
* we read what the real one expired and collected;
* all implementations release the same snapshots and delete the same number of objects;
* ``scripts/maintenance_random.py`` replays random histories (commits, branches, tags, resets,
  deletions, expirations with random flags and cutoffs, collections) under our implementation
  and the real 2.3.0: every expiration releases the same snapshots, every collection deletes the
  same objects, and every ref's history reads the same afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.interop import oracle
from tests.interop.conftest import run_script

pytestmark = pytest.mark.interop

SCRIPT = "maintenance_repo.py"
RANDOM_SCRIPT = "maintenance_random.py"
RANDOM_CASES = ((1, 11), (1, 12), (2, 21), (2, 22))  # (spec, seed)
WRITERS = (("ours", 1), ("ours", 2), ("ic2", 1), ("ic2", 2), ("ic1", 1))
READS = (
    ("ic1", ("ours", 1)),
    ("ic2", ("ours", 1)),
    ("ic2", ("ours", 2)),
    ("ours", ("ic2", 1)),
    ("ours", ("ic2", 2)),
    ("ours", ("ic1", 1)),
)
ROOT_MESSAGE = "Repository initialized"


def _data(offset: int, message: str) -> dict[str, Any]:
    return {"attrs": {"commit": message}, "a": [offset + i for i in range(8)]}


EXPECTED_HISTORY: dict[str, Any] = {
    "branches": ["dev", "main"],
    "tags": ["t1"],
    "ancestry": {
        "branch/main": ["c4", "c3", ROOT_MESSAGE],
        "branch/dev": ["d1", ROOT_MESSAGE],
        "tag/t1": ["c0", ROOT_MESSAGE],
    },
    "snapshots": {
        "c4": _data(400, "c4"),
        "c3": _data(300, "c3"),
        "d1": _data(1000, "d1"),
        "c0": _data(0, "c0"),
        ROOT_MESSAGE: None,
    },
}
# spec 1 keeps no transaction log for the root and deletes the released snapshots' logs; spec 2
# keeps c1's and c2's logs, named by the re-parented snapshots' pruned_ancestor_tx_logs
EXPECTED_OBJECTS = {
    1: {"chunks": 16, "manifests": 4, "snapshots": 5, "transactions": 4},
    2: {"chunks": 16, "manifests": 4, "snapshots": 5, "transactions": 7},
}
# 2.x rules: spec 2 releases the expired snapshots no ref tip protects; spec 1 (rewriting
# snapshots in place) reports every snapshot cut out of a ref's history, the tag tip c0 included
EXPECTED_EXPIRED = {1: ["c0", "c1", "c2"], 2: ["c1", "c2"]}
EXPECTED_GC = {
    1: {
        "chunks_deleted": 8,
        "manifests_deleted": 2,
        "snapshots_deleted": 2,
        "transaction_logs_deleted": 2,
    },
    2: {
        "chunks_deleted": 8,
        "manifests_deleted": 2,
        "snapshots_deleted": 2,
        "transaction_logs_deleted": 0,
    },
}


class Runs:
    """Every write and read of this module, started at once on a small thread pool."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pool = ThreadPoolExecutor(3, thread_name_prefix="maintenance-interop")
        self.writes: dict[tuple[str, int], Future[dict[str, Any]]] = {}
        self.reads: dict[tuple[str, tuple[str, int]], Future[dict[str, Any]]] = {}
        for writer in WRITERS:
            self.writes[writer] = self.pool.submit(self._write, writer)
        for reader, writer in READS:
            self.reads[(reader, writer)] = self.pool.submit(self._read, reader, writer)
        self.random: dict[tuple[str, int, int], Future[dict[str, Any]]] = {}
        for spec, seed in RANDOM_CASES:
            for impl in ("ours", "ic2"):
                args = ("--spec", str(spec), "--seed", str(seed))
                self.random[(impl, spec, seed)] = self.pool.submit(
                    run_script, impl, RANDOM_SCRIPT, *args
                )

    def path(self, writer: tuple[str, int]) -> Path:
        return self.root / f"{writer[0]}-spec{writer[1]}"

    def _write(self, writer: tuple[str, int]) -> dict[str, Any]:
        impl, spec = writer
        return run_script(impl, SCRIPT, "write", str(self.path(writer)), "--spec", str(spec))

    def _read(self, reader: str, writer: tuple[str, int]) -> dict[str, Any]:
        self.writes[writer].result()
        return run_script(reader, SCRIPT, "dump", str(self.path(writer)))


@pytest.fixture(scope="module")
def runs(
    oracle_envs: dict[str, oracle.Oracle], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runs]:
    r = Runs(tmp_path_factory.mktemp("maintenance-interop"))
    yield r
    r.pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("writer", WRITERS, ids=[f"{w}-spec{s}" for w, s in WRITERS])
def test_same_expiration_and_collection(runs: Runs, writer: tuple[str, int]) -> None:
    """Every implementation releases the same snapshots and deletes the same objects."""
    done = runs.writes[writer].result()
    spec = writer[1]
    assert done["expired"] == EXPECTED_EXPIRED[spec]
    assert done["gc"] == EXPECTED_GC[spec]


@pytest.mark.parametrize(
    ("reader", "writer"),
    READS,
    ids=[f"{r}-reads-{w}-spec{s}" for r, (w, s) in READS],
)
def test_read_expired_and_collected(runs: Runs, reader: str, writer: tuple[str, int]) -> None:
    """The history and every retained snapshot's data survive, and the garbage is gone."""
    dump = runs.reads[(reader, writer)].result()
    assert {k: dump[k] for k in EXPECTED_HISTORY} == EXPECTED_HISTORY
    assert dump["objects"] == EXPECTED_OBJECTS[writer[1]]


@pytest.mark.parametrize(
    ("spec", "seed"), RANDOM_CASES, ids=[f"spec{s}-seed{n}" for s, n in RANDOM_CASES]
)
def test_random_histories_match_the_real_icechunk(runs: Runs, spec: int, seed: int) -> None:
    ours = runs.random[("ours", spec, seed)].result()["log"]
    real = runs.random[("ic2", spec, seed)].result()["log"]
    assert any("expire" in step and step["expire"] for step in real), "exercise expiration"
    assert any("gc" in step and step["gc"]["snapshots_deleted"] for step in real), "and GC"
    assert ours == real


# ---------------------------------------------------------------------------------------------
# the operations log spilling into `overwritten/` backups


@pytest.mark.parametrize(("writer", "reader"), [("ours", "ic2"), ("ic2", "ours")])
def test_overflowing_ops_log_is_followed_across_implementations(
    tmp_path: Path, writer: str, reader: str
) -> None:
    """``repo_before_updates``/``backup_path`` name backups as the real Icechunk does
    (relative to ``overwritten/``), so each side walks the other's whole log."""
    path = str(tmp_path / "repo")
    written = run_script(writer, "ops_log.py", "write", path, "11")
    read = run_script(reader, "ops_log.py", "read", path)
    expected_names = [f"t{i:02d}" for i in reversed(range(11))]
    assert written["entries"] == read["entries"] == 12  # RepoInitialized + 11 tags
    assert written["names"] == read["names"] == expected_names
