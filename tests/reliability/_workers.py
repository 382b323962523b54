"""Code run in child processes by the SIGKILL and soak tests, and the helpers both sides share.

Children are started from a ``forkserver`` that has imported this module (numpy, zarr and
icechunk included), so a child starts in milliseconds instead of spending a second importing.
Everything a child needs arrives pickled: a :data:`StorageSpec` (not a storage object), a log
path and plain numbers.

Every child records what it did in an append-only log file, one line per event, flushed and
fsynced before the child goes on (a line present after a SIGKILL is a line the child wrote
before it was killed):

* ``intent commit <branch> <content-hash> <parent-id>``: about to call ``commit()``, with the
  hash of the content the commit must have (the child's own value model, kept in numpy);
* ``acknowledged commit <id> <branch> <content-hash> <metadata-json>``: ``commit()`` returned;
* ``intent tag <name> <id>`` / ``acknowledged tag <name> <id>``: the same for tag creation;
* ``acknowledged branch <name> <id>``: a branch was created (or deleted, ``deleted branch``);
* ``read <branch> <id> <content-hash>``: a reader saw this content at this snapshot.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import zarr

import icechunk
from icechunk.errors import ConflictError

type StorageSpec = tuple[str, Any]
"""``("local", path)`` or ``("s3", s3_storage keyword arguments)``."""

ARRAYS: dict[str, tuple[tuple[int, ...], tuple[int, ...], str]] = {
    "a": ((64, 64), (16, 16), "int32"),  # 16 chunks of 1 kB: stored as chunk objects
    "g/b": ((32,), (8,), "float64"),  # 4 chunks of 64 B, in a group: inlined in the manifest
}
"""The crash writer's arrays: path -> (shape, chunks, dtype)."""


def storage_of(spec: StorageSpec) -> icechunk.Storage:
    """Build the storage a :data:`StorageSpec` describes."""
    kind, arg = spec
    if kind == "local":
        return icechunk.local_filesystem_storage(str(arg))
    if kind == "s3":
        from icechunk.storage import s3_storage

        return s3_storage(**arg)  # type: ignore[no-any-return]
    raise ValueError(f"unknown storage kind {kind!r}")


def content_hash(arrays: Mapping[str, np.ndarray]) -> str:
    """A digest of named arrays (names, dtypes, shapes and bytes), in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:32]


def read_arrays(
    repo: icechunk.Repository, snapshot_id: str, paths: list[str]
) -> dict[str, np.ndarray]:
    """Read every listed array of a snapshot in full (so every one of its chunks is read)."""
    store = repo.readonly_session(snapshot_id=snapshot_id).store
    return {p: zarr.open_array(store, path=p, mode="r")[...] for p in paths}


class EventLog:
    """An append-only, fsynced event log (see the module docstring for its lines)."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - lives with the process
        if self._file.tell() > 0:
            self._file.seek(self._file.tell() - 1)
            if self._file.read(1) != "\n":  # a line torn by a kill: end it, keep ours whole
                self.record("")

    def record(self, *words: object) -> None:
        """Append one line and make it durable before returning."""
        self._file.write(" ".join(str(w) for w in words) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())


def read_log(path: str) -> list[list[str]]:
    """The complete lines of an event log, split into words (a torn last line is dropped)."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        text = f.read()
    lines = text.split("\n")
    return [line.split(" ", 5) for line in lines[:-1] if line]


# -- SIGKILL: the crash writer ------------------------------------------------------------------


def crash_writer(
    spec: StorageSpec, log_path: str, progress: Connection, seed: int, max_commits: int
) -> None:
    """Commit forever (or ``max_commits`` times), reporting each acknowledged commit.

    Commits go to ``main`` and, about a third of them, to ``side``; about a third are also
    tagged. Each commit writes one to four random chunks of ``a`` and sometimes one of ``g/b``,
    with commit metadata. After each acknowledged commit the child sends
    ``("ack", seconds the write-and-commit cycle took)`` on ``progress``: the parent's cue
    to pick a kill moment.
    """
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    log = EventLog(log_path)
    repo = icechunk.Repository.open(storage_of(spec))
    paths = sorted(ARRAYS)
    if "side" not in repo.list_branches():
        main_tip = repo.lookup_branch("main")
        repo.create_branch("side", main_tip)
        log.record("acknowledged branch side", main_tip)
    # the value model starts from what is committed (it may include a commit whose
    # acknowledgement the previous child did not live to write: the parent checked it)
    model = {b: read_arrays(repo, repo.lookup_branch(b), paths) for b in ("main", "side")}
    for n in range(max_commits):
        cycle_start = time.monotonic()
        branch = "side" if rng.random() < 0.35 else "main"
        new = {p: a.copy() for p, a in model[branch].items()}
        session = repo.writable_session(branch)
        parent = session.snapshot_id
        for _ in range(rng.randint(1, 4)):
            i, j = rng.randrange(4), rng.randrange(4)
            block = nprng.integers(0, 2**31 - 1, size=(16, 16), dtype="int32")
            zarr.open_array(session.store, path="a", mode="r+")[
                16 * i : 16 * i + 16, 16 * j : 16 * j + 16
            ] = block
            new["a"][16 * i : 16 * i + 16, 16 * j : 16 * j + 16] = block
        if rng.random() < 0.5:
            k = rng.randrange(4)
            values = nprng.random(8)
            zarr.open_array(session.store, path="g/b", mode="r+")[8 * k : 8 * k + 8] = values
            new["g/b"][8 * k : 8 * k + 8] = values
        digest = content_hash(new)
        metadata = {"seed": seed, "n": n, "branch": branch}
        log.record("intent commit", branch, digest, parent)
        snapshot_id = session.commit(f"seed {seed} commit {n} on {branch}", metadata=metadata)
        log.record("acknowledged commit", snapshot_id, branch, digest, json.dumps(metadata))
        model[branch] = new
        progress.send(("ack", time.monotonic() - cycle_start))
        if rng.random() < 0.3:
            tag = f"s{seed}-n{n}"
            log.record("intent tag", tag, snapshot_id)
            repo.create_tag(tag, snapshot_id)
            log.record("acknowledged tag", tag, snapshot_id)
    progress.send(("done", 0.0))


# -- soak: writers, a branch/tag operator, readers ---------------------------------------------

SOAK_ARRAYS = ["data", "shared"]


@dataclass
class SoakPlan:
    """Sizes of one soak run (fixed, so every run does the same number of operations)."""

    writers: int = 5
    commits: int = 8
    ops: int = 6
    readers: int = 2
    reads: int = 25
    shared_every: int = 3
    extra: dict[str, Any] = field(default_factory=dict)


def soak_writer(spec: StorageSpec, log_path: str, w: int, plan: SoakPlan, barrier: Any) -> int:
    """Commit ``plan.commits`` times to ``main`` with ``rebase_with=ConflictDetector()``.

    Commit ``i`` of writer ``w`` writes ``data[w, i] = 1000 * w + i`` (a chunk no one else
    writes) and, every ``plan.shared_every``-th commit, also ``shared[0]`` (a chunk every writer
    writes: concurrent such commits conflict, and the loser starts over from a fresh session).
    Returns the number of conflicts met.
    """
    log = EventLog(log_path)
    repo = icechunk.Repository.open(storage_of(spec))
    barrier.wait(timeout=120)
    conflicts = 0
    for i in range(plan.commits):
        shared = i % plan.shared_every == 0
        while True:
            session = repo.writable_session("main")
            zarr.open_array(session.store, path="data", mode="r+")[w, i] = 1000 * w + i
            if shared:
                zarr.open_array(session.store, path="shared", mode="r+")[0] = 1000 * w + i
            try:
                snapshot_id = session.commit(
                    f"w{w}-c{i}{'-shared' if shared else ''}",
                    metadata={"writer": w, "i": i, "shared": shared},
                    rebase_with=icechunk.ConflictDetector(),
                    rebase_tries=50,
                )
            except ConflictError:  # a concurrent commit wrote shared[0]: redo on the new tip
                conflicts += 1
                log.record("conflict", w, i)
                continue
            break
        log.record("acknowledged commit", snapshot_id, "main", f"w{w}-c{i}", "{}")
    return conflicts


def soak_operator(spec: StorageSpec, log_path: str, plan: SoakPlan, barrier: Any) -> int:
    """Branch and tag operations while the writers commit: tag the tip of ``main``, branch from
    it, delete the previous branch, and commit on branch ``ops``. Returns operations done."""
    log = EventLog(log_path)
    repo = icechunk.Repository.open(storage_of(spec))
    barrier.wait(timeout=120)
    done = 0
    for k in range(plan.ops):
        tip = repo.lookup_branch("main")
        repo.create_tag(f"t{k}", tip)
        log.record("acknowledged tag", f"t{k}", tip)
        repo.create_branch(f"b{k}", tip)
        log.record("acknowledged branch", f"b{k}", tip)
        if k > 0 and k % 2 == 0:
            repo.delete_branch(f"b{k - 1}")
            log.record("deleted branch", f"b{k - 1}", "-")
        session = repo.writable_session("ops")
        zarr.open_array(session.store, path="data", mode="r+")[0, k % 4] = -k - 2
        snapshot_id = session.commit(f"ops-{k}", metadata={"k": k})
        log.record("acknowledged commit", snapshot_id, "ops", f"ops-{k}", "{}")
        done += 4
    return done


def soak_reader(spec: StorageSpec, log_path: str, plan: SoakPlan, barrier: Any) -> int:
    """Open read-only sessions at the tip of ``main`` (and ``ops``) ``plan.reads`` times and log
    what they read. Returns the number of reads."""
    log = EventLog(log_path)
    repo = icechunk.Repository.open(storage_of(spec))
    barrier.wait(timeout=120)
    for r in range(plan.reads):
        branch = "ops" if r % 5 == 4 else "main"
        session = repo.readonly_session(branch=branch)
        arrays = {p: zarr.open_array(session.store, path=p, mode="r")[...] for p in SOAK_ARRAYS}
        log.record("read", branch, session.snapshot_id, content_hash(arrays))
    return plan.reads


def iter_events(path: str, kind: str) -> Iterator[list[str]]:
    """The log lines of one kind (``"acknowledged commit"``, ``"read"``, ...), split."""
    n = len(kind.split(" "))
    for words in read_log(path):
        if " ".join(words[:n]) == kind:
            yield words[n:]
