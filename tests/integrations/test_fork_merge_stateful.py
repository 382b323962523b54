"""Fork/merge against a serial model: random chunk writes, deletes, resizes and attribute
changes spread over a session and several forks that really cross process boundaries (a spawn
``ProcessPoolExecutor``), merged in random order, must leave the same arrays as the same
operations applied serially (in merge order) on another branch. Plus deterministic regressions
for forks of dirty sessions."""

from __future__ import annotations

import itertools
import shutil
import tempfile
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from icechunk import ForkSession, Repository, RepositoryConfig, Session, local_filesystem_storage
from icechunk.change_set import ChunkOverlapWarning
from icechunk.distributed import merge_sessions
from tests.integrations._workers import Op, apply_ops

ARRAYS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "a": ((4, 4), (2, 2)),
    "b": ((6,), (2,)),
}
"""path -> (initial shape, chunk shape); shapes stay multiples of the chunk shape."""
MAX_CHUNKS = 4
"""Grow no dimension beyond this many chunks."""

Key = tuple[str, tuple[int, ...]]


@pytest.fixture
def pool(process_pool: ProcessPoolExecutor) -> ProcessPoolExecutor:
    """The session's spawn pool (see ``conftest.py``)."""
    return process_pool


def _in_processes(
    pool: ProcessPoolExecutor, sessions: list[Session], ops: list[list[Op]]
) -> list[Session]:
    """Pickle each session to a worker process, apply its ops there, return the sessions."""
    futures = [pool.submit(apply_ops, s, o) for s, o in zip(sessions, ops, strict=True)]
    return [f.result(timeout=60) for f in futures]


def _array_state(session: Session, path: str) -> dict[str, Any]:
    arr = zarr.open_array(session.store, path=path, mode="r")
    return {
        "shape": arr.shape,
        "attrs": dict(arr.attrs),
        "data": arr[...].tolist(),
        "chunks": sorted(tuple(c) for c in session.chunk_coordinates(path)),
    }


def _status(session: Session) -> dict[str, Any]:
    diff = session.status()
    return {
        "new_arrays": sorted(diff.new_arrays),
        "updated_arrays": sorted(diff.updated_arrays),
        "updated_chunks": {k: sorted(map(tuple, v)) for k, v in diff.updated_chunks.items()},
    }


class ForkMergeMachine(RuleBasedStateMachine):
    """The ``main`` branch is written by a session and its forks (in worker processes); the
    ``serial`` branch receives the same operations directly, forks' ones at merge time."""

    pool: ClassVar[ProcessPoolExecutor]

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="fork-merge-")
        self.tokens = itertools.count()
        self.forks: list[dict[str, Any]] = []
        self.meta_owner: dict[str, object] = {}
        """During a round: which actor changed an array's metadata (one actor per array)."""
        self.base_after: set[Key] = set()
        """Chunks the session wrote after forking (this round)."""
        self.staged: set[Key] = set()
        """Chunks the session has staged since its last commit (conservatively)."""
        self.staged_at_fork: set[Key] = set()

    # -- setup ------------------------------------------------------------------------------

    @initialize(inline=st.booleans())
    def create(self, inline: bool) -> None:
        self.inline = inline
        config = RepositoryConfig(inline_chunk_threshold_bytes=None if inline else 0)
        self.repo = Repository.create(local_filesystem_storage(self.tmp), config=config)
        session = self.repo.writable_session("main")
        root = zarr.group(session.store)
        for path, (shape, chunks) in ARRAYS.items():
            root.create_array(path, shape=shape, chunks=chunks, dtype="i4", fill_value=0)
        snap = session.commit("arrays")
        self.repo.create_branch("serial", snap)
        self.s = self.repo.writable_session("main")
        self.t = self.repo.writable_session("serial")
        self.shapes = {path: shape for path, (shape, _) in ARRAYS.items()}

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- operations -------------------------------------------------------------------------

    def _draw_op(
        self, data: st.DataObject, shapes: dict[str, tuple[int, ...]], actor: object
    ) -> tuple[Op, Key | None]:
        """An operation valid for an actor seeing ``shapes``, and the chunk it touches."""
        path = data.draw(st.sampled_from(sorted(ARRAYS)))
        chunks = ARRAYS[path][1]
        kind = data.draw(st.sampled_from(["write"] * 4 + ["fill", "delete", "resize", "attr"]))
        in_round = bool(self.forks)
        if kind in ("resize", "attr") and self.meta_owner.get(path, actor) != actor:
            kind = "write"  # another actor changed this array's metadata in this round
        if kind == "resize":
            nchunks = [s // c for s, c in zip(shapes[path], chunks, strict=True)]
            dim = data.draw(st.integers(0, len(nchunks) - 1))
            # only the session between rounds may shrink: a fork's writes beyond the new
            # bounds would otherwise depend on the merge order
            lo = nchunks[dim] if in_round else 1
            nchunks[dim] = data.draw(st.integers(lo, MAX_CHUNKS))
            shape = tuple(n * c for n, c in zip(nchunks, chunks, strict=True))
            if in_round:
                self.meta_owner[path] = actor
            return ("resize", path, shape), None
        if kind == "attr":
            if in_round:
                self.meta_owner[path] = actor
            key = data.draw(st.sampled_from(["x", "y"]))
            return ("attr", path, key, data.draw(st.integers(0, 3))), None
        coords = tuple(
            data.draw(st.integers(0, s // c - 1)) for s, c in zip(shapes[path], chunks, strict=True)
        )
        if kind == "write":
            return ("write", path, coords, data.draw(st.integers(1, 3))), (path, coords)
        if kind == "fill":
            return ("write", path, coords, 0), (path, coords)
        return ("delete", path, coords), (path, coords)

    def _payload(self, op: Op) -> object:
        """What the staged chunk reference of a chunk op compares like."""
        if op[0] == "delete" or op[3] == 0:
            return None
        return ("value", op[3]) if self.inline else ("native", next(self.tokens))

    @rule(data=st.data())
    def session_op(self, data: st.DataObject) -> None:
        op, key = self._draw_op(data, self.shapes, "session")
        apply_ops(self.s, [op])
        apply_ops(self.t, [op])
        if op[0] == "resize":
            old, new = self.shapes[op[1]], op[2]
            chunks = ARRAYS[op[1]][1]
            # a shrink stages deletions beyond the new bounds
            for coords in itertools.product(
                *(range(o // c) for o, c in zip(old, chunks, strict=True))
            ):
                if any(i >= n // c for i, n, c in zip(coords, new, chunks, strict=True)):
                    self.staged.add((op[1], coords))
            self.shapes[op[1]] = new
        if key is not None:
            self.staged.add(key)
            if self.forks:
                self.base_after.add(key)

    @precondition(lambda self: not self.forks)
    @rule(n=st.integers(1, 3))
    def fork(self, n: int) -> None:
        self.forks = [
            {"fork": self.s.fork(), "ops": [], "shapes": dict(self.shapes), "touched": {}}
            for _ in range(n)
        ]
        self.staged_at_fork = set(self.staged)
        self.meta_owner = {}
        self.base_after = set()

    @precondition(lambda self: bool(self.forks))
    @rule(data=st.data())
    def fork_op(self, data: st.DataObject) -> None:
        i = data.draw(st.integers(0, len(self.forks) - 1))
        fork = self.forks[i]
        op, key = self._draw_op(data, fork["shapes"], i)
        fork["ops"].append(op)
        if op[0] == "resize":
            fork["shapes"][op[1]] = op[2]
        if key is not None:
            fork["touched"][key] = self._payload(op)

    @precondition(lambda self: bool(self.forks))
    @rule(data=st.data(), how=st.sampled_from(["all", "each", "tree", "merge_sessions"]))
    def merge(self, data: st.DataObject, how: str) -> None:
        forks = self.forks
        order = data.draw(st.permutations(range(len(forks))))
        returned = _in_processes(self.pool, [f["fork"] for f in forks], [f["ops"] for f in forks])
        assert all(isinstance(f, ForkSession) for f in returned)
        ordered = [returned[i] for i in order]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ChunkOverlapWarning)
            if how == "all":
                self.s.merge(*ordered)
            elif how == "each":
                for f in ordered:
                    self.s.merge(f)
            elif how == "tree":
                head, *rest = ordered
                head.merge(*rest)
                self.s.merge(head)
            else:
                assert merge_sessions(self.s, *ordered) is self.s
        warned = any(issubclass(w.category, ChunkOverlapWarning) for w in caught)
        for i in order:
            apply_ops(self.t, forks[i]["ops"])

        touchers: dict[Key, list[object]] = {k: ["session"] for k in self.base_after}
        for f in forks:
            for key, payload in f["touched"].items():
                touchers.setdefault(key, []).append(payload)
        if all(len(v) == 1 for v in touchers.values()):
            assert not warned, "no chunk was written by two actors after the fork"
        clash = any(
            key not in self.staged_at_fork
            and "session" not in payloads
            and len(set(map(repr, payloads))) > 1
            for key, payloads in touchers.items()
        )
        if clash:
            assert warned, "two forks wrote different data to one chunk"

        for f in forks:
            self.staged.update(f["touched"])
        for path, owner in self.meta_owner.items():
            if isinstance(owner, int):  # that fork's resizes are now the session's
                self.shapes[path] = forks[owner]["shapes"][path]
        self.forks = []
        self.meta_owner = {}
        self.check_same_uncommitted()

    @precondition(lambda self: not self.forks)
    @rule()
    def commit(self) -> None:
        assert self.s.has_uncommitted_changes == self.t.has_uncommitted_changes
        if not self.s.has_uncommitted_changes:
            return
        self.s.commit("main")
        self.t.commit("serial")
        main = self.repo.readonly_session("main")
        serial = self.repo.readonly_session("serial")
        for path in ARRAYS:
            assert _array_state(main, path) == _array_state(serial, path)
        self.s = self.repo.writable_session("main")
        self.t = self.repo.writable_session("serial")
        self.staged = set()

    # -- checks -----------------------------------------------------------------------------

    @invariant()
    def check_same_uncommitted(self) -> None:
        if not hasattr(self, "s"):
            return
        for path in ARRAYS:
            mine, serial = _array_state(self.s, path), _array_state(self.t, path)
            assert mine == serial, path
            assert mine["shape"] == self.shapes[path]
        assert _status(self.s) == _status(self.t)


def test_fork_merge_matches_serial(pool: ProcessPoolExecutor) -> None:
    ForkMergeMachine.pool = pool
    run_state_machine_as_test(
        ForkMergeMachine,
        settings=settings(
            max_examples=30,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


# -- deterministic regressions: forks of dirty sessions ---------------------------------------


@pytest.fixture
def dirty(tmp_path: Path) -> tuple[Repository, Session]:
    """A session that created ``/new`` (chunks 0..3 written) and wrote ``/old`` chunk 0, all
    uncommitted; ``/old`` and ``/gone`` exist in the base commit."""
    repo = Repository.create(local_filesystem_storage(str(tmp_path / "repo")))
    session = repo.writable_session("main")
    root = zarr.group(session.store)
    old = root.create_array("old", shape=(4,), chunks=(1,), dtype="i4", fill_value=0)
    old[:] = [1, 2, 3, 4]
    root.create_array("gone", shape=(2,), chunks=(1,), dtype="i4", fill_value=0)[:] = 5
    session.commit("base")
    session = repo.writable_session("main")
    root = zarr.open_group(session.store, mode="r+")
    new = root.create_array("new", shape=(4,), chunks=(1,), dtype="i4", fill_value=0)
    new[:] = [10, 11, 12, 13]
    zarr.open_array(session.store, path="old", mode="r+")[0] = 100
    return repo, session


def test_fork_of_dirty_session_sees_and_rewrites_parent_changes(
    pool: ProcessPoolExecutor, dirty: tuple[Repository, Session]
) -> None:
    repo, session = dirty
    f1, f2, f3 = session.fork(), session.fork(), session.fork()
    assert f1.snapshot_id == session.snapshot_id and f1.branch is None
    f1, f2, f3 = _in_processes(
        pool,
        [f1, f2, f3],
        [
            # grow the array the parent created, write into the new part
            [("resize", "new", (6,)), ("write", "new", (4,), 14), ("write", "new", (5,), 15)],
            # overwrite the parent's staged chunks (no overlap: the parent did not change
            # them after forking)
            [("write", "new", (0,), 20), ("write", "old", (0,), 200), ("delete", "new", (1,))],
            # attributes on the parent's new array are not a conflict either
            [("attr", "old", "units", "m"), ("delete", "gone", (0,))],
        ],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ChunkOverlapWarning)
        session.merge(f2, f1, f3)
    session.commit("forks of a dirty session")
    ro = repo.readonly_session("main")
    np.testing.assert_array_equal(zarr.open_array(ro.store, path="new")[:], [20, 0, 12, 13, 14, 15])
    old = zarr.open_array(ro.store, path="old")
    np.testing.assert_array_equal(old[:], [200, 2, 3, 4])
    assert old.attrs["units"] == "m"
    assert sorted(ro.chunk_coordinates("/new")) == [(0,), (2,), (3,), (4,), (5,)]
    np.testing.assert_array_equal(zarr.open_array(ro.store, path="gone")[:], [0, 5])


def test_fork_deletes_array_created_by_dirty_parent(
    pool: ProcessPoolExecutor, dirty: tuple[Repository, Session]
) -> None:
    repo, session = dirty
    (fork,) = _in_processes(pool, [session.fork()], [[]])
    zarr.open_group(fork.store, mode="r+").__delitem__("new")  # here, after the round trip
    (fork,) = _in_processes(pool, [fork], [[("write", "old", (1,), 7)]])
    session.merge(fork)
    assert "/new" not in dict(session.list_nodes())
    session.commit("deleted")
    ro = repo.readonly_session("main")
    assert sorted(p for p, _ in ro.list_nodes()) == ["/", "/gone", "/old"]
    np.testing.assert_array_equal(zarr.open_array(ro.store, path="old")[:], [100, 7, 3, 4])


def test_parent_change_after_fork_still_overlaps(dirty: tuple[Repository, Session]) -> None:
    _, session = dirty
    fork = session.fork()
    zarr.open_array(session.store, path="new", mode="r+")[2] = 99  # after forking
    zarr.open_array(fork.store, path="new", mode="r+")[2] = 42
    with pytest.warns(ChunkOverlapWarning, match="same chunks"):
        session.merge(fork)
    np.testing.assert_array_equal(zarr.open_array(session.store, path="new")[:], [10, 11, 42, 13])


def test_fork_of_a_fork(pool: ProcessPoolExecutor, dirty: tuple[Repository, Session]) -> None:
    repo, session = dirty
    fork = session.fork()
    zarr.open_array(fork.store, path="new", mode="r+")[0] = 1
    child = fork.fork()
    np.testing.assert_array_equal(zarr.open_array(child.store, path="new")[:], [1, 11, 12, 13])
    (child,) = _in_processes(pool, [child], [[("write", "new", (1,), 2)]])
    fork.merge(child)
    session.merge(fork)
    session.commit("nested")
    np.testing.assert_array_equal(
        zarr.open_array(repo.readonly_session("main").store, path="new")[:], [1, 2, 12, 13]
    )


def test_sibling_forks_metadata_conflict_leaves_session_untouched(
    dirty: tuple[Repository, Session],
) -> None:
    from icechunk import SessionStateError

    _, session = dirty
    f1, f2, f3 = session.fork(), session.fork(), session.fork()
    zarr.open_array(f1.store, path="old", mode="r+")[3] = 40
    zarr.open_array(f2.store, path="old", mode="r+").attrs["a"] = 1
    zarr.open_array(f3.store, path="old", mode="r+").attrs["a"] = 2
    before = _status(session)
    with pytest.raises(SessionStateError, match="updated the metadata of `/old` differently"):
        session.merge(f1, f2, f3)
    assert _status(session) == before  # all or nothing
    np.testing.assert_array_equal(zarr.open_array(session.store, path="old")[:], [100, 2, 3, 4])
