"""Manifest preloading at session open, counted in storage reads.

Each repository is written once; a fresh ``Repository.open`` over a :class:`FaultyStorage` wrapper
then records every read the session makes. The process-wide object cache is emptied before each
open, so that manifests cached by an earlier open (or by the writer) are not counted out.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest
import zarr

import icechunk
from icechunk import ManifestPreloadCondition as Cond
from icechunk import ManifestPreloadConfig
from icechunk.cache import default_cache
from icechunk.storage.base import ByteRange
from icechunk.testing.faults import FaultyStorage, key_startswith
from icechunk.testing.preload import wait_for_manifest_preloads


def _write(path: Path, arrays: dict[str, int]) -> None:
    """One commit with an int8 array of ``n`` one-element chunks (``n`` refs) per name."""
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(path)))
    session = repo.writable_session("main")
    root = zarr.group(session.store)
    for name, n in arrays.items():
        root.create_array(name, shape=(n,), chunks=(1,), dtype="i1", fill_value=0)[:] = 1
    session.commit("arrays")


def _open(path: Path, **faults: object) -> FaultyStorage:
    default_cache.clear()
    return FaultyStorage(icechunk.local_filesystem_storage(str(path)), seed=0, **faults)  # type: ignore[arg-type]


def _repo(storage: FaultyStorage, preload: ManifestPreloadConfig | None) -> icechunk.Repository:
    config = icechunk.RepositoryConfig.default()
    if preload is not None:
        config.manifest = icechunk.ManifestConfig(preload=preload)
    return icechunk.Repository.open(storage, config=config)


def _manifest_reads(storage: FaultyStorage) -> int:
    return sum(1 for c in storage.stats.calls if c.op == "get" and c.key.startswith("manifests/"))


def _preloaded(path: Path, preload: ManifestPreloadConfig | None, *, writable: bool = False) -> int:
    storage = _open(path)
    repo = _repo(storage, preload)
    if writable:
        repo.writable_session("main")
    else:
        repo.readonly_session("main")
    wait_for_manifest_preloads()
    return _manifest_reads(storage)


COORDS = {"time": 5, "lat": 3, "lon": 4, "temperature": 6, "depth": 2}


@pytest.mark.parametrize("writable", [False, True])
def test_default_preloads_coordinate_arrays_at_open_and_not_again(
    tmp_path: Path, writable: bool
) -> None:
    _write(tmp_path, COORDS)
    storage = _open(tmp_path)
    repo = _repo(storage, None)
    session = repo.writable_session("main") if writable else repo.readonly_session("main")
    wait_for_manifest_preloads()
    # time, lat, lon, depth: coordinate names; temperature is not
    assert _manifest_reads(storage) == 4
    root = zarr.open_group(session.store, mode="r")
    for name in ("time", "lat", "lon", "depth"):
        np.testing.assert_array_equal(root[name][:], 1)  # type: ignore[index]
    assert _manifest_reads(storage) == 4, "a preloaded manifest was fetched again"
    np.testing.assert_array_equal(root["temperature"][:], 1)  # type: ignore[index]
    assert _manifest_reads(storage) == 5, "a non-matching array's manifest is fetched on use"


def test_default_skips_coordinates_with_more_than_1000_refs(tmp_path: Path) -> None:
    _write(tmp_path, {"time": 1000, "lat": 1001})
    storage = _open(tmp_path)
    _repo(storage, None).readonly_session("main")
    wait_for_manifest_preloads()
    keys = [c.key for c in storage.stats.calls if c.key.startswith("manifests/")]
    assert len(keys) == 1
    assert icechunk.RepositoryConfig.default().manifest is None  # the built-in default applied


def test_preload_can_be_disabled(tmp_path: Path) -> None:
    _write(tmp_path, COORDS)
    assert _preloaded(tmp_path, ManifestPreloadConfig(preload_if=Cond.false())) == 0
    assert _preloaded(tmp_path, ManifestPreloadConfig(max_total_refs=0)) == 0


def test_conditions_select_by_path_name_and_size(tmp_path: Path) -> None:
    _write(tmp_path, {"a": 2, "b": 4, "c": 1000, "g/d": 3})
    assert _preloaded(tmp_path, ManifestPreloadConfig(preload_if=Cond.true())) == 4
    assert _preloaded(tmp_path, ManifestPreloadConfig(preload_if=Cond.path_matches("^/g/"))) == 1
    assert _preloaded(tmp_path, ManifestPreloadConfig(preload_if=Cond.name_matches("^[ab]$"))) == 2
    # from inclusive, to exclusive: b (4) and d (3), not a (2) nor c (1000)
    sized = ManifestPreloadConfig(preload_if=Cond.num_refs(3, 1000))
    assert _preloaded(tmp_path, sized) == 2


def test_max_total_refs_skips_manifests_that_would_exceed_it(tmp_path: Path) -> None:
    # path order a(2000) b(4) c(1000) d(3): a and c never fit in 10, b + d do
    _write(tmp_path, {"a": 2000, "b": 4, "c": 1000, "d": 3})
    capped = ManifestPreloadConfig(max_total_refs=10, preload_if=Cond.true())
    storage = _open(tmp_path)
    session = _repo(storage, capped).readonly_session("main")
    wait_for_manifest_preloads()
    assert _manifest_reads(storage) == 2
    root = zarr.open_group(session.store, mode="r")
    root["b"][:]  # type: ignore[index]
    root["d"][:]  # type: ignore[index]
    assert _manifest_reads(storage) == 2
    assert (
        _preloaded(tmp_path, ManifestPreloadConfig(max_total_refs=6, preload_if=Cond.true())) == 1
    )


def test_max_arrays_to_scan_counts_arrays_in_path_order(tmp_path: Path) -> None:
    _write(tmp_path, {f"v{i:02d}": 1 for i in range(8)})
    some = ManifestPreloadConfig(max_arrays_to_scan=3, preload_if=Cond.true())
    storage = _open(tmp_path)
    _repo(storage, some).readonly_session("main")
    wait_for_manifest_preloads()
    assert _manifest_reads(storage) == 3
    # non-matching arrays count too: only v00..v02 are looked at, and v02 alone matches
    one = ManifestPreloadConfig(max_arrays_to_scan=3, preload_if=Cond.name_matches("v0[27]"))
    assert _preloaded(tmp_path, one) == 1
    # the default scans 50 arrays
    assert _preloaded(tmp_path, ManifestPreloadConfig(preload_if=Cond.true())) == 8


def test_failed_preload_does_not_fail_the_session(tmp_path: Path) -> None:
    _write(tmp_path, {"time": 3, "lat": 2})
    storage = _open(tmp_path, fail_keys=key_startswith("manifests/"))
    session = _repo(storage, None).readonly_session("main")
    wait_for_manifest_preloads()
    assert storage.stats.permanent_errors == 2
    root = zarr.open_group(session.store, mode="r")
    assert list(root["time"].shape) == [3]  # type: ignore[union-attr]
    # once storage heals, the manifest is fetched on first use
    storage.fail_keys = None
    np.testing.assert_array_equal(root["time"][:], 1)  # type: ignore[index]


class _GatedStorage(FaultyStorage):
    """Manifest reads wait for :attr:`gate` (at most 30 s) before they reach the storage."""

    def __init__(self, inner: icechunk.Storage) -> None:
        super().__init__(inner, seed=0)
        self.gate = threading.Event()
        self.manifest_reads_done = 0

    async def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        if key.startswith("manifests/"):
            await asyncio.to_thread(self.gate.wait, 30)
            data = await super().get(key, byte_range)
            self.manifest_reads_done += 1
            return data
        return await super().get(key, byte_range)


def test_session_open_does_not_wait_for_the_preload(tmp_path: Path) -> None:
    """The session is returned while its preload's manifest read is still held back."""
    _write(tmp_path, {"time": 3})
    default_cache.clear()
    storage = _GatedStorage(icechunk.local_filesystem_storage(str(tmp_path)))
    session = _repo(storage, None).readonly_session("main")
    assert storage.manifest_reads_done == 0, "opening the session waited for the preload"
    storage.gate.set()
    wait_for_manifest_preloads()
    assert storage.manifest_reads_done == 1
    root = zarr.open_group(session.store, mode="r")
    np.testing.assert_array_equal(root["time"][:], 1)  # type: ignore[index]
    assert _manifest_reads(storage) == 1


def test_first_read_during_the_preload_costs_no_second_read(tmp_path: Path) -> None:
    """A chunk read issued while the preload fetch may be in flight joins it: one read in all."""
    _write(tmp_path, {"time": 3})
    default_cache.clear()
    storage = _GatedStorage(icechunk.local_filesystem_storage(str(tmp_path)))
    session = _repo(storage, None).readonly_session("main")
    root = zarr.open_group(session.store, mode="r")
    reader = threading.Thread(target=lambda: root["time"][:])  # type: ignore[index]
    reader.start()
    storage.gate.set()
    reader.join(60)
    wait_for_manifest_preloads()
    assert _manifest_reads(storage) == 1
    assert storage.manifest_reads_done == 1
