"""Rearrange sessions and ``Session.move``; ``shift_array`` and ``reindex_array``.

Expected results, messages and kinds are those of the real icechunk 2.3.0 (observed on it)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

import icechunk as ic
from icechunk.errors import (
    AlreadyExistsError,
    IcechunkError,
    InvalidInputError,
    NodeNotFoundError,
    RebaseFailedError,
    SessionStateError,
)


@pytest.fixture
def repo(tmp_path: Path) -> ic.Repository:
    repo = ic.Repository.create(ic.local_filesystem_storage(str(tmp_path / "r")))
    s = repo.writable_session("main")
    root = zarr.open_group(s.store, mode="a")
    grp = root.create_group("grp", attributes={"k": 1})
    grp.create_array("x", shape=(4,), chunks=(2,), dtype="i4")[:] = [1, 2, 3, 4]
    grp.create_group("sub").create_array("y", shape=(2,), chunks=(1,), dtype="f8")[:] = 5
    root.create_array("top", shape=(3,), chunks=(3,), dtype="i2")[:] = 7
    s.commit("c1")
    return repo


def _data(session: ic.Session, path: str) -> Any:
    return zarr.open_array(session.store, path=path, mode="r")[:].tolist()


def test_move_renames_a_subtree_and_keeps_node_ids(repo: ic.Repository) -> None:
    base = repo.readonly_session("main")
    r = repo.rearrange_session("main")
    assert (r.mode, r.read_only, r.branch) == (ic.SessionMode.rearrange, False, "main")
    r.move("/grp", "/moved")
    r.move("/top", "/moved/sub/top2")
    r.move("/moved/x", "/xx")
    expected = [
        ("/grp", "/moved"),
        ("/grp/sub", "/moved/sub"),
        ("/top", "/moved/sub/top2"),
        ("/grp/sub/y", "/moved/sub/y"),
        ("/grp/x", "/xx"),
    ]
    assert r.status().moved_nodes == expected
    assert _data(r, "xx") == [1, 2, 3, 4]
    assert r.get_node_id("/xx") == base.get_node_id("/grp/x")
    with pytest.raises(NodeNotFoundError):
        r.get_node_id("/grp")
    c1 = repo.lookup_branch("main")
    c2 = r.commit("moves")
    tx = repo.inspect_transaction_log(c2)
    assert [(m["from"], m["to"]) for m in tx["moved_nodes"]] == expected
    assert tx["new_arrays"] == tx["updated_arrays"] == tx["updated_chunks"] == []
    assert repo.diff(from_snapshot_id=c1, to_snapshot_id=c2).moved_nodes == expected
    after = repo.readonly_session("main")
    assert _data(after, "moved/sub/top2") == [7, 7, 7]
    assert _data(after, "moved/sub/y") == [5.0, 5.0]
    assert dict(zarr.open_group(after.store, path="moved", mode="r").attrs) == {"k": 1}
    assert after.get_node_id("/moved/sub/top2") == base.get_node_id("/top")


@pytest.mark.parametrize(
    ("src", "dst", "error", "kind", "message"),
    [
        (
            "/",
            "/x",
            SessionStateError,
            "move-into-self-or-descendant",
            "session error: cannot move `/` into itself or its own descendant `/x`.",
        ),
        (
            "/top",
            "/",
            AlreadyExistsError,
            "move-wont-overwrite",
            "session error: move cannot overwrite existing node at `/`",
        ),
        (
            "/nope",
            "/x",
            NodeNotFoundError,
            "node-not-found",
            "session error: node not found at `/nope`: existing node not found",
        ),
        (
            "/top",
            "/grp",
            AlreadyExistsError,
            "move-wont-overwrite",
            "session error: move cannot overwrite existing node at `/grp`",
        ),
        (
            "/grp",
            "/grp/sub/z",
            SessionStateError,
            "move-into-self-or-descendant",
            "session error: cannot move `/grp` into itself or its own descendant `/grp/sub/z`.",
        ),
        (
            "/top",
            "/top",
            SessionStateError,
            "move-into-self-or-descendant",
            "session error: cannot move `/top` into itself or its own descendant `/top`.",
        ),
        (
            "/grp/sub",
            "/top/z",
            SessionStateError,
            "move-destination-parent-not-group",
            "session error: cannot move to `/top/z`: the destination's parent `/top` is an array, not a group. Move destinations must land under groups; arrays cannot have children.",
        ),
        (
            "grp",
            "g2",
            InvalidInputError,
            "invalid-path",
            "could not create path from prefix: path must start with a `/` character",
        ),
    ],
)
def test_invalid_moves(
    repo: ic.Repository, src: str, dst: str, error: type, kind: str, message: str
) -> None:
    r = repo.rearrange_session("main")
    with pytest.raises(error) as info:
        r.move(src, dst)
    assert (info.value.kind, str(info.value)) == (kind, message)
    assert not r.has_uncommitted_changes


def test_move_needs_parent_group_and_a_rearrange_session(repo: ic.Repository) -> None:
    r = repo.rearrange_session("main")
    with pytest.raises(
        SessionStateError, match="the destination's parent group `/a/b` does not exist"
    ) as info:
        r.move("/top", "/a/b/c")
    assert info.value.kind == "move-destination-parent-missing"
    w = repo.writable_session("main")
    with pytest.raises(SessionStateError, match="you need to create a rearrange session") as info:
        w.move("/grp", "/g")
    assert info.value.kind == "non-rearrange-session"
    with pytest.raises(
        SessionStateError, match="other write operations cannot be executed"
    ) as info:
        zarr.open_group(r.store).create_group("new")
    assert info.value.kind == "rearrange-session-only"


def test_empty_and_back_and_forth_rearrange_commits(repo: ic.Repository) -> None:
    with pytest.raises(SessionStateError, match="no changes made to the session"):
        repo.rearrange_session("main").commit("empty")
    r = repo.rearrange_session("main")
    r.move("/top", "/t")
    r.move("/t", "/top")
    assert r.has_uncommitted_changes and r.status().moved_nodes == []
    snap = r.commit("back and forth")
    assert repo.inspect_transaction_log(snap)["moved_nodes"] == []


def test_rebase_rules_for_moves(repo: ic.Repository) -> None:
    # ours has moves, theirs none: rebase succeeds and the moves are replayed on the new tip
    r = repo.rearrange_session("main")
    r.move("/grp", "/g2")
    w = repo.writable_session("main")
    zarr.open_array(w.store, path="grp/x")[0:2] = 9
    w.commit("theirs writes")
    with pytest.raises(ic.ConflictError):
        r.commit("stale")
    r.rebase(ic.ConflictDetector())
    r.commit("ours moves")
    assert _data(repo.readonly_session("main"), "g2/x") == [9, 9, 3, 4]
    # theirs has moves: nothing rebases over them, whatever the session and the solver
    w = repo.writable_session("main")
    zarr.open_array(w.store, path="top")[:] = 1
    r = repo.rearrange_session("main")
    r.move("/top", "/top3")
    r.commit("theirs moves")
    for solver in (ic.ConflictDetector(), ic.BasicConflictSolver()):
        with pytest.raises(RebaseFailedError) as info:
            w.rebase(solver)
        [conflict] = info.value.conflicts
        assert (conflict.conflict_type, conflict.path) == (
            ic.ConflictType.MoveOperationCannotBeRebased,
            "",
        )


def test_amend_and_flush_of_rearrange_sessions(repo: ic.Repository) -> None:
    r = repo.rearrange_session("main")
    r.move("/top", "/t1")
    r.amend("amended")
    assert repo.lookup_snapshot(repo.lookup_branch("main")).message == "amended"
    r = repo.rearrange_session("main")
    r.move("/t1", "/t2")
    snap = r.flush("detached")
    assert repo.inspect_transaction_log(snap)["moved_nodes"][0]["to"] == "/t2"


# -- shift / reindex ---------------------------------------------------------------------------


@pytest.fixture
def arr_repo(tmp_path: Path) -> ic.Repository:
    repo = ic.Repository.create(ic.local_filesystem_storage(str(tmp_path / "a")))
    s = repo.writable_session("main")
    root = zarr.open_group(s.store, mode="a")
    root.create_array("a", shape=(6,), chunks=(2,), dtype="i4", fill_value=-1)[:] = np.arange(6)
    root.create_array("b", shape=(4, 4), chunks=(2, 2), dtype="i4", fill_value=0)[:] = np.arange(
        16
    ).reshape(4, 4)
    root.create_group("grp")
    s.commit("c1")
    return repo


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        ([1], [-1, -1, 0, 1, 2, 3]),
        ([-1], [2, 3, 4, 5, -1, -1]),
        ([5], [-1] * 6),
        ([0], [0, 1, 2, 3, 4, 5]),
    ],
)
def test_shift_array(arr_repo: ic.Repository, offset: list[int], expected: list[int]) -> None:
    w = arr_repo.writable_session("main")
    w.shift_array("/a", offset)
    assert _data(w, "a") == expected
    sid = w.commit("shifted")
    assert _data(arr_repo.readonly_session(snapshot_id=sid), "a") == expected


def test_shift_2d_sparse_and_staged(arr_repo: ic.Repository) -> None:
    w = arr_repo.writable_session("main")
    w.shift_array("/b", (1, -1))
    assert _data(w, "b") == [[0, 0, 0, 0], [0, 0, 0, 0], [2, 3, 0, 0], [6, 7, 0, 0]]
    w = arr_repo.writable_session("main")
    zarr.open_array(w.store, path="a")[2:4] = -1  # chunk 1 becomes empty
    w.shift_array("/a", [1])
    assert _data(w, "a") == [-1, -1, 0, 1, -1, -1]
    w = arr_repo.writable_session("main")
    zarr.open_array(w.store, path="a")[0:2] = [10, 11]
    w.shift_array("/a", [1])
    assert _data(w, "a") == [-1, -1, 10, 11, 2, 3]
    assert w.status().updated_chunks == {"/a": [[0], [1], [2]]}


def test_reindex_array(arr_repo: ic.Repository) -> None:
    def run(fwd: Any, bwd: Any = None) -> list[int]:
        w = arr_repo.writable_session("main")
        w.reindex_array("/a", fwd, bwd)
        return _data(w, "a")  # type: ignore[no-any-return]

    assert run(lambda c: [2 - c[0]]) == [4, 5, 2, 3, 0, 1]
    assert run(lambda c: None) == [0, 1, 2, 3, 4, 5]
    assert run(lambda c: [c[0] + 1] if c[0] < 2 else None) == [0, 1, 0, 1, 2, 3]
    assert run(
        lambda c: [c[0] + 1] if c[0] < 2 else None, lambda c: [c[0] - 1] if c[0] >= 1 else None
    ) == [-1, -1, 0, 1, 2, 3]
    assert run(lambda c: [0]) == [4, 5, 2, 3, 4, 5]
    w = arr_repo.writable_session("main")
    with pytest.raises(
        InvalidInputError, match=r"coordinates ChunkIndices\(\[3\]\) are not valid for array at /a"
    ) as info:
        w.reindex_array("/a", lambda c: [c[0] + 3])
    assert info.value.kind == "invalid-chunk-index" and not w.has_uncommitted_changes
    with pytest.raises(
        IcechunkError, match="session error: unknown error: ZeroDivisionError: division by zero"
    ) as info:
        w.reindex_array("/a", lambda c: 1 / 0)
    assert info.value.kind == "unknown"


def test_shift_and_reindex_refusals(arr_repo: ic.Repository) -> None:
    w = arr_repo.writable_session("main")
    with pytest.raises(InvalidInputError) as info:
        w.shift_array("/grp", [1])
    assert info.value.kind == "not-an-array"
    with pytest.raises(NodeNotFoundError):
        w.shift_array("/nope", [1])
    with pytest.raises(TypeError, match="'float' object cannot be interpreted as an integer"):
        w.shift_array("/a", [1.0])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="one entry per dimension"):
        w.shift_array("/a", [1, 1])
    with pytest.raises(ic.ReadOnlyError, match="Read only sessions cannot modify the repository"):
        arr_repo.readonly_session("main").shift_array("/a", [1])
    with pytest.raises(SessionStateError) as info:
        arr_repo.rearrange_session("main").shift_array("/a", [1])
    assert info.value.kind == "rearrange-session-only"


def test_fork_shift_merge_and_async_twins(arr_repo: ic.Repository) -> None:
    w = arr_repo.writable_session("main")
    fork = w.fork()
    fork.shift_array("/a", [1])

    async def go() -> str:
        await w.merge_async(fork)
        return await w.get_node_id_async("/a")

    assert asyncio.run(go()) == w.get_node_id("/a")
    assert _data(w, "a") == [-1, -1, 0, 1, 2, 3]
