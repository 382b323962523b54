"""Uncooperative writers: independent processes committing to one branch at the same time.

Eight processes (``spawn``) each open the repository on local storage and commit 25 times to
``main`` with ``rebase_with=ConflictDetector()``. Process ``p`` writes only chunk ``(p, i)`` at its
``i``-th commit, so every conflict is a moved branch and every rebase succeeds. The branch must
end with exactly 200 new commits in a linear history, and every chunk must read back as written.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

import icechunk

PROCESSES = 8
COMMITS = 25


def value(p: int, i: int) -> int:
    return 1000 * (p + 1) + i


def _writer(root: str, p: int, barrier: Any, results: Any) -> None:  # runs in a spawned process
    try:
        repo = icechunk.Repository.open(icechunk.local_filesystem_storage(root))
        barrier.wait(timeout=120)
        started = time.perf_counter()
        cpu = time.process_time()
        for i in range(COMMITS):
            session = repo.writable_session("main")
            arr = zarr.open_array(session.store, path="data", mode="r+")
            arr[p, i] = value(p, i)
            session.commit(
                f"writer {p} commit {i}",
                metadata={"writer": p, "i": i},
                rebase_with=icechunk.ConflictDetector(),
            )
        stats = {
            "wall": time.perf_counter() - started,
            "cpu": time.process_time() - cpu,
            "cas_failures": repo._objects.refs.cas_failures,
        }
        results.put((p, stats, None))
    except BaseException as e:  # report instead of dying silently
        results.put((p, {}, f"{type(e).__name__}: {e}"))
        raise


def run_writers(root: Path, spec_version: int) -> dict[str, Any]:
    repo = icechunk.Repository.create(
        icechunk.local_filesystem_storage(str(root)), spec_version=spec_version
    )
    session = repo.writable_session("main")
    zarr.create_array(
        session.store,
        name="data",
        shape=(PROCESSES, COMMITS),
        chunks=(1, 1),
        dtype="i4",
        fill_value=0,
    )
    base = session.commit("create the array")

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES + 1)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_writer, args=(str(root), p, barrier, results), daemon=True)
        for p in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    barrier.wait(timeout=120)
    started = time.perf_counter()
    outcomes = [results.get(timeout=300) for _ in procs]
    wall = time.perf_counter() - started
    for proc in procs:
        proc.join(timeout=60)
    errors = [(p, err) for p, _, err in outcomes if err is not None]
    assert not errors, errors
    assert all(proc.exitcode == 0 for proc in procs)

    history = list(repo.ancestry(branch="main"))
    new = history[: len(history) - 2]  # minus "create the array" and the root
    attempts = [info.metadata["__icechunk"]["rebase_attempts"] for info in new]
    return {
        "repo": repo,
        "base": base,
        "history": history,
        "new": new,
        "wall": wall,
        "per_writer": sorted(stats["wall"] for _, stats, _ in outcomes),
        "cpu": sum(stats["cpu"] for _, stats, _ in outcomes),
        "cas_failures": sum(stats["cas_failures"] for _, stats, _ in outcomes),
        "retries": sum(attempts),
        "max_retries": max(attempts),
    }


@pytest.mark.parametrize("spec_version", [2, 1])
def test_concurrent_uncooperative_commits(tmp_path: Path, spec_version: int) -> None:
    figures = run_writers(tmp_path / "repo", spec_version)
    repo: icechunk.Repository = figures["repo"]
    history = figures["history"]
    new = figures["new"]

    # exactly one new commit per writer commit, in one linear chain ending at our base commit
    assert len(new) == PROCESSES * COMMITS
    assert history[-2].id == figures["base"] and history[-1].parent_id is None
    for child, parent in itertools.pairwise(history):
        assert child.parent_id == parent.id
        assert child.written_at > parent.written_at
    assert len({h.id for h in history}) == len(history)
    # each writer's commits appear once each, in its own order
    per_writer: dict[int, list[int]] = {}
    for info in reversed(new):
        per_writer.setdefault(info.metadata["writer"], []).append(info.metadata["i"])
        assert info.message == f"writer {info.metadata['writer']} commit {info.metadata['i']}"
    assert per_writer == {p: list(range(COMMITS)) for p in range(PROCESSES)}

    # every chunk holds what its writer wrote
    data = zarr.open_array(repo.readonly_session("main").store, path="data", mode="r")[:]
    expected = np.array([[value(p, i) for i in range(COMMITS)] for p in range(PROCESSES)])
    np.testing.assert_array_equal(data, expected)
    # and the diff over the whole run names all of them
    diff = repo.diff(from_snapshot_id=figures["base"], to_branch="main")
    assert len(diff.updated_chunks["/data"]) == PROCESSES * COMMITS

    if spec_version == 2:
        kinds = Counter(u.kind.kind for u in repo.ops_log())
        assert kinds["NewCommit"] == PROCESSES * COMMITS + 1

    commits = PROCESSES * COMMITS
    print(
        f"\nspec {spec_version}: {PROCESSES} processes x {COMMITS} commits = {commits} commits in "
        f"{figures['wall']:.1f} s ({commits / figures['wall']:.1f} commits/s, "
        f"{os.cpu_count()} CPUs); rebase retries: {figures['retries']} in total, "
        f"{figures['retries'] / commits:.2f} per commit, at most {figures['max_retries']} for "
        f"one commit; lost compare-and-swaps: {figures['cas_failures']}; per-writer times "
        f"{figures['per_writer'][0]:.1f}-{figures['per_writer'][-1]:.1f} s; writers' CPU "
        f"{figures['cpu']:.1f} s ({1000 * figures['cpu'] / commits:.0f} ms per commit)"
    )
    assert figures["wall"] < 120
