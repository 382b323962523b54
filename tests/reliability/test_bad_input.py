"""Bad region writes are refused before anything is written.

Writing a dataset into existing arrays (``to_icechunk`` with ``region=``, ``append_dim=`` or
``mode="a"``, and the pipeline's :func:`tasks.core.write_region`) with a dtype that would be
cast unsafely (float into int, complex into float, numbers into datetimes or strings), or with
a shape that does not fit the region or the stored array, raises
:class:`~icechunk.errors.InvalidInputError` naming the variable, what was expected and what was
given, and what to do, before any chunk reaches storage: the repository's files are unchanged
and the session holds no changes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr

import icechunk
from icechunk._sync import sync
from icechunk.errors import ErrorKind, InvalidInputError
from icechunk.xarray import to_icechunk
from tasks.core import extend_dataset, initialize_dataset, write_region
from tasks.sources import SyntheticWeatherSource

NT, NX = 8, 6


def _files(root: Path) -> set[str]:
    """The repository's objects (temporary and lock files excluded)."""
    return {
        os.path.relpath(os.path.join(d, f), root)
        for d, _, fs in os.walk(root)
        for f in fs
        if ".icechunk-tmp" not in d and ".icechunk-locks" not in d
    }


def _target(root: Path, spec: int) -> icechunk.Repository:
    repo = icechunk.Repository.create(
        icechunk.local_filesystem_storage(str(root)), spec_version=spec
    )
    session = repo.writable_session("main")
    ds = xr.Dataset(
        {
            "t": (("time", "x"), np.zeros((NT, NX), "float32")),
            "n": (("time", "x"), np.zeros((NT, NX), "int16")),
            "when": (("time",), pd.date_range("2024-01-01", periods=NT, freq="D").values),
        },
        coords={"time": np.arange(NT), "x": np.arange(NX)},
    )
    to_icechunk(ds, session, encoding={"t": {"chunks": (2, NX)}, "n": {"chunks": (2, NX)}})
    session.commit("target")
    return repo


def _region(**variables: tuple[tuple[str, ...], np.ndarray]) -> xr.Dataset:
    return xr.Dataset(dict(variables.items()))


_T = ("time", "x")
BAD_REGION_WRITES: dict[str, tuple[xr.Dataset, list[str]]] = {
    "float into int16": (_region(n=(_T, np.ones((2, NX), "float64"))), ["'n'", "float64", "int16"]),
    "complex into float32": (
        _region(t=(_T, np.ones((2, NX), "complex128"))),
        ["'t'", "complex128", "float32", "astype"],
    ),
    "int into datetime": (
        _region(when=(("time",), np.arange(2, dtype="int64"))),
        ["'when'", "int64", "datetime64"],
    ),
    "strings into float32": (
        _region(t=(_T, np.full((2, NX), "ab"))),
        ["'t'", "<U2", "float32"],
    ),
    "too long for the region": (
        _region(t=(_T, np.ones((3, NX), "float32"))),
        ["'t'", "3 elements along 'time'", "holds 2"],
    ),
    "wrong length off the region": (
        _region(t=(_T, np.ones((2, NX + 1), "float32"))),
        ["'t'", f"{NX + 1} elements along 'x'", f"holds {NX}"],
    ),
    "other dimensions": (
        _region(t=(("time", "y"), np.ones((2, NX), "float32"))),
        ["'t'", "dimensions", "('time', 'y')"],
    ),
    "two bad variables, one good": (
        _region(
            t=(_T, np.ones((2, NX), "float32")),
            n=(_T, np.ones((2, NX), "float32")),
            when=(("time",), np.ones(2, "int64")),
        ),
        ["'n'", "'when'", "int16", "datetime64"],
    ),
}


@pytest.mark.reliability(
    category="bad input",
    fault="to_icechunk region write with an unsafe dtype cast (float into int, complex into "
    "float, numbers into datetimes, strings into numbers), a shape not fitting the region or "
    "the stored array, or other dimensions; numpy- and dask-backed",
    outcome="InvalidInputError naming the variable, expected vs got and the fix; no object "
    "written, session unchanged",
)
@pytest.mark.parametrize("spec", [1, 2])
@pytest.mark.parametrize("backing", ["numpy", "dask"])
def test_bad_region_writes_write_nothing(tmp_path: Path, spec: int, backing: str) -> None:
    root = tmp_path / "repo"
    repo = _target(root, spec)
    before = _files(root)
    for case, (ds, words) in BAD_REGION_WRITES.items():
        data = ds.chunk({"time": 1}) if backing == "dask" else ds
        session = repo.writable_session("main")
        with pytest.raises(InvalidInputError) as info:
            to_icechunk(data, session, region={"time": slice(2, 4)})
        message = str(info.value)
        for word in words:
            assert word in message, (case, message)
        assert "nothing was written" in message
        assert not session.has_uncommitted_changes, case
        assert _files(root) == before, case
    # a good region write still works afterwards
    session = repo.writable_session("main")
    good = _region(t=(_T, np.full((2, NX), 7, "float32")), n=(_T, np.ones((2, NX), "int8")))
    to_icechunk(good, session, region={"time": slice(2, 4)})
    session.commit("good region")
    back = xr.open_zarr(repo.readonly_session("main").store, consolidated=False)
    np.testing.assert_array_equal(back["t"].values[2:4], 7)
    np.testing.assert_array_equal(back["n"].values[2:4], 1)


@pytest.mark.reliability(
    category="bad input",
    fault="to_icechunk append (append_dim) of a variable with an unsafe dtype or a wrong "
    "length along another dimension",
    outcome="InvalidInputError before the arrays are resized or any chunk written",
)
def test_bad_append_writes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    repo = _target(root, 2)
    before = _files(root)
    cases = [
        _region(t=(_T, np.ones((2, NX), "complex64"))),
        _region(t=(_T, np.ones((2, NX - 1), "float32"))),
    ]
    for ds in cases:
        session = repo.writable_session("main")
        with pytest.raises(InvalidInputError, match="'t'"):
            to_icechunk(ds, session, append_dim="time")
        assert not session.has_uncommitted_changes
        assert _files(root) == before


@dataclass(frozen=True)
class _Altered:
    """A source whose loaded data is altered (as a source that changed would be)."""

    inner: SyntheticWeatherSource
    alter: Callable[[xr.Dataset], xr.Dataset]

    @property
    def dim(self) -> str:
        return self.inner.dim

    def describe(self) -> str:
        return self.inner.describe()

    def coordinate(self) -> np.ndarray:
        return self.inner.coordinate()

    def load(self, start: int, stop: int) -> xr.Dataset:
        return self.alter(self.inner.load(start, stop))


@pytest.mark.reliability(
    category="bad input",
    fault="pipeline write_region from a source whose dtype or grid changed since the "
    "dataset was initialized",
    outcome="InvalidInputError on the worker naming the variable; no chunk written",
)
def test_write_region_refuses_changed_source(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(root)))
    source = SyntheticWeatherSource(ntime=8, nlat=4, nlon=6)
    initialize_dataset(repo, source, chunks={"time": 2})
    session = repo.writable_session("main")
    regions = extend_dataset(session, source, 0, 8, chunks_per_region=2)
    assert regions
    before = _files(root)
    changed = {
        "dtype": (lambda ds: ds.assign(t2m=ds["t2m"].astype("complex64")), "'t2m'"),
        "grid": (lambda ds: ds.isel(lon=slice(0, 5)), "'lon'"),
    }
    for alter, word in changed.values():
        fork = session.fork()
        with pytest.raises(InvalidInputError, match=word):
            write_region(fork, _Altered(source, alter), regions[0])
        assert _files(root) == before
    # the unaltered source writes and commits
    forks = [write_region(session.fork(), source, r) for r in regions]
    session.merge(*forks)
    session.commit("ingest")
    back = xr.open_zarr(repo.readonly_session("main").store, consolidated=False)
    np.testing.assert_array_equal(back["t2m"].values, source.load(0, 8)["t2m"].values)


@pytest.mark.reliability(
    category="bad input",
    fault="Session.set_chunk with chunk indices that are negative, outside the grid, of the "
    "wrong rank, booleans, floats or not a tuple; zero-length payloads; store deletes of chunk "
    "keys outside the grid, of the wrong rank or negative",
    outcome="InvalidInputError (invalid-chunk-index / zero-length-chunk); deletes outside the "
    "grid are no-ops (as icechunk 2.3), a negative one InvalidInputError; no object written",
)
@pytest.mark.parametrize("spec", [1, 2])
def test_bad_chunk_indices_write_nothing(tmp_path: Path, spec: int) -> None:
    root = tmp_path / "repo"
    repo = icechunk.Repository.create(
        icechunk.local_filesystem_storage(str(root)), spec_version=spec
    )
    session = repo.writable_session("main")
    zarr.create_array(
        session.store,
        name="a",
        shape=(32, 32),
        chunks=(16, 16),
        dtype="int32",
        compressors=None,
        fill_value=0,
    )
    session.commit("c0")
    before = _files(root)
    session = repo.writable_session("main")
    # an encoded chunk of 1 kB: above the inline threshold, so it would be uploaded at once
    payload = np.full((16, 16), 3, dtype="<i4").tobytes()
    bad: list[object] = [(-1, 0), (2, 0), (0, 2**40), (0,), (0, 0, 0), (True, 0), (0.0, 1), [0, 0]]
    for coords in bad:
        with pytest.raises(InvalidInputError) as info:
            sync(session.set_chunk("/a", coords, payload))  # type: ignore[arg-type]
        assert info.value.kind == ErrorKind.INVALID_CHUNK_INDEX, coords
    with pytest.raises(InvalidInputError) as info:
        sync(session.set_chunk("/a", (0, 0), b""))
    assert info.value.kind == ErrorKind.ZERO_LENGTH_CHUNK
    # deleting chunks outside the grid (as zarr does after shrinking an array) or of the wrong
    # rank is a no-op, as in icechunk 2.3; a negative index is not a chunk key at all
    for key in ("a/c/9/9", "a/c/0", "a/c/0/0/0"):
        sync(session.store.delete(key))
    with pytest.raises(InvalidInputError):
        sync(session.store.delete("a/c/-1/0"))
    assert not session.has_uncommitted_changes
    assert _files(root) == before
    sync(session.set_chunk("/a", (1, 1), payload))  # numpy integers are fine too
    sync(session.set_chunk("/a", (np.int64(0), np.int32(1)), payload))  # type: ignore[arg-type]
    session.commit("good chunks")
    back = zarr.open_array(repo.readonly_session("main").store, path="a", mode="r")
    np.testing.assert_array_equal(back[16:, 16:], 3)
    np.testing.assert_array_equal(back[:16, 16:], 3)
    np.testing.assert_array_equal(back[:16, :16], 0)


@pytest.mark.reliability(
    category="bad input",
    fault="commit metadata with non-string keys (which JSON would silently turn into strings), "
    "numpy scalars, NaN/inf, bytes, objects",
    outcome="InvalidInputError (invalid-metadata) naming the key; nothing written; the "
    "session can still commit",
)
def test_commit_metadata_keys_must_be_strings(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(root)))
    session = repo.writable_session("main")
    zarr.create_array(session.store, name="a", shape=(4,), chunks=(2,), dtype="int32")[:] = 1
    before = _files(root)
    bad: list[dict[Any, Any]] = [
        {1: "x"},
        {"nested": {True: 1}},
        {"list": [{None: 1}]},
        {"x": np.int64(1)},
        {"x": float("nan")},
        {"x": b"raw"},
    ]
    for metadata in bad:
        with pytest.raises(InvalidInputError) as info:
            session.commit("bad", metadata=metadata)
        assert info.value.kind == ErrorKind.INVALID_METADATA
        assert _files(root) == before  # the chunks are small: inlined, not yet written
    assert session.has_uncommitted_changes
    snapshot_id = session.commit("good", metadata={"k": {"n": [1, 2]}})
    assert repo.lookup_snapshot(snapshot_id).metadata["k"] == {"n": [1, 2]}
