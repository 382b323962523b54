"""Crash consistency under SIGKILL: a committing process is killed at random moments, many times.

A child process (:func:`tests.reliability._workers.crash_writer`) loops: it writes random chunks
of two arrays, commits to ``main`` or ``side`` with metadata, and tags about a third of its commits,
logging an *intent* (with the hash of the content it is about to commit, from its own numpy
value model) before each ``commit()`` and an *acknowledgement* after it returns, fsynced.

The parent waits until the child has acknowledged one to three commits (drawn from a fixed
seed), then waits a further random fraction of the child's last commit cycle (same generator)
and sends SIGKILL: the randomised kill point. After every kill it checks that:

* the repository opens, and ``main`` and ``side`` each have a linear history without
  duplicates;
* every acknowledged commit is in the history of its branch (zero lost), with its metadata, and
  reads back (every chunk) with the logged content hash;
* a commit in a history that was never acknowledged is the one in flight at the kill (the
  child's last intent) and holds exactly the intended content;
* every acknowledged tag exists and names its snapshot; a tag in flight is absent or correct;
* every branch tip reads in full and matches the model.

The next child (a fresh process) continues from there, so every kill is followed by a retried
commit that must succeed; after the last kill one more child commits once and exits cleanly.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import random
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

import icechunk
from tests.reliability._workers import (
    ARRAYS,
    StorageSpec,
    content_hash,
    crash_writer,
    read_arrays,
    read_log,
    storage_of,
)
from tests.reliability.conftest import Figures
from tests.s3._servers import S3Server

KILLS_LOCAL = 30
"""Kills per spec version on local storage (60 in all)."""
KILLS_S3 = {2: 15, 1: 15}
"""Kills per spec version on the SeaweedFS server (30 in all)."""
SEED = 20261124

CTX = multiprocessing.get_context("forkserver")
CTX.set_forkserver_preload(["tests.reliability._workers"])

PATHS = sorted(ARRAYS)
CHUNKS_PER_SNAPSHOT = sum(
    int(np.prod([s // c for s, c in zip(shape, chunks, strict=True)]))
    for shape, chunks, _ in ARRAYS.values()
)


def _create(spec: StorageSpec, spec_version: int) -> tuple[str, str]:
    """A repository whose main holds the arrays with random content; (snapshot id, hash)."""
    repo = icechunk.Repository.create(storage_of(spec), spec_version=spec_version)
    session = repo.writable_session("main")
    rng = np.random.default_rng(SEED)
    content = {}
    for path, (shape, chunks, dtype) in ARRAYS.items():
        arr = zarr.create_array(
            session.store, name=path, shape=shape, chunks=chunks, dtype=dtype, fill_value=0
        )
        values = (
            rng.integers(0, 2**31 - 1, size=shape, dtype=dtype)
            if dtype.startswith("int")
            else rng.random(shape)
        )
        arr[...] = values
        content[path] = values
    return session.commit("base", metadata={"base": True}), content_hash(content)


@dataclass
class Checker:
    """Everything the parent knows and has verified about one repository."""

    spec: StorageSpec
    log: str
    known: dict[str, str] = field(default_factory=dict)
    """Snapshot id -> content hash of every commit verified so far."""
    empty: set[str] = field(default_factory=set)
    """Snapshots without arrays (the repository's first)."""
    tags_checked: set[str] = field(default_factory=set)
    snapshots_read: int = 0
    acknowledged: int = 0
    unacknowledged_landed: int = 0
    killed_in: dict[str, int] = field(default_factory=dict)
    """Where the kills landed, from the last log line: ``commit()``, tagging, or elsewhere."""

    def verify(self, after_kill: bool = True) -> None:
        """Check the repository against the event log (see the module docstring)."""
        acked: dict[str, tuple[str, str, dict[str, Any]]] = {}
        last_intent: tuple[str, str, str] | None = None
        tags: dict[str, str] = {}
        tag_intents: dict[str, str] = {}
        events = read_log(self.log)
        last = " ".join(events[-1][:2]) if events else ""
        phase = {"intent commit": "commit()", "intent tag": "create_tag()"}.get(last, "writes")
        if after_kill:
            self.killed_in[phase] = self.killed_in.get(phase, 0) + 1
        for words in events:
            kind = " ".join(words[:2])
            if kind == "intent commit":
                last_intent = (words[2], words[3], words[4])
            elif kind == "acknowledged commit":
                acked[words[2]] = (words[3], words[4], json.loads(words[5]))
            elif kind == "intent tag":
                tag_intents[words[2]] = words[3]
            elif kind == "acknowledged tag":
                tags[words[2]] = words[3]
        self.acknowledged = len(acked)

        repo = icechunk.Repository.open(storage_of(self.spec))
        assert repo.list_branches() == {"main", "side"}
        for branch in ("main", "side"):
            history = list(repo.ancestry(branch=branch))
            ids = [s.id for s in history]
            assert len(set(ids)) == len(ids), f"{branch}: duplicate snapshots"
            for child, parent in itertools.pairwise(history):
                assert child.parent_id == parent.id, f"{branch}: history not linear"
            lost = [i for i, (b, _, _) in acked.items() if b == branch and i not in ids]
            assert not lost, f"{branch}: acknowledged commits lost: {lost}"
            for info in history:
                if info.id in self.empty:
                    continue
                if info.id in acked:
                    _, digest, metadata = acked[info.id]
                    assert info.metadata == metadata, (info.id, info.metadata, metadata)
                elif info.id in self.known:
                    digest = self.known[info.id]
                else:
                    # never acknowledged: must be the commit in flight when the child died
                    assert last_intent is not None and info.id == history[0].id, (
                        f"{branch}: unexplained snapshot {info.id} ({info.message!r})"
                    )
                    intent_branch, digest, parent = last_intent
                    assert intent_branch == branch and info.parent_id == parent
                    self.unacknowledged_landed += 1
                if info.id not in self.known or info.id == history[0].id:
                    # new snapshot, or a branch tip (re-read every time): read every chunk
                    got = content_hash(read_arrays(repo, info.id, PATHS))
                    assert got == digest, f"{branch}: {info.id} reads {got}, logged {digest}"
                    self.known[info.id] = digest
                    self.snapshots_read += 1
        present = repo.list_tags()
        for tag, snapshot_id in tags.items():
            assert tag in present, f"acknowledged tag {tag} lost"
            assert repo.lookup_tag(tag) == snapshot_id
            self.tags_checked.add(tag)
        for tag in present - set(tags):
            assert tag in tag_intents, f"unexplained tag {tag}"
            assert repo.lookup_tag(tag) == tag_intents[tag]
        for tag in present:
            assert repo.lookup_tag(tag) in self.known


def _start(
    spec: StorageSpec, log: str, seed: int, max_commits: int
) -> tuple[BaseProcess, Connection]:
    reader, writer = CTX.Pipe(duplex=False)
    proc = CTX.Process(
        target=crash_writer, args=(spec, log, writer, seed, max_commits), daemon=True
    )
    proc.start()
    writer.close()
    return proc, reader


def _next_marker(proc: BaseProcess, progress: Connection) -> tuple[str, float]:
    """The child's next progress report; fails if it stalls or dies."""
    if not progress.poll(120):
        raise AssertionError("the writer stalled for 120 s")
    try:
        message: tuple[str, float] = progress.recv()
    except EOFError:
        proc.join(10)
        raise AssertionError(f"the writer died on its own (exit code {proc.exitcode})") from None
    return message


def _run_kills(spec: StorageSpec, tmp: Path, spec_version: int, kills: int) -> Checker:
    base, digest = _create(spec, spec_version)
    repo = icechunk.Repository.open(storage_of(spec))
    checker = Checker(spec, str(tmp / "events.log"))
    checker.known[base] = digest
    checker.empty.update(s.id for s in repo.ancestry(branch="main") if s.id != base)
    rng = random.Random(SEED + spec_version)
    for k in range(kills):
        proc, progress = _start(spec, checker.log, SEED * 100 + k, max_commits=1_000_000)
        try:
            took = 0.0
            for _ in range(rng.randint(1, 3)):
                _, took = _next_marker(proc, progress)
            # the randomised kill point: somewhere in the child's next commit cycle
            time.sleep(rng.uniform(0, took))
            assert proc.pid is not None
            os.kill(proc.pid, signal.SIGKILL)
            proc.join(30)
            assert proc.exitcode == -signal.SIGKILL
        finally:
            if proc.is_alive():
                proc.kill()
                proc.join(10)
            progress.close()
        checker.verify()
    # a last fresh process commits once and exits cleanly
    acknowledged = checker.acknowledged
    proc, progress = _start(spec, checker.log, SEED * 100 + kills, max_commits=1)
    with progress:
        assert _next_marker(proc, progress)[0] == "ack"
        assert _next_marker(proc, progress)[0] == "done"
    proc.join(60)
    assert proc.exitcode == 0
    checker.verify(after_kill=False)
    assert checker.acknowledged == acknowledged + 1
    return checker


def _report(figures: Figures, checker: Checker, kills: int, elapsed: float) -> None:
    repo = icechunk.Repository.open(storage_of(checker.spec))
    found = {s.id for b in ("main", "side") for s in repo.ancestry(branch=b)} - checker.empty
    figures.add(
        kills_injected=kills,
        commits_acknowledged=checker.acknowledged,
        commits_found=len(found),
        landed_unacknowledged=checker.unacknowledged_landed,
        snapshots_read=checker.snapshots_read,
        chunks_checked=checker.snapshots_read * CHUNKS_PER_SNAPSHOT,
        tags_checked=len(checker.tags_checked),
        killed_in=dict(sorted(checker.killed_in.items())),
        seconds=round(elapsed, 1),
    )
    assert len(found) >= checker.acknowledged + 1  # every acknowledged commit, and the base


def _mark(storage: str) -> pytest.MarkDecorator:
    return pytest.mark.reliability(
        category="crash",
        fault=f"SIGKILL of a real process writing, committing, branching and tagging, at random "
        f"moments, again and again ({storage}; spec 1 and 2)",
        outcome="repository opens; zero acknowledged commits or tags lost; every branch tip and "
        "commit reads back (every chunk) the logged content; a fresh process commits again",
    )


@_mark("local storage")
@pytest.mark.slow
@pytest.mark.parametrize("spec_version", [1, 2])
def test_sigkill_local(tmp_path: Path, spec_version: int, figures: Figures) -> None:
    started = time.monotonic()
    spec: StorageSpec = ("local", str(tmp_path / "repo"))
    checker = _run_kills(spec, tmp_path, spec_version, KILLS_LOCAL)
    _report(figures, checker, KILLS_LOCAL, time.monotonic() - started)


@_mark("SeaweedFS S3 server")
@pytest.mark.slow
@pytest.mark.parametrize("spec_version", [2, 1])
def test_sigkill_seaweedfs(
    tmp_path: Path, spec_version: int, seaweedfs_server: S3Server, figures: Figures
) -> None:
    started = time.monotonic()
    bucket = seaweedfs_server.new_bucket()
    spec: StorageSpec = ("s3", seaweedfs_server.storage_kwargs(bucket, "crash"))
    checker = _run_kills(spec, tmp_path, spec_version, KILLS_S3[spec_version])
    _report(figures, checker, KILLS_S3[spec_version], time.monotonic() - started)
