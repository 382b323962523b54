"""Dictionary-compressed virtual chunk locations written by our manifest encoder (spec 2)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from icechunk.format import decode_manifest, encode_manifest
from icechunk.format.flatbuf import Buffer
from icechunk.format.header import decode_object
from icechunk.format.manifest import LocationCompression, ManifestView
from icechunk.format.model import ArrayManifest, ChunkKind, ChunkRefs, FileType, Manifest
from tests.format.helpers import assert_manifests_equal, manifests, native_refs, rid, sorted_refs

NAME = "manifests/TEST"
ALWAYS = LocationCompression(min_num_chunks=1)


def virtual_refs(n: int, *, files: int = 30, seed: int = 0, width: int = 1) -> ChunkRefs:
    """``n`` virtual refs into ``files`` files; every third one has an etag, every third a
    last-modified time; with ``width`` > 1, some refs are native or inline instead."""
    rng = np.random.default_rng(seed)
    kind = np.full(n, ChunkKind.VIRTUAL, dtype=np.uint8)
    if width > 1:
        kind[::5] = ChunkKind.NATIVE
        kind[1::7] = ChunkKind.INLINE
    virtual = kind == ChunkKind.VIRTUAL
    refs = ChunkRefs(
        coords=np.arange(n, dtype=np.uint32).reshape(n, 1),
        kind=kind,
        chunk_id=np.where(
            (kind == ChunkKind.NATIVE)[:, None], rng.integers(0, 256, (n, 12), dtype=np.uint8), 0
        ).astype(np.uint8),
        offset=np.where(kind == ChunkKind.INLINE, 0, np.arange(n) * 64).astype(np.uint64),
        length=np.where(kind == ChunkKind.INLINE, 3, 64).astype(np.uint64),
    )
    if width > 1:
        refs.inline = [b"abc" if k == ChunkKind.INLINE else None for k in kind]
    refs.location = [
        f"s3://some-bucket/model/run-{i % files:04d}/output.nc" if v else None
        for i, v in enumerate(virtual)
    ]
    refs.checksum_etag = [
        f'"etag-{i}"' if v and i % 3 == 0 else None for i, v in enumerate(virtual)
    ]
    refs.checksum_last_modified = np.where(virtual & (np.arange(n) % 3 == 1), 1_700_000_000, 0)
    refs.checksum_last_modified = refs.checksum_last_modified.astype(np.uint32)
    return refs


def manifest(*arrays: ChunkRefs) -> Manifest:
    return Manifest(rid(), [ArrayManifest(rid(8), r) for r in arrays], 2)


def expected(m: Manifest) -> Manifest:
    arrays = sorted(m.arrays, key=lambda a: a.node_id)
    return Manifest(m.id, [ArrayManifest(a.node_id, sorted_refs(a.refs)) for a in arrays], 2)


def compression_of(data: bytes) -> tuple[int | None, int]:
    return ManifestView(data, NAME).location_compression()


def compression_algorithm(data: bytes) -> int:
    """The root table's ``compression_algorithm`` (slot 3, schema default 1)."""
    _, payload = decode_object(data, NAME, FileType.MANIFEST)
    root = Buffer(payload, NAME, "manifest").root()
    return root.scalar(3, "u8", 1)


def test_compressed_manifest_round_trips_every_kind_and_checksum() -> None:
    m = manifest(virtual_refs(1500, width=2), virtual_refs(40, seed=1), native_refs(np.arange(9)))
    data = encode_manifest(m, 2, LocationCompression())
    assert_manifests_equal(decode_manifest(data, NAME), expected(m))
    dictionary, compressed = compression_of(data)
    n_virtual = sum(int(np.count_nonzero(a.refs.kind == ChunkKind.VIRTUAL)) for a in m.arrays)
    assert dictionary is not None and 0 < dictionary <= 2048
    assert compressed == n_virtual  # every virtual ref, in every array of the manifest
    assert compression_algorithm(data) == 1
    plain = encode_manifest(m, 2)
    assert compression_of(plain) == (None, 0)
    assert compression_algorithm(plain) == 0


def test_single_ref_lookups_decompress_locations() -> None:
    refs = virtual_refs(1200)
    m = manifest(refs)
    view = ManifestView(encode_manifest(m, 2, LocationCompression()), NAME)
    node = m.arrays[0].node_id
    for i in (0, 1, 599, 1199):
        found = view.lookup(node, (i,))
        assert found is not None
        assert found.location == [refs.location[i]]
        assert found.checksum_etag == [refs.checksum_etag[i]]


def test_the_threshold_counts_virtual_refs_of_all_arrays() -> None:
    m = manifest(virtual_refs(600), virtual_refs(400, seed=2))
    at = encode_manifest(m, 2, LocationCompression(min_num_chunks=1000))
    assert compression_of(at)[1] == 1000
    above = encode_manifest(m, 2, LocationCompression(min_num_chunks=1001))
    # below the threshold the bytes are exactly those of the uncompressed encoder
    assert above == encode_manifest(m, 2)


def test_spec_1_never_compresses() -> None:
    m = manifest(virtual_refs(1200))
    assert encode_manifest(m, 1, ALWAYS) == encode_manifest(m, 1)


def test_untrainable_locations_stay_plain() -> None:
    tiny = virtual_refs(1200)
    tiny.location = [f"s3://{i % 9}" for i in range(1200)]  # 6 bytes: too small to train on
    m = manifest(tiny)
    assert encode_manifest(m, 2, ALWAYS) == encode_manifest(m, 2)
    # zstd's smallest dictionary is 256 bytes: a smaller limit cannot be honoured
    m = manifest(virtual_refs(1200))
    too_small = LocationCompression(min_num_chunks=1, max_dictionary_size=100)
    assert encode_manifest(m, 2, too_small) == encode_manifest(m, 2)


def test_settings_bound_the_dictionary() -> None:
    m = manifest(virtual_refs(5000, files=2000))
    big = compression_of(encode_manifest(m, 2, LocationCompression(max_dictionary_size=8192)))
    small = compression_of(encode_manifest(m, 2, LocationCompression(max_dictionary_size=512)))
    assert big[0] is not None and small[0] is not None
    assert small[0] <= 512 < big[0] <= 8192
    few = LocationCompression(max_training_samples=10, level=19)
    data = encode_manifest(m, 2, few)
    assert compression_of(data)[1] == 5000
    assert_manifests_equal(decode_manifest(data, NAME), expected(m))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_round_trip_with_compression(data: st.DataObject) -> None:
    m = data.draw(manifests(2))
    encoded = encode_manifest(m, 2, ALWAYS)
    decoded = decode_manifest(encoded, NAME)
    assert_manifests_equal(decoded, expected(m))
    dictionary, compressed = compression_of(encoded)
    virtual = sum(int(np.count_nonzero(a.refs.kind == ChunkKind.VIRTUAL)) for a in m.arrays)
    assert compressed == (virtual if dictionary is not None else 0)
