"""What crosses a process boundary, and how: forks carry their changes both ways; a writable
session (or its store, or a zarr array on it) arrives as a read-only view whose writes explain
``fork()``; the dask and xarray writers that would lose writes fail loudly instead. Plus the
error contract of fork/merge/store_dask."""

from __future__ import annotations

import pickle
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr

from icechunk import (
    ForkSession,
    ReadOnlyError,
    Repository,
    Session,
    SessionStateError,
    local_filesystem_storage,
)
from icechunk._sync import sync
from icechunk.change_set import ChunkOverlapWarning
from icechunk.dask import session_merge_reduction, store_dask
from icechunk.distributed import extract_session, merge_sessions
from icechunk.errors import ErrorKind
from icechunk.xarray import to_icechunk
from tests.datasets import rasm_like
from tests.integrations._workers import (
    apply_ops,
    read_array,
    read_via_open_group,
    session_facts,
    try_write,
    write_through_array,
    write_time_region,
)


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    """A repository with ``/x`` (8x8 of 2x2 chunks, values 0..63) committed."""
    repo = Repository.create(local_filesystem_storage(str(tmp_path / "repo")))
    session = repo.writable_session("main")
    arr = zarr.group(session.store).create_array(
        "x", shape=(8, 8), chunks=(2, 2), dtype="i4", fill_value=-1
    )
    arr[:] = np.arange(64).reshape(8, 8)
    session.commit("x")
    return repo


def _x(session: Session) -> zarr.Array:
    return zarr.open_array(session.store, path="x", mode="r+" if not session.read_only else "r")


def _committed_x(repo: Repository) -> np.ndarray[Any, Any]:
    return np.asarray(zarr.open_array(repo.readonly_session("main").store, path="x")[:])


# -- forks ------------------------------------------------------------------------------------


def test_fork_pickles_and_round_trips_changes(
    repo: Repository, process_pool: ProcessPoolExecutor
) -> None:
    session = repo.writable_session("main")
    fork = session.fork()
    assert isinstance(fork, ForkSession)
    assert fork.branch is None and not fork.read_only
    assert fork.snapshot_id == session.snapshot_id

    # in-process round trip: the copy is independent and keeps its changes
    _x(fork)[0:2, 0:2] = 100
    copy = pickle.loads(pickle.dumps(fork))
    assert isinstance(copy, ForkSession) and copy is not fork
    assert copy.has_uncommitted_changes
    np.testing.assert_array_equal(_x(copy)[0:2, 0:2], 100)

    # through a real process: the fork comes back carrying both writes
    back = process_pool.submit(apply_ops, copy, [("write", "x", (3, 3), 7)]).result()
    assert isinstance(back, ForkSession)
    assert back.status().updated_chunks == {"/x": [[0, 0], [3, 3]]}
    assert not session.has_uncommitted_changes
    session.merge(back)
    session.commit("merged")
    expected = np.arange(64).reshape(8, 8)
    expected[0:2, 0:2] = 100
    expected[6:8, 6:8] = 7
    np.testing.assert_array_equal(_committed_x(repo), expected)


def test_zarr_array_on_fork_store_round_trips(
    repo: Repository, process_pool: ProcessPoolExecutor
) -> None:
    session = repo.writable_session("main")
    fork = session.fork()
    futures = [
        process_pool.submit(write_through_array, _x(fork), (slice(2 * i, 2 * i + 2),), i)
        for i in range(4)
    ]
    arrays = [f.result() for f in futures]
    sessions = [extract_session(a) for a in arrays]
    assert all(isinstance(s, ForkSession) for s in sessions)
    merged = merge_sessions(sessions)  # a list, as dask reductions pass them
    assert merged is sessions[0]
    session.merge(merged)
    session.commit("rows")
    expected = np.broadcast_to(np.repeat(np.arange(4), 2)[:, None], (8, 8))
    np.testing.assert_array_equal(_committed_x(repo), expected)


def test_dirty_fork_round_trips_parent_changes(
    repo: Repository, process_pool: ProcessPoolExecutor
) -> None:
    session = repo.writable_session("main")
    _x(session)[0, 0] = 1000  # uncommitted in the parent
    fork = session.fork()
    data = process_pool.submit(read_array, fork, "x").result()
    assert data[0, 0] == 1000  # the fork's view includes the parent's changes
    back = process_pool.submit(apply_ops, fork, [("write", "x", (0, 1), 5)]).result()
    session.merge(back)
    session.commit("dirty fork")
    out = _committed_x(repo)
    assert out[0, 0] == 1000 and out[0, 2] == 5


# -- writable sessions travel as read-only views ---------------------------------------------


@pytest.mark.parametrize("what", ["session", "store", "array"])
def test_writable_session_pickles_as_read_only_view(
    repo: Repository, process_pool: ProcessPoolExecutor, what: str
) -> None:
    session = repo.writable_session("main")
    _x(session)[0:2, 0:2] = 42  # uncommitted: the view sees it
    obj: Any = {"session": session, "store": session.store, "array": _x(session)}[what]

    facts = process_pool.submit(session_facts, obj if what != "array" else obj.store).result()
    assert facts == {
        "type": "Session",
        "read_only": True,
        "branch": None,
        "snapshot_id": session.snapshot_id,
        "has_uncommitted_changes": True,
    }
    data = process_pool.submit(read_array, obj, "x").result()
    np.testing.assert_array_equal(data, _x(session)[:])

    # a write through an (unpickled) zarr array of the view
    store = {"session": session.store, "store": obj, "array": None}[what]
    array = obj if what == "array" else zarr.open_array(store, path="x", mode="r")
    error = process_pool.submit(try_write, array).result()
    assert isinstance(error, ReadOnlyError), error
    assert "fork()" in str(error) and "to_icechunk" in str(error)
    view = pickle.loads(pickle.dumps(obj))
    view_session = {
        "session": lambda: view,
        "store": lambda: view.session,
        "array": lambda: view.store.session,
    }[what]()
    with pytest.raises(ReadOnlyError, match=r"fork\(\)"):
        sync(view_session.set_chunk("/x", (0, 0), b"data"))
    with pytest.raises(ReadOnlyError, match=r"fork\(\)"):
        sync(view_session.delete_node("/x"))

    assert not session.read_only and session.branch == "main"
    session.commit("still writable")
    np.testing.assert_array_equal(_committed_x(repo)[0:2, 0:2], 42)


@pytest.mark.parametrize("how", ["zarr.open_group reads", "zarr.open_array r+", "to_zarr"])
def test_view_store_opens_in_writable_zarr_modes(
    repo: Repository, process_pool: ProcessPoolExecutor, how: str
) -> None:
    """zarr refuses to open a read-only store in any mode but ``"r"`` with its own error.

    For a view (a writable session sent to another process) that means ``zarr.open_group``
    (default mode ``"a"``) cannot even read, and the #1206 mistake (sending the writable
    session itself to worker processes that call ``to_zarr(region=...)``) fails with zarr's
    "Store is read-only but mode is 'r+'" instead of the fork() explanation.

    Needs, in icechunk/store.py, a view's store to report ``read_only=False`` to zarr
    (``Session._store_read_only``) and to let the session refuse each write: see the
    hand-back notes."""
    session = repo.writable_session("main")
    if how == "zarr.open_group reads":
        data = process_pool.submit(read_via_open_group, session, "x").result()
        np.testing.assert_array_equal(data, np.arange(64).reshape(8, 8))
        return
    if how == "zarr.open_array r+":
        error = process_pool.submit(try_write, session, "x").result()
    else:
        to_icechunk(rasm_like(ntime=2), session, group="rasm", mode="w", compute=False)
        future = process_pool.submit(write_time_region, session, 1, "to_zarr", "rasm", 2)
        error = future.exception()
    assert isinstance(error, ReadOnlyError), repr(error)
    assert "fork()" in str(error)


def test_read_only_view_refuses_fork_commit_and_merge(repo: Repository) -> None:
    session = repo.writable_session("main")
    view = pickle.loads(pickle.dumps(session))
    assert view.read_only
    with pytest.raises(SessionStateError) as info:
        view.fork()
    assert info.value.kind == ErrorKind.CANNOT_FORK_READ_ONLY_SESSION
    with pytest.raises(SessionStateError, match="not allowed"):
        view.commit("nope")
    with pytest.raises(ReadOnlyError, match=r"fork\(\)"):
        view.merge(session.fork())
    with pytest.raises(ReadOnlyError, match=r"fork\(\)"):
        to_icechunk(rasm_like(ntime=2), view)


def test_read_only_session_cannot_fork(repo: Repository) -> None:
    with pytest.raises(SessionStateError) as info:
        repo.readonly_session("main").fork()
    assert info.value.kind == ErrorKind.CANNOT_FORK_READ_ONLY_SESSION
    assert str(info.value.kind) == "cannot-fork-read-only-session"


# -- dask / xarray writers on a writable session under processes fail loudly -------------------


def _assert_no_chunks_written(repo: Repository, path: str) -> None:
    """The coordinator's commit holds none of the workers' (refused) writes."""
    ro = repo.readonly_session("main")
    assert list(ro.chunk_coordinates(path)) == []


def test_dask_to_zarr_on_writable_store_fails_under_distributed(
    repo: Repository, dask_client: Any
) -> None:
    session = repo.writable_session("main")
    target = zarr.group(session.store).create_array(
        "y", shape=(8, 8), chunks=(2, 2), dtype="f8", fill_value=np.nan
    )
    with pytest.raises(ReadOnlyError, match=r"fork\(\)"):
        da.ones((8, 8), chunks=(4, 4)).to_zarr(target)
    assert session.status().updated_chunks == {}
    session.commit("only the metadata")
    _assert_no_chunks_written(repo, "/y")
    assert np.isnan(zarr.open_array(repo.readonly_session("main").store, path="y")[:]).all()


def test_dataset_to_zarr_on_writable_store_fails_under_distributed(
    repo: Repository, dask_client: Any
) -> None:
    session = repo.writable_session("main")
    ds = rasm_like(ntime=4).chunk({"time": 1})
    with pytest.raises(ReadOnlyError, match="to_icechunk"):
        ds.to_zarr(session.store, group="rasm", consolidated=False, zarr_format=3)
    assert "/rasm/Tair" not in session.status().updated_chunks
    session.commit("template only")
    _assert_no_chunks_written(repo, "/rasm/Tair")
    # the same dataset through to_icechunk works
    session = repo.writable_session("main")
    to_icechunk(ds, session, group="rasm", mode="w")
    session.commit("written")
    back = xr.open_zarr(repo.readonly_session("main").store, group="rasm", consolidated=False)
    xr.testing.assert_identical(back, ds)


def test_dask_to_zarr_on_writable_store_fails_with_processes_scheduler(
    repo: Repository,
) -> None:
    import dask.multiprocessing

    session = repo.writable_session("main")
    with dask.config.set(scheduler="processes", num_workers=2):
        assert dask.base.get_scheduler() is dask.multiprocessing.get
        with pytest.raises(ReadOnlyError, match=r"fork\(\)"):
            da.zeros((8, 8), chunks=(4, 4), dtype="i4").to_zarr(_x(session))
    assert not session.has_uncommitted_changes
    np.testing.assert_array_equal(_committed_x(repo), np.arange(64).reshape(8, 8))


def test_reads_through_writable_session_work_under_distributed(
    repo: Repository, dask_client: Any
) -> None:
    """#964: a graph that *reads* through a writable session runs on workers, and its result
    can be written back with to_icechunk."""
    session = repo.writable_session("main")
    ds = rasm_like(ntime=4)
    to_icechunk(ds.chunk({"time": 2}), session, group="src")
    opened = xr.open_zarr(session.store, group="src", consolidated=False)  # uncommitted data
    assert opened.identical(ds)  # computed by the workers
    to_icechunk(opened * 2, session, group="doubled")
    session.commit("read and rewrite")
    doubled = xr.open_zarr(repo.readonly_session("main").store, group="doubled")
    np.testing.assert_array_equal(doubled.Tair.values, ds.Tair.values * 2)


def test_threaded_to_zarr_on_writable_store_works(repo: Repository) -> None:
    session = repo.writable_session("main")
    with dask.config.set(scheduler="threads"):
        da.zeros((8, 8), chunks=(4, 4), dtype="i4").to_zarr(_x(session))
    session.commit("threads share the session")
    np.testing.assert_array_equal(_committed_x(repo), 0)


# -- store_dask and session_merge_reduction ----------------------------------------------------


@pytest.mark.parametrize("split_every", [None, 2])
def test_store_dask_keyword_form_under_distributed(
    repo: Repository, dask_client: Any, split_every: int | None
) -> None:
    session = repo.writable_session("main")
    fork = session.fork()
    source = da.arange(64, chunks=4, dtype="i4").reshape(8, 8).rechunk((2, 4)) * 10
    merged = store_dask(sources=[source], targets=[_x(fork)], split_every=split_every)
    assert isinstance(merged, ForkSession)
    assert not session.has_uncommitted_changes  # nothing merged yet
    session.merge(merged)
    session.commit("store_dask")
    np.testing.assert_array_equal(_committed_x(repo), np.arange(64).reshape(8, 8) * 10)


def test_store_dask_regions(repo: Repository, dask_client: Any) -> None:
    session = repo.writable_session("main")
    out = store_dask(
        session,
        sources=[da.full((4, 8), 9, chunks=(2, 4), dtype="i4")],
        targets=[_x(session)],
        regions=[(slice(4, 8), slice(None))],
    )
    assert out is session
    session.commit("bottom half")
    expected = np.arange(64).reshape(8, 8)
    expected[4:] = 9
    np.testing.assert_array_equal(_committed_x(repo), expected)


@pytest.mark.parametrize("kwarg", ["compute", "return_stored", "load_stored", "lock"])
def test_store_dask_rejects_compute(repo: Repository, kwarg: str) -> None:
    fork = repo.writable_session("main").fork()
    with pytest.raises(TypeError, match=kwarg):
        store_dask(sources=[da.zeros((8, 8), chunks=4)], targets=[_x(fork)], **{kwarg: False})


def test_session_merge_reduction_needs_dask_arrays(repo: Repository) -> None:
    with pytest.raises(TypeError, match="Expected a dask array"):
        session_merge_reduction(np.zeros(3), split_every=2)
    with pytest.raises(TypeError, match="Expected a dask array"):
        session_merge_reduction(
            [da.zeros(3), _x(repo.writable_session("main").fork())], split_every=None
        )


# -- merge and fork contract -------------------------------------------------------------------


def test_merge_forks_with_different_base_snapshots(repo: Repository) -> None:
    old = repo.writable_session("main")
    old_fork = old.fork()
    _x(old_fork)[0, 0] = 1
    other = repo.writable_session("main")
    _x(other)[7, 7] = 2
    other.commit("moves main")
    new = repo.writable_session("main")
    assert new.snapshot_id != old_fork.snapshot_id
    with pytest.raises(SessionStateError, match="base") as info:
        new.merge(old_fork)
    assert info.value.kind == ErrorKind.MERGE_NOT_ALLOWED
    new_fork = new.fork()
    with pytest.raises(SessionStateError):
        new_fork.merge(old_fork)
    with pytest.raises(SessionStateError):
        merge_sessions(new_fork, old_fork)
    assert not new.has_uncommitted_changes


def _overlapping_forks(repo: Repository) -> tuple[Session, ForkSession, ForkSession]:
    session = repo.writable_session("main")
    f1, f2 = session.fork(), session.fork()
    _x(f1)[0:3, 0:2] = 1  # chunks (0,0) and (1,0), the latter partially
    _x(f2)[2:4, 0:2] = 2  # chunk (1,0)
    return session, pickle.loads(pickle.dumps(f1)), pickle.loads(pickle.dumps(f2))


def test_overlapping_fork_writes_warn_and_last_merged_wins(repo: Repository) -> None:
    session, f1, f2 = _overlapping_forks(repo)
    with pytest.warns(ChunkOverlapWarning, match=r"1 found.*\[1, 0\]"):
        session.merge(f1, f2)
    np.testing.assert_array_equal(_x(session)[0:4, 0], [1, 1, 2, 2])

    session, f1, f2 = _overlapping_forks(repo)
    with pytest.warns(ChunkOverlapWarning):
        merge_sessions(session, f2, f1)
    # f1's whole chunk (1, 0) wins, including the row it only read: f2's write is lost
    np.testing.assert_array_equal(_x(session)[0:4, 0], [1, 1, 1, 24])

    session, f1, f2 = _overlapping_forks(repo)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        session.merge(f1, f2, on_overlap="ignore")


def test_overlapping_fork_writes_error_on_request(repo: Repository) -> None:
    session, f1, f2 = _overlapping_forks(repo)
    with pytest.raises(SessionStateError, match="same chunks") as info:
        session.merge(f1, f2, on_overlap="error")
    assert info.value.kind == ErrorKind.MERGE_CONFLICT
    assert not session.has_uncommitted_changes  # all or nothing
    # a tree reduction detects it too
    with pytest.raises(SessionStateError, match="same chunks"):
        f1.merge(f2, on_overlap="error")


def test_overlaps_found_on_workers_are_reported_on_the_client(
    repo: Repository, dask_client: Any
) -> None:
    """dask chunks (2, 2) straddle zarr chunks (4, 4): every zarr chunk is rewritten by four
    tasks, each in its own fork; the tree reduction merging them runs on the workers, yet the
    warning (or error) comes where the user merges into the session."""
    session = repo.writable_session("main")
    target = zarr.group(session.store).create_array(
        "coarse", shape=(8, 8), chunks=(4, 4), dtype="i4", fill_value=0
    )
    source = da.ones((8, 8), chunks=(2, 2), dtype="i4")
    merged = store_dask(sources=[source], targets=[_on_fork(target, session)], split_every=2)
    with pytest.warns(ChunkOverlapWarning, match="/coarse"):
        session.merge(merged)
    assert (zarr.open_array(session.store, path="coarse")[:] == 1).sum() < 64  # writes lost

    session = repo.writable_session("main")
    target = zarr.group(session.store).create_array(
        "coarse", shape=(8, 8), chunks=(4, 4), dtype="i4", fill_value=0
    )
    merged = store_dask(sources=[source], targets=[_on_fork(target, session)])
    with pytest.raises(SessionStateError, match="same chunks"):
        session.merge(merged, on_overlap="error")
    assert not session.status().updated_chunks


def _on_fork(array: zarr.Array, session: Session) -> zarr.Array:
    return zarr.open_array(session.fork().store, path=array.path, mode="r+")


def test_identical_writes_do_not_overlap(repo: Repository) -> None:
    session = repo.writable_session("main")
    f1, f2 = session.fork(), session.fork()
    _x(f1)[0:2, 0:2] = 5  # small chunks are inlined: equal bytes, equal references
    _x(f2)[0:2, 0:2] = 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        session.merge(f1, f2)


def test_merge_sessions_type_checks(repo: Repository) -> None:
    session = repo.writable_session("main")
    fork = session.fork()
    other = repo.writable_session("main")
    with pytest.raises(TypeError, match="Received 'Session'"):
        merge_sessions(fork, other)
    with pytest.raises(TypeError, match="Received 'Session'"):
        merge_sessions(session, fork, [other])
    with pytest.raises(TypeError):
        merge_sessions(session, "not a session")  # type: ignore[arg-type]
    # the coordinator session itself may appear (threads share it), and nested lists flatten
    assert merge_sessions(session, [[session, fork]], [fork]) is session


def test_fork_cannot_merge_a_plain_session(repo: Repository) -> None:
    session = repo.writable_session("main")
    fork = session.fork()
    with pytest.raises(SessionStateError) as info:
        fork.merge(session)  # type: ignore[arg-type]
    assert info.value.kind == ErrorKind.MERGE_NOT_ALLOWED


def test_commit_flush_amend_on_fork(repo: Repository) -> None:
    fork = repo.writable_session("main").fork()
    _x(fork)[0, 0] = 3
    with pytest.raises(SessionStateError, match="commits are not allowed on read-only or forked"):
        fork.commit("no")
    with pytest.raises(SessionStateError, match="cannot flush a forked session"):
        fork.flush("no")
    with pytest.raises(SessionStateError, match="not allowed on read-only or forked"):
        fork.amend("no")
    assert fork.has_uncommitted_changes


def test_fork_allowed_on_dirty_session_and_sees_its_changes(repo: Repository) -> None:
    session = repo.writable_session("main")
    _x(session)[0, 0] = 77
    fork = session.fork()
    assert not fork.has_uncommitted_changes  # only its own changes count
    assert _x(fork)[0, 0] == 77
    _x(session)[0, 1] = 78  # later parent changes are not visible to the fork
    assert _x(fork)[0, 1] == 1
    session.merge(fork)
    assert _x(session)[0, 1] == 78
