"""``icechunk.xarray.LazyArrayWriter`` / ``is_dask_collection`` and
``icechunk.dask.session_merge_reduction``, on the shared cluster of two worker processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr

from icechunk import Repository, local_filesystem_storage
from icechunk.dask import SimpleGraph, session_merge_reduction
from icechunk.session import ForkSession
from icechunk.xarray import LazyArrayWriter, is_dask_collection


@pytest.fixture(autouse=True)
def client(dask_client: Any) -> Iterator[Any]:
    yield dask_client


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    repo = Repository.create(local_filesystem_storage(str(tmp_path / "repo")))
    session = repo.writable_session("main")
    group = zarr.group(session.store)
    for name in ("a", "b"):
        group.create_array(name, shape=(8, 8), chunks=(2, 2), dtype="i4", fill_value=-1)
    session.commit("arrays")
    return repo


def test_is_dask_collection() -> None:
    assert is_dask_collection(da.zeros(3))
    assert is_dask_collection(xr.DataArray(da.zeros(3)))
    assert not is_dask_collection(np.zeros(3))
    assert not is_dask_collection(xr.DataArray(np.zeros(3)))
    assert not is_dask_collection(3)


def test_simple_graph_is_a_type_alias() -> None:
    assert SimpleGraph.__name__ == "SimpleGraph"
    assert "Mapping" in str(SimpleGraph.__value__)


def test_lazy_writer_holds_writes_until_asked(repo: Repository) -> None:
    session = repo.writable_session("main")
    a = zarr.open_array(session.store, path="a", mode="r+")
    b = zarr.open_array(session.store, path="b", mode="r+")
    writer = LazyArrayWriter()
    eager = np.arange(64, dtype="i4").reshape(8, 8)
    lazy = da.from_array(eager * 10, chunks=4)
    writer.add(eager, a)
    writer.add(eager[:2], b, (slice(0, 2), slice(None)))
    writer.add(lazy, b)
    assert writer.sources == [lazy] and writer.targets == [b] and writer.regions == [None]
    assert len(writer.eager_sources) == 2
    assert (a[:] == -1).all()  # add wrote nothing
    writer.write_eager()
    np.testing.assert_array_equal(a[:], eager)
    np.testing.assert_array_equal(b[:2], eager[:2])
    assert (b[2:] == -1).all()
    assert writer.eager_sources == [] and writer.eager_targets == [] and writer.eager_regions == []
    writer.write_eager()  # nothing left: a no-op
    np.testing.assert_array_equal(a[:], eager)


def test_session_merge_reduction_merges_worker_forks(repo: Repository) -> None:
    session = repo.writable_session("main")
    fork = session.fork()
    targets = [zarr.open_array(fork.store, path=p, mode="r+") for p in ("a", "b")]
    values = np.arange(64, dtype="i4").reshape(8, 8)
    sources = [da.from_array(values, chunks=2), da.from_array(values + 100, chunks=4)]
    stored = da.store(
        sources, targets, compute=False, return_stored=True, load_stored=False, lock=False
    )
    merged = session_merge_reduction(stored, split_every=3)
    assert isinstance(merged, ForkSession)
    session.merge(merged)
    session.commit("written by the workers")
    read = repo.readonly_session("main").store
    np.testing.assert_array_equal(zarr.open_array(read, path="a")[:], values)
    np.testing.assert_array_equal(zarr.open_array(read, path="b")[:], values + 100)


def test_session_merge_reduction_requires_split_every() -> None:
    with pytest.raises(TypeError, match="split_every"):
        session_merge_reduction(da.zeros(3))  # type: ignore[call-arg]


@pytest.mark.parametrize(("setting", "merges"), [(None, 5), (4, 21)])
def test_merge_tree_fan_in_is_16_unless_dask_is_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: int | None, merges: int
) -> None:
    """64 write tasks: a fan-in of 16 merges them in 4 + 1 merge tasks; dask's
    ``split_every`` setting (4 here: 16 + 4 + 1) is respected. The data is the same."""
    import dask

    import icechunk.dask

    calls: list[int] = []
    real_merge = icechunk.dask.merge_sessions_array_kwargs

    def counting(*sessions: Any, **kwargs: Any) -> Any:
        calls.append(len(sessions))
        return real_merge(*sessions, **kwargs)

    monkeypatch.setattr(icechunk.dask, "merge_sessions_array_kwargs", counting)
    repo = Repository.create(local_filesystem_storage(str(tmp_path / "repo")))
    session = repo.writable_session("main")
    zarr.create_array(session.store, name="x", shape=(64,), chunks=(1,), dtype="i4")
    session.commit("array")
    session = repo.writable_session("main")
    fork = session.fork()
    target = zarr.open_array(fork.store, path="x", mode="r+")
    values = np.arange(64, dtype="i4")
    config = {"scheduler": "synchronous"} | ({} if setting is None else {"split_every": setting})
    with dask.config.set(config):
        merged = icechunk.dask.store_dask(
            sources=[da.from_array(values, chunks=1)], targets=[target]
        )
    session.merge(merged)
    session.commit("written")
    assert len(calls) == merges
    read = zarr.open_array(repo.readonly_session("main").store, path="x")
    np.testing.assert_array_equal(read[:], values)
