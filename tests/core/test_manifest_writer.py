"""``icechunk._core.manifest_writer``: split boundaries, extents, and rewriting only what changed."""

from __future__ import annotations

import numpy as np

import icechunk as ic
from icechunk import ManifestSplitCondition, ManifestSplitDimCondition, ManifestSplittingConfig
from icechunk._core.chunk_refs import payload_at, refs_from_payloads
from icechunk._core.manifest_writer import (
    ArrayManifestJob,
    ManifestWriter,
    extents_of,
    partition_refs,
    split_keys,
    unique_rows,
)
from icechunk._core.objects import RepoObjects
from icechunk._core.payloads import InlinePayload
from icechunk._sync import sync
from icechunk.format.ids import parse_snapshot_id
from icechunk.format.model import ManifestRef

NODE = b"\x42" * 8


def test_split_keys_are_fixed_multiples_from_chunk_zero() -> None:
    coords = np.array([[0, 0], [3, 9], [4, 0], [11, 100]], dtype=np.uint32)
    assert split_keys(coords, (4, None)).tolist() == [[0, 0], [0, 0], [1, 0], [2, 0]]
    assert split_keys(coords, (4, 10)).tolist() == [[0, 0], [0, 0], [1, 0], [2, 10]]


def test_partition_and_extents() -> None:
    refs = refs_from_payloads([((i, j), InlinePayload(b"x")) for i in range(6) for j in (0, 5)], 2)
    parts = partition_refs(refs, (4, None))
    assert [len(p) for p in parts] == [8, 4]
    assert [extents_of(p) for p in parts] == [((0, 4), (0, 6)), ((4, 6), (0, 6))]
    assert [len(p) for p in partition_refs(refs, (None, None))] == [12]  # unsplit
    assert partition_refs(refs_from_payloads([], 2), (4, None)) == []


def test_unique_rows_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 5, size=(200, 3)).astype(np.int64)
    assert np.array_equal(unique_rows(keys), np.unique(keys, axis=0))
    huge = np.array([[2**40, 0], [0, 2**40], [2**40, 0]], dtype=np.int64)  # fallback path
    assert unique_rows(huge).tolist() == [[0, 2**40], [2**40, 0]]


def _writer() -> tuple[ManifestWriter, RepoObjects]:
    repo = ic.Repository.create(ic.in_memory_storage())
    objects = repo._objects
    base = objects.tree_for(
        sync(objects.load_snapshot(parse_snapshot_id(repo.lookup_branch("main"))))
    )
    splitting = ManifestSplittingConfig.from_dict(
        {ManifestSplitCondition.AnyArray(): {ManifestSplitDimCondition.DimensionName("time"): 4}}
    )
    return ManifestWriter(objects, base, splitting), objects


def _job(
    changes: dict[tuple[int, ...], InlinePayload | None], base_refs: tuple[ManifestRef, ...] = ()
) -> ArrayManifestJob:
    return ArrayManifestJob(NODE, "/x", (10,), ("time",), base_refs, changes)


def test_one_manifest_per_split_and_only_dirty_splits_are_rewritten() -> None:
    writer, objects = _writer()
    assert writer.split_sizes(_job({})) == (4,)
    (first,) = sync(
        writer.write_arrays([_job({(i,): InlinePayload(bytes([i])) for i in range(10)})])
    )
    assert [m.extents for m in first] == [((0, 4),), ((4, 8),), ((8, 10),)]
    assert set(writer.new_manifests) == {m.object_id for m in first}

    (second,) = sync(writer.write_arrays([_job({(5,): InlinePayload(b"new")}, first)]))
    by_extent = {m.extents: m.object_id for m in second}
    assert by_extent[((0, 4),)] == first[0].object_id  # untouched splits keep their manifest
    assert by_extent[((8, 10),)] == first[2].object_id
    assert by_extent[((4, 8),)] != first[1].object_id
    view = sync(objects.manifest_view(by_extent[((4, 8),)]))
    (array,) = view.decode().arrays
    assert array.refs.coords[:, 0].tolist() == [4, 5, 6, 7]
    assert payload_at(array.refs, 1) == InlinePayload(b"new")


def test_deleting_every_chunk_of_a_split_drops_its_manifest() -> None:
    writer, _ = _writer()
    (first,) = sync(writer.write_arrays([_job({(i,): InlinePayload(b"x") for i in range(10)})]))
    (second,) = sync(writer.write_arrays([_job({(8,): None, (9,): None}, first)]))
    assert [m.extents for m in second] == [((0, 4),), ((4, 8),)]


def test_unsplit_writer_writes_one_manifest_with_the_bounding_box() -> None:
    repo = ic.Repository.create(ic.in_memory_storage())
    objects = repo._objects
    base = objects.tree_for(
        sync(objects.load_snapshot(parse_snapshot_id(repo.lookup_branch("main"))))
    )
    writer = ManifestWriter(objects, base, None)
    (refs,) = sync(
        writer.write_arrays([_job({(2,): InlinePayload(b"a"), (7,): InlinePayload(b"b")})])
    )
    assert [m.extents for m in refs] == [((2, 8),)]
