"""Manifest splitting on commit and ``Repository.rewrite_manifests``.

The expected layouts are the ones the real Icechunk 2.3.0 writes for the same operations
(checked against it in ``tests/interop/test_splitting_interop.py``): one manifest per split
holding the array's references in that split, extents the bounding box of those references,
untouched splits keeping their manifest.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import hypothesis.strategies as st
import numpy as np
import pytest
import zarr
from hypothesis import given

import icechunk
from icechunk import (
    InvalidInputError,
    ManifestConfig,
    ManifestSplitCondition,
    ManifestSplitDimCondition,
    ManifestSplittingConfig,
    RepositoryConfig,
    SessionStateError,
)
from icechunk._sync import sync
from icechunk.format.ids import encode_id, parse_snapshot_id
from icechunk.format.model import ManifestRef, Snapshot
from icechunk.manifest_writer import MAX_CONCURRENT_MANIFEST_WRITES
from icechunk.storage.base import PutMode, VersionInfo, WriteMode
from icechunk.storage.memory import InMemoryStorage

Cond = ManifestSplitCondition
Dim = ManifestSplitDimCondition


def split_config(
    d: dict[ManifestSplitCondition, dict[ManifestSplitDimCondition, int]],
) -> RepositoryConfig:
    return RepositoryConfig(manifest=ManifestConfig(splitting=ManifestSplittingConfig.from_dict(d)))


def by_time(n: int) -> RepositoryConfig:
    return split_config({Cond.AnyArray(): {Dim.DimensionName("time"): n}})


def snapshot(repo: icechunk.Repository, snapshot_id: str) -> Snapshot:
    return sync(repo._objects.load_snapshot(parse_snapshot_id(snapshot_id)))


def manifest_refs(repo: icechunk.Repository, snapshot_id: str, path: str) -> list[ManifestRef]:
    for node in snapshot(repo, snapshot_id).nodes:
        if node.path == path:
            assert node.array is not None
            return list(node.array.manifests)
    raise AssertionError(f"no node {path}")


def layout(repo: icechunk.Repository, snapshot_id: str, path: str) -> dict[str, tuple]:
    """Manifest id -> extents of the array at ``path``."""
    return {encode_id(m.object_id): m.extents for m in manifest_refs(repo, snapshot_id, path)}


def manifest_files_on_disk(root: Path) -> set[str]:
    return set(os.listdir(root / "manifests")) if (root / "manifests").exists() else set()


def refs_per_manifest(repo: icechunk.Repository, snapshot_id: str) -> list[int]:
    return sorted(m.num_chunk_refs for m in repo.list_manifest_files(snapshot_id))


def make_repo(tmp_path: Path, spec_version: int, config: RepositoryConfig) -> icechunk.Repository:
    storage = icechunk.local_filesystem_storage(str(tmp_path / "repo"))
    return icechunk.Repository.create(storage, config=config, spec_version=spec_version)


def read(repo: icechunk.Repository, path: str, **ref: str) -> np.ndarray:
    session = repo.readonly_session(**ref) if ref else repo.readonly_session("main")
    return zarr.open_array(session.store, path=path, mode="r")[...]


# ---------------------------------------------------------------------------------------------
# layout on commit


def test_one_manifest_per_split(tmp_path: Path, spec_version: int) -> None:
    repo = make_repo(tmp_path, spec_version, by_time(3))
    session = repo.writable_session("main")
    arr = zarr.create_array(
        session.store,
        name="temp",
        shape=(10, 4),
        chunks=(1, 2),
        dtype="i4",
        fill_value=-1,
        dimension_names=("time", "x"),
    )
    data = np.arange(40, dtype="i4").reshape(10, 4)
    arr[:] = data
    snap = session.commit("write")

    extents = sorted(layout(repo, snap, "/temp").values())
    assert extents == [((0, 3), (0, 2)), ((3, 6), (0, 2)), ((6, 9), (0, 2)), ((9, 10), (0, 2))]
    listed = {m.id for m in repo.list_manifest_files(snap)}
    assert listed == set(layout(repo, snap, "/temp"))
    assert manifest_files_on_disk(tmp_path / "repo") == listed  # each written exactly once
    assert refs_per_manifest(repo, snap) == [2, 6, 6, 6]
    np.testing.assert_array_equal(read(repo, "temp"), data)


def test_append_along_time_touches_only_the_last_split(tmp_path: Path, spec_version: int) -> None:
    repo = make_repo(tmp_path, spec_version, by_time(4))
    session = repo.writable_session("main")
    arr = zarr.create_array(
        session.store,
        name="temp",
        shape=(6, 2),
        chunks=(1, 2),
        dtype="f8",
        fill_value=np.nan,
        dimension_names=("time", "x"),
    )
    arr[:] = 1.0
    first = session.commit("initial")
    before = layout(repo, first, "/temp")
    assert sorted(before.values()) == [((0, 4), (0, 1)), ((4, 6), (0, 1))]

    # grow the last split: only its manifest is rewritten (old refs + new refs)
    session = repo.writable_session("main")
    arr = zarr.open_array(session.store, path="temp", mode="a")
    arr.resize((8, 2))
    arr[6:8] = 2.0
    second = session.commit("append 2")
    after = layout(repo, second, "/temp")
    kept = {k: v for k, v in before.items() if v[0] == (0, 4)}
    assert kept.items() <= after.items()  # the first split's manifest id is unchanged
    new = set(after) - set(before)
    assert [after[k] for k in new] == [((4, 8), (0, 1))]
    assert len(manifest_files_on_disk(tmp_path / "repo")) == 3  # 2 + exactly 1 new file

    # open a new split: only the new split gets a manifest
    session = repo.writable_session("main")
    arr = zarr.open_array(session.store, path="temp", mode="a")
    arr.resize((10, 2))
    arr[8:10] = 3.0
    third = session.commit("append 2 more")
    latest = layout(repo, third, "/temp")
    assert after.items() <= latest.items()
    assert sorted(set(latest.values()) - set(after.values())) == [((8, 10), (0, 1))]
    assert len(manifest_files_on_disk(tmp_path / "repo")) == 4

    expected = np.array([1.0] * 6 + [2.0] * 2 + [3.0] * 2)[:, None].repeat(2, axis=1)
    np.testing.assert_array_equal(read(repo, "temp"), expected)
    np.testing.assert_array_equal(read(repo, "temp", snapshot_id=first), expected[:6])


def test_changing_the_config_keeps_compatible_manifests(tmp_path: Path) -> None:
    """Split 1, then split 5: manifests lying inside one new split are kept until touched."""
    any_dim = {Cond.AnyArray(): {Dim.Any(): 1}}
    repo = make_repo(tmp_path, 2, split_config(any_dim))
    session = repo.writable_session("main")
    arr = zarr.create_array(session.store, name="a", shape=(10,), chunks=(1,), dtype="i8")
    arr[:5] = np.arange(10, 15)
    first = session.commit("5 chunks")
    assert refs_per_manifest(repo, first) == [1] * 5

    repo5 = repo.reopen(config=split_config({Cond.AnyArray(): {Dim.Any(): 5}}))
    session = repo5.writable_session("main")
    zarr.open_array(session.store, path="a", mode="a")[6:9] = [1, 2, 3]
    second = session.commit("append")
    assert refs_per_manifest(repo5, second) == [1, 1, 1, 1, 1, 3]
    assert set(layout(repo, first, "/a")) <= set(layout(repo, second, "/a"))

    session = repo5.writable_session("main")
    zarr.open_array(session.store, path="a", mode="a")[3:7] = [1, 2, 3, 4]
    third = session.commit("across the split boundary")
    assert sorted(layout(repo5, third, "/a").values()) == [((0, 5),), ((5, 9),)]
    assert refs_per_manifest(repo5, third) == [4, 5]
    np.testing.assert_array_equal(read(repo5, "a"), [10, 11, 12, 1, 2, 3, 4, 2, 3, 0])


def test_incompatible_manifest_is_redistributed_when_touched(tmp_path: Path) -> None:
    """An unsplit manifest meeting a changed split is spread over all the new splits."""
    repo = make_repo(tmp_path, 2, RepositoryConfig())
    session = repo.writable_session("main")
    arr = zarr.create_array(
        session.store,
        name="a",
        shape=(10, 4),
        chunks=(1, 2),
        dtype="i4",
        dimension_names=("time", "x"),
    )
    arr[:] = 1
    first = session.commit("unsplit")
    assert list(layout(repo, first, "/a").values()) == [((0, 10), (0, 2))]

    split = repo.reopen(config=split_config({Cond.AnyArray(): {Dim.Axis(0): 5, Dim.Axis(1): 1}}))
    session = split.writable_session("main")
    zarr.open_array(session.store, path="a", mode="a")[7, 0] = 5
    second = session.commit("one chunk")
    assert refs_per_manifest(split, second) == [5, 5, 5, 5]
    expected = np.ones((10, 4), dtype="i4")
    expected[7, 0] = 5
    np.testing.assert_array_equal(read(split, "a"), expected)


def test_untouched_arrays_keep_their_manifests(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, 2, by_time(2))
    session = repo.writable_session("main")
    root = zarr.open_group(session.store)
    for name in ("a", "b"):
        root.create_array(name, shape=(4,), chunks=(1,), dtype="i4", dimension_names=("time",))[
            :
        ] = 7
    first = session.commit("two arrays")
    session = repo.writable_session("main")
    zarr.open_array(session.store, path="b", mode="a")[0] = 1
    second = session.commit("touch b")
    assert layout(repo, second, "/a") == layout(repo, first, "/a")
    assert layout(repo, second, "/b") != layout(repo, first, "/b")
    changed = set(layout(repo, second, "/b")) - set(layout(repo, first, "/b"))
    assert [layout(repo, second, "/b")[k] for k in changed] == [((0, 2),)]


def test_shrinking_resize_drops_refs_and_empty_splits(tmp_path: Path, spec_version: int) -> None:
    repo = make_repo(tmp_path, spec_version, by_time(2))
    session = repo.writable_session("main")
    arr = zarr.create_array(
        session.store, name="a", shape=(7,), chunks=(1,), dtype="i4", dimension_names=("time",)
    )
    arr[:] = np.arange(1, 8)
    first = session.commit("7 chunks")
    assert sorted(layout(repo, first, "/a").values()) == [
        ((0, 2),),
        ((2, 4),),
        ((4, 6),),
        ((6, 7),),
    ]
    session = repo.writable_session("main")
    arr = zarr.open_array(session.store, path="a", mode="a")
    arr.resize((3,))
    second = session.commit("shrink")
    now = layout(repo, second, "/a")
    assert sorted(now.values()) == [((0, 2),), ((2, 3),)]
    assert {k: v for k, v in layout(repo, first, "/a").items() if v == ((0, 2),)}.items() <= (
        now.items()
    )
    session = repo.writable_session("main")
    arr = zarr.open_array(session.store, path="a", mode="a")
    arr.resize((7,))
    session.commit("grow back")
    np.testing.assert_array_equal(read(repo, "a"), [1, 2, 3, 0, 0, 0, 0])


def test_scalar_and_unnamed_arrays(tmp_path: Path, spec_version: int) -> None:
    repo = make_repo(
        tmp_path,
        spec_version,
        split_config({Cond.AnyArray(): {Dim.DimensionName("time"): 1, Dim.Axis(1): 1}}),
    )
    session = repo.writable_session("main")
    root = zarr.open_group(session.store)
    root.create_array("scalar", shape=(), dtype="i4")[()] = 3
    root.create_array("unnamed", shape=(3, 2), chunks=(1, 1), dtype="i4")[:] = 4
    snap = session.commit("write")
    assert list(layout(repo, snap, "/scalar").values()) == [()]
    # no dimension names: DimensionName never matches, Axis(1) still splits
    assert sorted(layout(repo, snap, "/unnamed").values()) == [((0, 3), (0, 1)), ((0, 3), (1, 2))]
    assert read(repo, "scalar") == 3
    np.testing.assert_array_equal(read(repo, "unnamed"), np.full((3, 2), 4))


def test_deleting_every_chunk_of_a_split_removes_its_manifest(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, 2, by_time(2))
    session = repo.writable_session("main")
    arr = zarr.create_array(
        session.store,
        name="a",
        shape=(4,),
        chunks=(1,),
        dtype="i4",
        fill_value=0,
        dimension_names=("time",),
        config={"write_empty_chunks": False},
    )
    arr[:] = 5
    session.commit("write")
    session = repo.writable_session("main")
    zarr.open_array(session.store, path="a", mode="a")[2:] = 0  # fill value: chunks deleted
    snap = session.commit("delete a split")
    assert list(layout(repo, snap, "/a").values()) == [((0, 2),)]
    np.testing.assert_array_equal(read(repo, "a"), [5, 5, 0, 0])


class CountingStorage(InMemoryStorage):
    """The real in-memory storage, recording how many manifest uploads overlap in time."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.max_in_flight = 0
        self.manifest_puts: list[str] = []

    async def put(self, key: str, data: bytes, mode: PutMode = WriteMode.OVERWRITE) -> VersionInfo:
        if not key.startswith("manifests/"):
            return await super().put(key, data, mode)
        self.manifest_puts.append(key)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)  # yield: lets the other uploads of the commit start
            return await super().put(key, data, mode)
        finally:
            self.in_flight -= 1


def test_manifests_are_written_concurrently_bounded_and_once() -> None:
    storage = CountingStorage()
    repo = icechunk.Repository.create(storage, config=by_time(1))
    session = repo.writable_session("main")
    root = zarr.open_group(session.store)
    for name in ("a", "b"):
        root.create_array(name, shape=(40,), chunks=(1,), dtype="i4", dimension_names=("time",))[
            :
        ] = 1
    snap = session.commit("80 splits")
    assert len(storage.manifest_puts) == 80
    assert len(set(storage.manifest_puts)) == 80  # each manifest stored once
    assert {f"manifests/{m.id}" for m in repo.list_manifest_files(snap)} == set(
        storage.manifest_puts
    )
    assert 1 < storage.max_in_flight <= MAX_CONCURRENT_MANIFEST_WRITES


# ---------------------------------------------------------------------------------------------
# configuration


def test_split_sizes_for_conditions() -> None:
    temp_in_a = Cond.path_matches("^/a/") & Cond.name_matches("^temp$")
    config = ManifestSplittingConfig.from_dict(
        {
            temp_in_a: {Dim.DimensionName("time"): 2},
            Cond.name_matches("salt") | Cond.path_matches("wind"): {
                Dim.Axis(1): 3,
                Dim.Any(): 4,
            },
            Cond.AnyArray(): {Dim.Any(): 5},
        }
    )
    names = ("time", "y", "x")
    assert config.split_sizes_for("/a/temp", names, 3) == (2, None, None)
    assert config.split_sizes_for("/b/temp", names, 3) == (5, 5, 5)  # & needs both
    assert config.split_sizes_for("/b/salt", names, 3) == (4, 3, 4)
    assert config.split_sizes_for("/wind/u", None, 3) == (4, 3, 4)
    assert config.split_sizes_for("/a/temp", None, 3) == (None, None, None)  # no names
    first_wins = ManifestSplittingConfig.from_dict(
        {Cond.AnyArray(): {Dim.Any(): 1, Dim.Axis(0): 9}}
    )
    assert first_wins.split_sizes_for("/x", None, 2) == (1, 1)


def test_conditions_end_to_end(tmp_path: Path) -> None:
    config = split_config(
        {
            Cond.path_matches("^/a/") & Cond.name_matches("^temp$"): {Dim.DimensionName("^t"): 2},
            Cond.name_matches("salt") | Cond.name_matches("wind"): {Dim.Axis(1): 1},
        }
    )
    repo = make_repo(tmp_path, 2, config)
    session = repo.writable_session("main")
    root = zarr.open_group(session.store)
    for path in ("a/temp", "b/temp", "a/salt", "b/wind"):
        root.create_array(
            path, shape=(4, 2), chunks=(1, 1), dtype="i4", dimension_names=("time", "x")
        )[:] = 1
    snap = session.commit("four arrays")
    assert len(layout(repo, snap, "/a/temp")) == 2  # time split by 2
    assert len(layout(repo, snap, "/b/temp")) == 1  # no condition matches
    assert sorted(layout(repo, snap, "/a/salt").values()) == [((0, 4), (0, 1)), ((0, 4), (1, 2))]
    assert len(layout(repo, snap, "/b/wind")) == 2


@pytest.mark.parametrize("size", [0, -1, 2**32])
def test_bad_split_size_is_refused(size: int) -> None:
    with pytest.raises(InvalidInputError, match="split size"):
        ManifestSplittingConfig.from_dict({Cond.AnyArray(): {Dim.Any(): size}})


def test_non_integer_split_size_is_refused() -> None:
    with pytest.raises(TypeError, match="must be an int"):
        ManifestSplittingConfig.from_dict({Cond.AnyArray(): {Dim.Any(): 1.5}})  # type: ignore[dict-item]


def test_config_json_matches_the_real_shape() -> None:
    config = ManifestSplittingConfig.from_dict(
        {
            (Cond.path_matches("arr") & Cond.name_matches("a.*")) | Cond.AnyArray(): {
                Dim.DimensionName("ti.*"): 5,
                Dim.Axis(1): 1,
                Dim.Any(): 7,
            }
        }
    )
    assert config.to_json() == {
        "split_sizes": [
            [
                {
                    "or": [
                        {
                            "and": [
                                {"path_matches": {"regex": "arr"}},
                                {"name_matches": {"regex": "a.*"}},
                            ]
                        },
                        "any_array",
                    ]
                },
                [
                    {"condition": {"DimensionName": "ti.*"}, "num_chunks": 5},
                    {"condition": {"Axis": 1}, "num_chunks": 1},
                    {"condition": "Any", "num_chunks": 7},
                ],
            ]
        ]
    }


# ---------------------------------------------------------------------------------------------
# rewrite_manifests


def _unsplit_repo(tmp_path: Path, spec_version: int) -> tuple[icechunk.Repository, str, np.ndarray]:
    repo = make_repo(tmp_path, spec_version, RepositoryConfig())
    session = repo.writable_session("main")
    arr = zarr.create_array(
        session.store,
        name="temp",
        shape=(9, 4),
        chunks=(1, 2),
        dtype="i4",
        dimension_names=("time", "x"),
    )
    data = np.arange(36, dtype="i4").reshape(9, 4)
    arr[:] = data
    zarr.create_array(session.store, name="other", shape=(3,), chunks=(1,), dtype="i4")[:] = 2
    return repo, session.commit("unsplit"), data


def test_rewrite_manifests_changes_layout_not_data(tmp_path: Path, spec_version: int) -> None:
    repo, before, data = _unsplit_repo(tmp_path, spec_version)
    assert refs_per_manifest(repo, before) == [3, 18]
    split = repo.reopen(config=by_time(4))
    split.set_default_commit_metadata({"who": "me"})
    after = split.rewrite_manifests("rewrite", branch="main", metadata={"why": "faster"})

    assert sorted(layout(split, after, "/temp").values()) == [
        ((0, 4), (0, 2)),
        ((4, 8), (0, 2)),
        ((8, 9), (0, 2)),
    ]
    assert refs_per_manifest(split, after) == [2, 3, 8, 8]  # "other": no time dimension
    np.testing.assert_array_equal(read(split, "temp"), data)
    np.testing.assert_array_equal(read(split, "temp", snapshot_id=before), data)  # history kept
    info = split.lookup_snapshot(after)
    assert info.parent_id == before
    assert info.message == "rewrite"
    assert info.metadata == {
        "who": "me",
        "why": "faster",
        "__icechunk": {"splitting_config": by_time(4).splitting.to_json()},  # type: ignore[union-attr]
    }
    assert [s.message for s in split.ancestry(branch="main")][:2] == ["rewrite", "unsplit"]
    diff = split.diff(from_snapshot_id=before, to_snapshot_id=after)
    assert not diff.updated_chunks and not diff.updated_arrays and not diff.new_arrays


def test_rewrite_manifests_without_config_records_the_default(tmp_path: Path) -> None:
    repo, before, data = _unsplit_repo(tmp_path, 2)
    after = repo.rewrite_manifests("same layout", branch="main")
    assert refs_per_manifest(repo, after) == [3, 18]
    assert set(layout(repo, after, "/temp")).isdisjoint(layout(repo, before, "/temp"))
    assert repo.lookup_snapshot(after).metadata == {
        "__icechunk": {
            "splitting_config": {
                "split_sizes": [
                    [
                        {"path_matches": {"regex": ".*"}},
                        [{"condition": "Any", "num_chunks": 2**32 - 1}],
                    ]
                ]
            }
        }
    }
    np.testing.assert_array_equal(read(repo, "temp"), data)


def test_rewrite_manifests_amend(tmp_path: Path) -> None:
    repo, _, data = _unsplit_repo(tmp_path, 2)
    split = repo.reopen(config=by_time(3))
    after = split.rewrite_manifests("amended", branch="main", commit_method="amend")
    assert [s.message for s in split.ancestry(branch="main")] == [
        "amended",
        "Repository initialized",
    ]
    assert len(layout(split, after, "/temp")) == 3
    np.testing.assert_array_equal(read(split, "temp"), data)


def test_rewrite_manifests_amend_refused_on_spec1(tmp_path: Path) -> None:
    repo, before, _ = _unsplit_repo(tmp_path, 1)
    with pytest.raises(SessionStateError, match="amend"):
        repo.rewrite_manifests("x", branch="main", commit_method="amend")
    assert repo.lookup_branch("main") == before


def test_rewrite_manifests_bad_commit_method(tmp_path: Path) -> None:
    repo, before, _ = _unsplit_repo(tmp_path, 2)
    with pytest.raises(InvalidInputError, match="Invalid commit method"):
        repo.rewrite_manifests("x", branch="main", commit_method="squash")
    assert repo.lookup_branch("main") == before


# ---------------------------------------------------------------------------------------------
# property: reads equal a numpy model whatever the split sizes


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, object]:
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 7)) for _ in range(ndim))
    chunks = tuple(draw(st.integers(1, max(1, s))) for s in shape)
    sizes = tuple(draw(st.one_of(st.none(), st.integers(1, 4))) for _ in range(ndim))
    writes = []
    for _ in range(draw(st.integers(1, 4))):
        region = []
        for s in shape:
            a = draw(st.integers(0, s - 1))
            b = draw(st.integers(a + 1, s))
            region.append((a, b))
        writes.append((tuple(region), draw(st.integers(-3, 3)), draw(st.booleans())))
    return {"shape": shape, "chunks": chunks, "sizes": sizes, "writes": writes}


@given(scenario=scenarios(), rewrite_size=st.integers(1, 3))
def test_split_reads_match_a_numpy_model(scenario: dict[str, object], rewrite_size: int) -> None:
    shape, chunks, sizes = scenario["shape"], scenario["chunks"], scenario["sizes"]
    assert isinstance(shape, tuple) and isinstance(chunks, tuple) and isinstance(sizes, tuple)
    dims = {Dim.Axis(i): n for i, n in enumerate(sizes) if n is not None}
    config = split_config({Cond.AnyArray(): dims}) if dims else RepositoryConfig()
    repo = icechunk.Repository.create(icechunk.in_memory_storage(), config=config)
    session = repo.writable_session("main")
    arr = zarr.create_array(
        session.store,
        name="a",
        shape=shape,
        chunks=chunks,
        dtype="i2",
        fill_value=0,
        config={"write_empty_chunks": False},
    )
    model = np.zeros(shape, dtype="i2")
    for region, value, commit in scenario["writes"]:  # type: ignore[attr-defined]
        index = tuple(slice(a, b) for a, b in region)
        arr[index] = value
        model[index] = value
        if commit:
            session.commit("w")
            session = repo.writable_session("main")
            arr = zarr.open_array(session.store, path="a", mode="a")
    if session.has_uncommitted_changes:
        session.commit("last")
    snap = repo.lookup_branch("main")
    np.testing.assert_array_equal(read(repo, "a"), model)
    _check_layout(repo, snap, sizes, np.count_nonzero(_chunk_any(model, chunks)))

    rewritten = repo.reopen(config=split_config({Cond.AnyArray(): {Dim.Any(): rewrite_size}}))
    after = rewritten.rewrite_manifests("rewrite", branch="main")
    np.testing.assert_array_equal(read(rewritten, "a"), model)
    _check_layout(
        rewritten, after, (rewrite_size,) * len(shape), np.count_nonzero(_chunk_any(model, chunks))
    )


def _chunk_any(model: np.ndarray, chunks: tuple[int, ...]) -> np.ndarray:
    """Per chunk: whether it holds a non-fill value (so it is stored)."""
    grid = tuple(-(-s // c) for s, c in zip(model.shape, chunks, strict=True))
    out = np.zeros(grid, dtype=bool)
    for idx in np.ndindex(*grid):
        block = model[tuple(slice(i * c, (i + 1) * c) for i, c in zip(idx, chunks, strict=True))]
        out[idx] = bool(np.any(block != 0))
    return out


def _check_layout(
    repo: icechunk.Repository, snap: str, sizes: tuple[int | None, ...], stored_chunks: int
) -> None:
    """Extents are disjoint, each inside one split, and the refs add up to the stored chunks."""
    refs = manifest_refs(repo, snap, "/a")
    files = {m.id: m.num_chunk_refs for m in repo.list_manifest_files(snap)}
    assert sum(files[encode_id(m.object_id)] for m in refs) == stored_chunks
    for m in refs:
        for (lo, hi), size in zip(m.extents, sizes, strict=True):
            assert lo < hi
            if size is not None:
                assert lo // size == (hi - 1) // size, (m.extents, sizes)
    for i, m in enumerate(refs):
        for other in refs[i + 1 :]:
            overlap = all(
                a < d and c < b for (a, b), (c, d) in zip(m.extents, other.extents, strict=True)
            )
            assert not overlap, (m.extents, other.extents)
