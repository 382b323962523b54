"""A bounded concurrency soak: eight processes writing, branching, tagging and reading at once.

Five writers commit to ``main`` with ``rebase_with=ConflictDetector()``: each commit writes a
chunk no other writer touches, and every third also writes one chunk all writers share (those
commits conflict with each other; the loser starts over from a fresh session). An operator tags
and branches the tip of ``main``, deletes branches and commits on branch ``ops``. Two readers
repeatedly open read-only sessions at the tip of ``main`` (or ``ops``) and log the snapshot id
and a hash of everything they read. Every process logs its acknowledged operations (fsynced).

Afterwards the parent replays each branch's history from the commit messages (every commit's
change is known from its message) and checks that every snapshot reads back (every chunk)
exactly as the replay says; that every acknowledged commit is in the history once, and the
history holds nothing else; that histories are linear; that every acknowledged tag and branch is
there; and that every (snapshot id, content) a reader saw is a committed snapshot of that branch
with that content: readers never saw uncommitted or torn state.
"""

from __future__ import annotations

import itertools
import multiprocessing
import re
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

import icechunk
from tests.reliability._workers import (
    SOAK_ARRAYS,
    SoakPlan,
    StorageSpec,
    content_hash,
    iter_events,
    read_arrays,
    soak_operator,
    soak_reader,
    soak_writer,
    storage_of,
)
from tests.reliability.conftest import Figures
from tests.s3._servers import S3Server

CTX = multiprocessing.get_context("forkserver")
CTX.set_forkserver_preload(["tests.reliability._workers"])

PLAN = SoakPlan(writers=5, commits=20, ops=10, readers=2, reads=60, shared_every=3)
SHARED_LEN = 4


def _create(spec: StorageSpec, spec_version: int, plan: SoakPlan) -> str:
    repo = icechunk.Repository.create(storage_of(spec), spec_version=spec_version)
    session = repo.writable_session("main")
    zarr.create_array(
        session.store,
        name="data",
        shape=(plan.writers, plan.commits),
        chunks=(1, 1),
        dtype="int32",
        fill_value=-1,
    )
    zarr.create_array(
        session.store, name="shared", shape=(SHARED_LEN,), chunks=(1,), dtype="int32", fill_value=-1
    )
    base = session.commit("base")
    repo.create_branch("ops", base)
    return base


_WRITER_MESSAGE = re.compile(r"w(\d+)-c(\d+)(-shared)?")
_OPS_MESSAGE = re.compile(r"ops-(\d+)")


def _apply(model: dict[str, np.ndarray], message: str) -> None:
    """Apply the change a commit made, known from its message, to the model."""
    if m := _WRITER_MESSAGE.fullmatch(message):
        w, i = int(m[1]), int(m[2])
        model["data"][w, i] = 1000 * w + i
        if m[3]:
            model["shared"][0] = 1000 * w + i
    elif m := _OPS_MESSAGE.fullmatch(message):
        k = int(m[1])
        model["data"][0, k % 4] = -k - 2
    else:
        raise AssertionError(f"unexpected commit {message!r}")


def _replay(
    repo: icechunk.Repository, branch: str, base: str, plan: SoakPlan
) -> tuple[dict[str, str], list[str]]:
    """Check every snapshot of ``branch`` after ``base`` against the replayed model.

    Returns ``(snapshot id -> content hash, messages of the commits after base)``.
    """
    history = list(repo.ancestry(branch=branch))
    ids = [s.id for s in history]
    assert len(set(ids)) == len(ids), f"{branch}: duplicate snapshots"
    for child, parent in itertools.pairwise(history):
        assert child.parent_id == parent.id, f"{branch}: history not linear"
    new = list(reversed(history[: ids.index(base)]))
    model = {
        "data": np.full((plan.writers, plan.commits), -1, dtype="int32"),
        "shared": np.full((SHARED_LEN,), -1, dtype="int32"),
    }
    hashes = {base: content_hash(model)}
    for info in new:
        _apply(model, info.message)
        got = read_arrays(repo, info.id, SOAK_ARRAYS)
        for name in SOAK_ARRAYS:
            np.testing.assert_array_equal(got[name], model[name], err_msg=f"{info.message}")
        hashes[info.id] = content_hash(model)
    return hashes, [s.message for s in new]


def _soak(spec: StorageSpec, tmp: Path, spec_version: int, figures: Figures) -> None:
    plan = PLAN
    started = time.monotonic()
    base = _create(spec, spec_version, plan)
    logs = tmp / "logs"
    logs.mkdir()
    barrier = CTX.Barrier(plan.writers + 1 + plan.readers)
    procs = [
        CTX.Process(target=soak_writer, args=(spec, str(logs / f"w{w}"), w, plan, barrier))
        for w in range(plan.writers)
    ]
    procs.append(CTX.Process(target=soak_operator, args=(spec, str(logs / "ops"), plan, barrier)))
    procs += [
        CTX.Process(target=soak_reader, args=(spec, str(logs / f"r{r}"), plan, barrier))
        for r in range(plan.readers)
    ]
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join(300)
        assert [p.exitcode for p in procs] == [0] * len(procs)
    finally:
        for p in procs:
            if p.is_alive():  # only after a failure: do not leave workers behind
                p.kill()
                p.join(10)
    busy = time.monotonic() - started

    repo = icechunk.Repository.open(storage_of(spec))
    main_hashes, main_messages = _replay(repo, "main", base, plan)
    ops_hashes, ops_messages = _replay(repo, "ops", base, plan)

    acked: dict[str, tuple[str, str]] = {}
    for log in logs.iterdir():
        for snapshot_id, branch, message, _ in iter_events(str(log), "acknowledged commit"):
            assert snapshot_id not in acked
            acked[snapshot_id] = (branch, message)
    expected_main = sorted(
        f"w{w}-c{i}{'-shared' if i % plan.shared_every == 0 else ''}"
        for w in range(plan.writers)
        for i in range(plan.commits)
    )
    # every acknowledged commit is in its branch's history, once; nothing else is
    assert sorted(main_messages) == expected_main
    assert sorted(ops_messages) == sorted(f"ops-{k}" for k in range(plan.ops))
    for snapshot_id, (branch, _) in acked.items():
        assert snapshot_id in (main_hashes if branch == "main" else ops_hashes)
    assert len(acked) == len(main_messages) + len(ops_messages)

    # acknowledged tags and branches are there; deleted branches are gone
    ops_log = str(logs / "ops")
    tags = dict(iter_events(ops_log, "acknowledged tag"))
    branches = dict(iter_events(ops_log, "acknowledged branch"))
    deleted = {b for b, _ in iter_events(ops_log, "deleted branch")}
    assert repo.list_tags() == set(tags)
    for tag, snapshot_id in tags.items():
        assert repo.lookup_tag(tag) == snapshot_id and snapshot_id in main_hashes
    assert repo.list_branches() == {"main", "ops"} | (set(branches) - deleted)
    for branch in set(branches) - deleted:
        assert repo.lookup_branch(branch) == branches[branch]

    # readers saw only committed snapshots, with their committed content
    reads = 0
    seen = set()
    for r in range(plan.readers):
        for branch, snapshot_id, digest in iter_events(str(logs / f"r{r}"), "read"):
            hashes = main_hashes if branch == "main" else ops_hashes
            assert snapshot_id in hashes, f"reader saw {snapshot_id}, not in {branch}'s history"
            assert hashes[snapshot_id] == digest, f"reader saw torn state at {snapshot_id}"
            reads += 1
            seen.add(snapshot_id)
    assert reads == plan.readers * plan.reads
    conflicts = sum(1 for log in logs.iterdir() for _ in iter_events(str(log), "conflict"))
    checked = len(main_hashes) + len(ops_hashes) - 2
    figures.add(
        processes=len(procs),
        commits_acknowledged=len(acked),
        commits_found=len(main_messages) + len(ops_messages),
        conflicts_retried=conflicts,
        tag_and_branch_ops=len(tags) + len(branches) + len(deleted),
        reads_verified=reads,
        distinct_snapshots_read=len(seen),
        snapshots_checked=checked,
        chunks_checked=checked * (plan.writers * plan.commits + SHARED_LEN),
        seconds=round(busy, 1),
    )


def _mark(storage: str) -> pytest.MarkDecorator:
    return pytest.mark.reliability(
        category="concurrency",
        fault="8 processes: 5 writers rebasing over each other (disjoint and shared chunks), "
        f"branch/tag operations, 2 readers at the branch tips ({storage})",
        outcome="every acknowledged commit in the history once; linear histories; every chunk "
        "reads; readers saw only committed snapshots with their committed content",
    )


@_mark("local storage, spec 1 and 2")
@pytest.mark.slow
@pytest.mark.parametrize("spec_version", [1, 2])
def test_soak_local(tmp_path: Path, spec_version: int, figures: Figures) -> None:
    _soak(("local", str(tmp_path / "repo")), tmp_path, spec_version, figures)


@_mark("SeaweedFS S3 server, spec 2")
@pytest.mark.slow
def test_soak_seaweedfs(tmp_path: Path, seaweedfs_server: S3Server, figures: Figures) -> None:
    bucket = seaweedfs_server.new_bucket()
    _soak(("s3", seaweedfs_server.storage_kwargs(bucket, "soak")), tmp_path, 2, figures)
