"""Builders, hypothesis strategies and comparisons shared by the format tests."""

from __future__ import annotations

import dataclasses
import os
import string

import numpy as np
from hypothesis import strategies as st

from icechunk.format.header import HEADER_SIZE, decompress
from icechunk.format.model import (
    ArrayData,
    ArrayManifest,
    ChunkKind,
    ChunkRefs,
    DimensionShape,
    Manifest,
    ManifestFileInfo,
    ManifestRef,
    NodeSnapshot,
    Snapshot,
)


def rid(n: int = 12) -> bytes:
    return os.urandom(n)


def payload(data: bytes) -> bytes:
    """The decompressed flatbuffer of an encoded object."""
    return decompress(data[HEADER_SIZE:], "test")


# ---------------------------------------------------------------------------------------------
# JSON values

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=["Cs"]), max_size=20)
)
flex_keys = st.text(
    alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]), max_size=8
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(flex_keys, inner, max_size=4),
    max_leaves=12,
)
flex_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(flex_keys, inner, max_size=4),
    max_leaves=12,
)
metadata_dicts = st.dictionaries(flex_keys, flex_values, max_size=4)


# ---------------------------------------------------------------------------------------------
# chunk refs


def native_refs(coords: np.ndarray, seed: int = 0) -> ChunkRefs:
    n = len(coords)
    rng = np.random.default_rng(seed)
    return ChunkRefs(
        coords=np.asarray(coords, dtype=np.uint32).reshape(n, -1 if n else 0),
        kind=np.full(n, ChunkKind.NATIVE, dtype=np.uint8),
        chunk_id=rng.integers(0, 256, (n, 12), dtype=np.uint8),
        offset=np.zeros(n, dtype=np.uint64),
        length=rng.integers(1, 1 << 40, n, dtype=np.uint64),
    )


@st.composite
def chunk_refs(
    draw: st.DrawFn, max_refs: int = 30, kinds: tuple[int, ...] = (1, 2, 3)
) -> ChunkRefs:
    """Random refs of one array: unique coordinates, any mix of ``kinds``, unsorted."""
    ndim = draw(st.integers(0, 4))
    rows: list[tuple[int, ...]]
    if ndim == 0:
        rows = [()] * draw(st.integers(0, 1))
    else:
        coord = st.tuples(*[st.integers(0, 2**32 - 1) | st.integers(0, 5)] * ndim)
        rows = draw(st.lists(coord, max_size=max_refs, unique=True))
    n = len(rows)
    kind = np.array([draw(st.sampled_from(kinds)) for _ in range(n)], dtype=np.uint8)
    ids = np.frombuffer(draw(st.binary(min_size=12 * n, max_size=12 * n)), dtype=np.uint8)
    offsets = [draw(st.integers(0, 2**64 - 1) | st.just(0)) for _ in range(n)]
    lengths = [draw(st.integers(1, 2**64 - 1)) for _ in range(n)]
    inline: list[bytes | None] = []
    location: list[str | None] = []
    etags: list[str | None] = []
    modified = np.zeros(n, dtype=np.uint32)
    for i in range(n):
        k = int(kind[i])
        inline.append(draw(st.binary(max_size=40)) if k == ChunkKind.INLINE else None)
        if k == ChunkKind.VIRTUAL:
            location.append("s3://bucket/" + draw(st.text(max_size=20)))
            etags.append(draw(st.none() | st.text(max_size=10)))
            modified[i] = draw(st.integers(0, 2**32 - 1))
        else:
            location.append(None)
            etags.append(None)
    chunk_id = ids.reshape(n, 12).copy()
    chunk_id[kind != ChunkKind.NATIVE] = 0
    offset = np.array(offsets, dtype=np.uint64).reshape(n)
    length = np.array(lengths, dtype=np.uint64).reshape(n)
    inline_mask = kind == ChunkKind.INLINE
    offset[inline_mask] = 0
    length[inline_mask] = [len(b or b"") for b, m in zip(inline, inline_mask, strict=True) if m]
    any_virtual = bool((kind == ChunkKind.VIRTUAL).any())
    return ChunkRefs(
        coords=np.array(rows, dtype=np.uint32).reshape(n, ndim),
        kind=kind,
        chunk_id=chunk_id,
        offset=offset,
        length=length,
        inline=inline if inline_mask.any() else [],
        location=location if any_virtual else [],
        checksum_etag=etags if any_virtual else [],
        checksum_last_modified=modified if any_virtual else None,
    )


def sorted_refs(refs: ChunkRefs) -> ChunkRefs:
    """``refs`` sorted by coordinates (what a decoder returns)."""
    n, ndim = refs.coords.shape
    order = np.lexsort(refs.coords.T[::-1]) if ndim and n else np.arange(n)
    pick = order.tolist()
    mod = refs.checksum_last_modified
    return ChunkRefs(
        coords=refs.coords[order],
        kind=refs.kind[order],
        chunk_id=refs.chunk_id[order],
        offset=refs.offset[order],
        length=refs.length[order],
        inline=[refs.inline[i] for i in pick] if refs.inline else [],
        location=[refs.location[i] for i in pick] if refs.location else [],
        checksum_etag=[refs.checksum_etag[i] for i in pick] if refs.checksum_etag else [],
        checksum_last_modified=None if mod is None else mod[order],
    )


def assert_refs_equal(a: ChunkRefs, b: ChunkRefs) -> None:
    assert a.coords.shape[0] == b.coords.shape[0]
    if len(a):
        assert a.coords.shape == b.coords.shape
        np.testing.assert_array_equal(a.coords, b.coords)
    np.testing.assert_array_equal(a.kind, b.kind)
    np.testing.assert_array_equal(a.chunk_id, b.chunk_id)
    np.testing.assert_array_equal(a.offset, b.offset)
    np.testing.assert_array_equal(a.length, b.length)
    assert a.inline == b.inline
    assert a.location == b.location
    assert a.checksum_etag == b.checksum_etag
    if a.checksum_last_modified is None or b.checksum_last_modified is None:
        assert a.checksum_last_modified is None and b.checksum_last_modified is None
    else:
        np.testing.assert_array_equal(a.checksum_last_modified, b.checksum_last_modified)


def assert_manifests_equal(a: Manifest, b: Manifest) -> None:
    assert a.id == b.id
    assert a.spec_version == b.spec_version
    assert [x.node_id for x in a.arrays] == [x.node_id for x in b.arrays]
    for x, y in zip(a.arrays, b.arrays, strict=True):
        assert_refs_equal(x.refs, y.refs)


@st.composite
def manifests(draw: st.DrawFn, spec_version: int) -> Manifest:
    arrays = draw(
        st.lists(
            st.builds(ArrayManifest, st.binary(min_size=8, max_size=8), chunk_refs()),
            max_size=3,
            unique_by=lambda a: a.node_id,
        )
    )
    return Manifest(draw(st.binary(min_size=12, max_size=12)), arrays, spec_version)


# ---------------------------------------------------------------------------------------------
# snapshots

_segment = st.text(alphabet=string.ascii_letters + "-_.é0", min_size=1, max_size=5)
node_paths = st.lists(_segment, max_size=3).map(lambda parts: "/" + "/".join(parts))


@st.composite
def dimension_shapes(draw: st.DrawFn) -> DimensionShape:
    chunk = draw(st.integers(1, 2**20))
    # the format stores the number of chunks per dimension as a u32
    length = draw(st.integers(0, min(2**40, chunk * (2**32 - 1))))
    return DimensionShape(length, -(-length // chunk), chunk)


@st.composite
def array_data(draw: st.DrawFn) -> ArrayData:
    shape = tuple(draw(st.lists(dimension_shapes(), max_size=4)))
    names = draw(
        st.none()
        | st.lists(st.none() | st.text(max_size=5), min_size=len(shape), max_size=len(shape))
    )
    extents = st.tuples(*[st.tuples(st.integers(0, 10), st.integers(0, 10))] * len(shape))
    manifests_ = draw(
        st.lists(st.builds(ManifestRef, st.binary(min_size=12, max_size=12), extents), max_size=3)
    )
    return ArrayData(shape, tuple(names) if names is not None else None, tuple(manifests_))


@st.composite
def snapshots(draw: st.DrawFn, spec_version: int) -> Snapshot:
    paths = draw(st.lists(node_paths, unique=True, max_size=6))
    nodes = [
        NodeSnapshot(
            draw(st.binary(min_size=8, max_size=8)),
            path,
            draw(st.binary(max_size=60)),
            draw(st.none() | array_data()),
        )
        for path in paths
    ]
    files = draw(
        st.lists(
            st.builds(
                ManifestFileInfo,
                st.binary(min_size=12, max_size=12),
                st.integers(0, 2**64 - 1),
                st.integers(0, 2**32 - 1),
            ),
            max_size=4,
            unique_by=lambda f: f.id,
        )
    )
    return Snapshot(
        id=draw(st.binary(min_size=12, max_size=12)),
        parent_id=draw(st.none() | st.binary(min_size=12, max_size=12))
        if spec_version == 1
        else None,
        nodes=nodes,
        flushed_at=draw(st.integers(0, 2**64 - 1)),
        message=draw(st.text(max_size=30)),
        metadata=draw(metadata_dicts),
        manifest_files=files,
        spec_version=spec_version,
    )


def expected_snapshot(s: Snapshot, spec_version: int) -> Snapshot:
    """What decoding ``encode_snapshot(s, spec_version)`` gives: sorted, spec-normalised."""

    def dim(d: DimensionShape) -> DimensionShape:
        if spec_version == 2:
            return DimensionShape(d.array_length, d.num_chunks, None)
        if d.chunk_length is not None:
            return d
        chunk = (
            max(1, -(-d.array_length // d.num_chunks)) if d.num_chunks else max(1, d.array_length)
        )
        return DimensionShape(d.array_length, -(-d.array_length // chunk), chunk)

    def node(n: NodeSnapshot) -> NodeSnapshot:
        if n.array is None:
            return n
        return dataclasses.replace(
            n, array=dataclasses.replace(n.array, shape=tuple(dim(d) for d in n.array.shape))
        )

    return dataclasses.replace(
        s,
        parent_id=s.parent_id if spec_version == 1 else None,
        nodes=[node(n) for n in sorted(s.nodes, key=lambda n: n.path.encode())],
        manifest_files=sorted(s.manifest_files, key=lambda f: f.id),
        spec_version=spec_version,
    )


def sample_snapshot(spec_version: int) -> Snapshot:
    """A small snapshot with groups and arrays (used by corruption tests)."""
    return Snapshot(
        id=rid(),
        parent_id=rid() if spec_version == 1 else None,
        nodes=[
            NodeSnapshot(rid(8), "/", b'{"zarr_format":3,"node_type":"group"}', None),
            NodeSnapshot(
                rid(8),
                "/a",
                b'{"zarr_format":3,"node_type":"array"}',
                ArrayData(
                    (DimensionShape(10, 3, 4), DimensionShape(5, 1, 5)),
                    ("x", None),
                    (ManifestRef(rid(), ((0, 3), (0, 1))),),
                ),
            ),
        ],
        flushed_at=1_700_000_000_000_000,
        message="a commit",
        metadata={"author": "me", "n": [1, 2.5, None]},
        manifest_files=[ManifestFileInfo(rid(), 1234, 3)],
        spec_version=spec_version,
    )
