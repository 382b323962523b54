"""``IcechunkStore`` against zarr's store conformance suite, plus Icechunk's own store rules.

``TestIcechunkStore`` runs zarr's ``StoreTests``. Icechunk only accepts zarr v3 keys (``zarr.json``,
``<path>/zarr.json`` holding valid zarr v3 metadata, and chunk keys ``<array>/c/<i>/<j>...`` of an
existing array, inside its grid, never empty), while many upstream tests use free-form keys such
as ``"foo/bar"`` or write ``b"bar"`` as ``zarr.json``. Each such test is overridden below by an
equivalent test over valid Icechunk keys; where possible the override only changes the
parametrization (or creates the arrays the keys need) and then runs the upstream test body
(``super().test_...``). Every override says why it exists.

Upstream tests that run unchanged: test_store_type, test_store_eq, test_store_read_only,
test_store_open_read_only, test_store_context_manager, test_read_only_store_raises,
test_get_not_open, test_get_raises, test_getsize_raises, test_store_supports_partial_writes.

Upstream tests that skip themselves: the eight tests of zarr's optional synchronous store
protocol (test_get_sync, test_get_sync_missing, test_set_sync, test_delete_sync,
test_delete_sync_missing, test_sync_async_set_get_parity, test_delete_sync_visible_to_async_get,
test_get_sync_byte_range_parity) call ``pytest.skip("store does not implement
SupportsGetSync")`` (or ``SupportsSetSync``/``SupportsDeleteSync``): like the real Icechunk, the
store has only the async ``Store`` API (its I/O goes through async storage backends).
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import Buffer, cpu, default_buffer_prototype
from zarr.core.sync import _collect_aiterator
from zarr.testing.store import StoreTests
from zarr.testing.utils import assert_bytes_equal

import icechunk
from icechunk import ErrorKind, IcechunkStore, InvalidInputError, ReadOnlyError

GROUP_JSON = b'{"zarr_format":3,"node_type":"group","attributes":{}}'
GRID = 1000
"""Chunks per dimension of the arrays the bypass helper creates for bare chunk keys."""

PROTO = default_buffer_prototype()


def array_json(shape: tuple[int, ...], chunks: tuple[int, ...] | None = None) -> bytes:
    """A complete zarr v3 ``zarr.json`` of a uint8 array."""
    return json.dumps(
        {
            "zarr_format": 3,
            "node_type": "array",
            "shape": list(shape),
            "data_type": "uint8",
            "chunk_grid": {
                "name": "regular",
                "configuration": {"chunk_shape": list(chunks or (1,) * len(shape))},
            },
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": 0,
            "codecs": [{"name": "bytes"}],
            "attributes": {},
        }
    ).encode()


def buf(data: bytes) -> Buffer:
    return cpu.Buffer.from_bytes(data)


def node_path(prefix: str) -> str:
    """``"a/b/"`` or ``"a/b"`` -> ``"/a/b"``; ``""`` -> ``"/"``."""
    prefix = prefix.strip("/")
    return "/" + prefix if prefix else "/"


def split_key(key: str) -> tuple[str, tuple[int, ...] | None]:
    """Test-side key grammar: ``(node path, None)`` or ``(array path, chunk coords)``."""
    if key == "zarr.json" or key.endswith("/zarr.json"):
        return node_path(key[: -len("zarr.json")]), None
    segments = key.split("/")
    for i in reversed(range(len(segments))):
        tail = segments[i + 1 :]
        if segments[i] == "c" and all(t.isdigit() for t in tail):
            return node_path("/".join(segments[:i])), tuple(int(t) for t in tail)
    raise AssertionError(f"test bug: {key!r} is not an icechunk key")


async def ensure_array(session: icechunk.Session, key: str) -> None:
    """Create (through the session) the array a chunk key belongs to, if missing."""
    path, coords = split_key(key)
    assert coords is not None
    if session.node_metadata(path) is None:
        await session.set_metadata(path, array_json((GRID,) * len(coords)))


async def collect(it: Any) -> list[str]:
    return sorted(await _collect_aiterator(it))


# The repositories the conformance suite runs on: both storages, both spec versions, and both
# inline (manifest) and native (``chunks/`` object) chunk storage for the small test values.
REPO_PARAMS = [
    ("memory", 2, None),
    ("memory", 1, 0),
    ("local", 2, 0),
    ("local", 1, None),
]


@pytest.fixture(
    params=REPO_PARAMS,
    ids=[f"{s}-spec{v}-{'native' if t == 0 else 'inline'}" for s, v, t in REPO_PARAMS],
)
def store_repo(request: pytest.FixtureRequest, tmp_path: Path) -> icechunk.Repository:
    kind, spec, threshold = request.param
    storage = (
        icechunk.in_memory_storage()
        if kind == "memory"
        else icechunk.local_filesystem_storage(str(tmp_path / "repo"))
    )
    config = icechunk.RepositoryConfig(inline_chunk_threshold_bytes=threshold)
    return icechunk.Repository.create(storage, config=config, spec_version=spec)


CHUNK_KEYS = ["c/0", "foo/c/0/0", "foo/bar/c/1/2/3", "scalar/c"]

GET_CASES = [
    (b"\x01\x02\x03\x04", None),
    (b"\x01\x02\x03\x04", RangeByteRequest(1, 4)),
    (b"\x01\x02\x03\x04", OffsetByteRequest(1)),
    (b"\x01\x02\x03\x04", SuffixByteRequest(1)),
    # past the end of the value: clipped, as zarr's stores do
    (b"\x01\x02\x03\x04", RangeByteRequest(2, 100)),
    (b"\x01\x02\x03\x04", RangeByteRequest(10, 20)),
    (b"\x01\x02\x03\x04", OffsetByteRequest(10)),
    (b"\x01\x02\x03\x04", SuffixByteRequest(10)),
]


class TestIcechunkStore(StoreTests[IcechunkStore, cpu.Buffer]):
    store_cls = IcechunkStore
    buffer_cls = cpu.Buffer

    # -- fixtures and bypass helpers ----------------------------------------------------

    @pytest.fixture
    def store_kwargs(self, store_repo: icechunk.Repository) -> dict[str, Any]:
        return {"session": store_repo.writable_session("main"), "read_only": False}

    async def set(self, store: IcechunkStore, key: str, value: Buffer) -> None:
        """Write through the session (bypassing the store); creates the array of a chunk key."""
        session = store.session
        path, coords = split_key(key)
        if coords is None:
            await session.set_metadata(path, value.to_bytes())
        else:
            await ensure_array(session, key)
            await session.set_chunk(path, coords, value.to_bytes())

    async def get(self, store: IcechunkStore, key: str) -> Buffer:
        session = store.session
        path, coords = split_key(key)
        if coords is None:
            data = await session.get_metadata(path)
        else:
            data = await session.get_chunk(path, coords)
        assert data is not None, f"{key} is missing"
        return self.buffer_cls.from_bytes(data)

    # -- the abstract tests -------------------------------------------------------------

    def test_store_repr(self, store: IcechunkStore) -> None:
        text = repr(store)
        assert text.startswith("<IcechunkStore")
        assert "read_only=False" in text
        assert "read_only=True" in repr(store.with_read_only(True))

    def test_store_supports_writes(self, store: IcechunkStore) -> None:
        assert store.supports_writes
        # Icechunk: even stores of read-only sessions say True (their writes raise).
        assert store.with_read_only(True).supports_writes

    def test_store_supports_listing(self, store: IcechunkStore) -> None:
        assert store.supports_listing
        assert store.supports_deletes
        assert not store.supports_consolidated_metadata

    # -- overrides: same test, valid icechunk keys --------------------------------------

    async def test_serializable_store(self, store: IcechunkStore) -> None:
        # Upstream expects the unpickled copy of a *writable* store to be equal and writable.
        # Icechunk's rule differs: a writable session's store travels as a read-only view
        # (writes there could never be committed); read-only stores round-trip to equal ones.
        await self.set(store, "c/0", buf(b"\x01\x02\x03\x04"))
        copy: IcechunkStore = pickle.loads(pickle.dumps(store))
        assert copy != store
        # the view reports writable to zarr (so `mode="r+"` opens and the first write explains
        # fork() instead of zarr's generic read-only message), but its session is read-only
        assert copy.session.read_only and not store.read_only
        assert_bytes_equal(await copy.get("c/0", PROTO), buf(b"\x01\x02\x03\x04"))
        with pytest.raises(ReadOnlyError, match=r"fork\(\)"):
            await copy.set("c/1", buf(b"\x05"))
        # the original keeps working
        data_buf = buf(b"\x01\x02\x03\x04\x05")
        await store.set("c/1", data_buf)
        assert_bytes_equal(await store.get("c/1", PROTO), data_buf)

        store.session.commit("data")
        reader = store.session.store  # the committed session is now read-only
        assert reader.read_only
        copy = pickle.loads(pickle.dumps(reader))
        assert copy == reader
        assert copy.read_only == reader.read_only
        assert_bytes_equal(await copy.get("c/1", PROTO), data_buf)

    async def test_with_read_only_store(self, open_kwargs: dict[str, Any]) -> None:
        # Upstream body with the key "foo" (not an icechunk key) replaced by "c/0".
        store = await self.store_cls.open(**{**open_kwargs, "read_only": True})
        await self.set(store, "zarr.json", buf(array_json((10,))))
        assert store.read_only
        with pytest.raises(ValueError, match="store was opened in read-only mode"):
            await store.set("c/0", buf(b"bar"))

        writer = store.with_read_only(read_only=False)
        assert not writer._is_open
        assert not writer.read_only
        await writer.set("c/0", buf(b"bar"))
        await writer.delete("c/0")

        assert store.read_only
        with pytest.raises(ValueError, match="store was opened in read-only mode"):
            await store.set("c/0", buf(b"bar"))
        with pytest.raises(ValueError, match="store was opened in read-only mode"):
            await store.delete("c/0")

        reader = store.with_read_only(read_only=True)
        assert reader.read_only
        with pytest.raises(ValueError, match="store was opened in read-only mode"):
            await reader.set("c/0", buf(b"bar"))
        with pytest.raises(ValueError, match="store was opened in read-only mode"):
            await reader.delete("c/0")

    @pytest.mark.parametrize("key", CHUNK_KEYS)
    @pytest.mark.parametrize(("data", "byte_range"), GET_CASES)
    async def test_get(
        self, store: IcechunkStore, key: str, data: bytes, byte_range: ByteRequest
    ) -> None:
        # Upstream keys "foo/c/0.0" and "foo/0/0" are not icechunk keys, and its b"" value is
        # a zero-length chunk, which icechunk rejects (test_zero_length_chunk_is_rejected).
        await super().test_get(store, key, data, byte_range)

    async def test_get_many(self, store: IcechunkStore) -> None:
        # Upstream uses the keys "0".."9"; here they are chunks "c/0".."c/9" of an array.
        keys = tuple(f"c/{i}" for i in range(10))
        values = tuple(k.encode() for k in keys)
        for k, v in zip(keys, values, strict=True):
            await self.set(store, k, buf(v))
        observed = await _collect_aiterator(
            store._get_many((k, PROTO, None) for k in [*keys, "c/10", "not-a-key"])
        )
        got = {k: (None if b is None else b.to_bytes()) for k, b in observed}
        assert got == {**dict(zip(keys, values, strict=True)), "c/10": None, "not-a-key": None}

    @pytest.mark.parametrize("key", CHUNK_KEYS)
    async def test_getsize(self, store: IcechunkStore, key: str) -> None:  # type: ignore[override]
        # Upstream keys "foo/c/0.0"/"foo/0/0" are not icechunk keys; b"" is not a valid chunk.
        await super().test_getsize(store, key, b"\x01\x02\x03\x04")

    async def test_getsize_prefix(self, store: IcechunkStore) -> None:
        # Upstream's sibling key "cc/0" is not an icechunk key; the sibling directory sharing
        # the string prefix "c" is the array "cc" here (keys "cc/zarr.json", "cc/c/0").
        await ensure_array(store.session, "c/0/0")
        await ensure_array(store.session, "cc/c/0")
        data_buf = buf(b"\x01\x02\x03\x04")
        keys = ["c/0/0", "c/0/1", "c/1/0", "c/1/1"]
        await store._set_many((k, data_buf) for k in [*keys, "cc/c/0"])
        assert await store.getsize_prefix("c") == len(data_buf) * len(keys)
        assert await store.getsize_prefix("c/1") == len(data_buf) * 2

    @pytest.mark.parametrize(
        ("key", "data"),
        [
            ("zarr.json", GROUP_JSON),
            ("foo/zarr.json", array_json((4, 4), (2, 2))),
            ("c/0", b"\x01\x02\x03\x04"),
            ("foo/c/0/0", b"\x01\x02\x03\x04"),
            ("foo/bar/c/1/2/3", b"\x01"),
            ("scalar/c", b"\x01\x02\x03\x04"),
        ],
    )
    async def test_set(self, store: IcechunkStore, key: str, data: bytes) -> None:
        # Upstream writes b"\x01\x02\x03\x04" and b"" as zarr.json (not zarr metadata), uses
        # non-icechunk keys, and writes empty chunks; here metadata keys get metadata, chunk
        # keys an existing array.
        if split_key(key)[1] is not None:
            await ensure_array(store.session, key)
        await super().test_set(store, key, data)

    async def test_set_not_open(self, store_not_open: IcechunkStore) -> None:
        # The upstream body writes chunk "c/0": create the root array it belongs to first.
        await ensure_array(store_not_open.session, "c/0")
        await super().test_set_not_open(store_not_open)

    async def test_set_many(self, store: IcechunkStore) -> None:
        # Upstream stores each key's own name as its value, which is not zarr metadata.
        values = {
            "zarr.json": GROUP_JSON,
            "foo/zarr.json": array_json((4, 4), (2, 2)),
            "bar/zarr.json": array_json((10,), (5,)),
            "foo/c/0/0": b"foo/c/0/0",
            "foo/c/1/1": b"foo/c/1/1",
            "bar/c/1": b"bar/c/1",
        }
        await store._set_many((k, buf(v)) for k, v in values.items())
        for k, v in values.items():
            assert (await self.get(store, k)).to_bytes() == v
        assert await collect(store.list()) == sorted(values)

    @pytest.mark.parametrize(
        "key_ranges",
        [
            [],
            [("c/0", RangeByteRequest(0, 2))],
            [("c/0", RangeByteRequest(0, 2)), ("foo/c/1", None)],
            [
                ("a/c/0/0", RangeByteRequest(0, 2)),
                ("a/c/0/1", SuffixByteRequest(2)),
                ("a/c/0/2", OffsetByteRequest(2)),
            ],
        ],
    )
    async def test_get_partial_values(
        self, store: IcechunkStore, key_ranges: list[tuple[str, ByteRequest]]
    ) -> None:
        # Upstream stores b"zarr.json" as zarr.json, which is not zarr metadata: the metadata
        # case is in test_get_partial_values_metadata_chunks_and_missing_keys below.
        await super().test_get_partial_values(store, key_ranges)

    async def test_exists(self, store: IcechunkStore) -> None:
        # Upstream writes b"bar" as foo/zarr.json (not zarr metadata).
        assert not await store.exists("foo")
        assert not await store.exists("foo/zarr.json")
        await store.set("foo/zarr.json", buf(GROUP_JSON))
        assert await store.exists("foo/zarr.json")
        assert not await store.exists("foo")  # not a key, let alone an existing one

    async def test_delete(self, store: IcechunkStore) -> None:
        # Upstream writes b"bar" as foo/zarr.json (not zarr metadata).
        await store.set("foo/zarr.json", buf(GROUP_JSON))
        assert await store.exists("foo/zarr.json")
        await store.delete("foo/zarr.json")
        assert not await store.exists("foo/zarr.json")

    async def test_delete_dir(self, store: IcechunkStore) -> None:
        # Upstream writes b"root"/b"bar" as zarr.json; same layout with real metadata.
        await store.set("zarr.json", buf(GROUP_JSON))
        await store.set("foo-bar/zarr.json", buf(GROUP_JSON))
        await store.set("foo/zarr.json", buf(array_json((4,), (2,))))
        await store.set("foo/c/0", buf(b"chunk"))
        await store.delete_dir("foo")
        assert await store.exists("zarr.json")
        assert await store.exists("foo-bar/zarr.json")
        assert not await store.exists("foo/zarr.json")
        assert not await store.exists("foo/c/0")

    async def test_delete_nonexistent_key_does_not_raise(self, store: IcechunkStore) -> None:
        # Upstream deletes "nonexistent_key", which is not an icechunk key: that raises
        # invalid-key (see test_invalid_keys). Missing *valid* keys delete silently.
        await store.delete("nonexistent/zarr.json")
        await store.delete("nonexistent/c/0")
        await store.delete("c/0")
        await store.set("zarr.json", buf(array_json((4,), (2,))))
        await store.delete("c/0")  # never written
        await store.delete("c/7")  # outside the grid: a no-op (icechunk 2.3)
        await store.delete("c/0/0")  # wrong number of coordinates: a no-op too
        assert await collect(store.list()) == ["zarr.json"]
        with pytest.raises(InvalidInputError) as e:
            await store.delete("nonexistent_key")
        assert e.value.kind == ErrorKind.INVALID_KEY

    async def test_is_empty(self, store: IcechunkStore) -> None:
        # Upstream writes the non-icechunk key "foo/bar"; "foo/zarr.json" plays its part.
        assert await store.is_empty("")
        await self.set(store, "foo/zarr.json", buf(GROUP_JSON))
        assert not await store.is_empty("")
        assert await store.is_empty("fo")
        assert not await store.is_empty("foo/")
        assert not await store.is_empty("foo")
        assert await store.is_empty("spam/")

    async def test_clear(self, store: IcechunkStore) -> None:
        # Upstream writes the non-icechunk key "key".
        await self.set(store, "zarr.json", buf(GROUP_JSON))
        await self.set(store, "key/c/0", buf(b"something"))
        await store.clear()
        assert await store.is_empty("")
        assert await collect(store.list()) == []

    async def test_list(self, store: IcechunkStore) -> None:
        # Upstream writes b"" as foo/zarr.json and as ten chunks (invalid in icechunk).
        assert await _collect_aiterator(store.list()) == ()
        values = {
            "foo/zarr.json": buf(array_json((10,))),
            **{f"foo/c/{i}": buf(b"\x00") for i in range(10)},
        }
        await store._set_many(values.items())
        assert await collect(store.list()) == sorted(values)

    async def test_list_prefix(self, store: IcechunkStore) -> None:
        # Upstream writes b"" as zarr.json (not zarr metadata).
        prefixes = ("", "a/", "a/b/", "a/b/c/")
        values = {p + "zarr.json": buf(GROUP_JSON) for p in prefixes}
        await store._set_many(values.items())
        for prefix in prefixes:
            observed = await collect(store.list_prefix(prefix))
            assert observed == sorted(k for k in values if k.startswith(prefix))

    async def test_list_empty_path(self, store: IcechunkStore) -> None:
        # Upstream writes b"" as metadata and chunks (invalid in icechunk); same layout here.
        values = {
            "foo/bar/zarr.json": buf(array_json((10,))),
            "foo/bar/c/1": buf(b"\x01"),
            "foo/baz/zarr.json": buf(array_json((10,))),
            "foo/baz/c/0": buf(b"\x01"),
        }
        await store._set_many(values.items())
        assert await collect(store.list()) == sorted(values)
        assert await collect(store.list_prefix("")) == sorted(values)
        assert await collect(store.list_prefix("foo/bar/")) == ["foo/bar/c/1", "foo/bar/zarr.json"]

    async def test_list_dir(self, store: IcechunkStore) -> None:
        # Upstream mixes a free-form key ("foo/bar/foobar_first_child") into the layout; here
        # every child is a node or a chunk.
        roots_and_keys: list[tuple[str, dict[str, Buffer]]] = [
            ("foo", {"foo/zarr.json": buf(array_json((4,))), "foo/c/1": buf(b"\x01")}),
            (
                "foo/bar",
                {
                    "foo/bar/first/zarr.json": buf(array_json((2,))),
                    "foo/bar/first/c/0": buf(b"1"),
                    "foo/bar/second/zarr.json": buf(GROUP_JSON),
                },
            ),
        ]
        assert await _collect_aiterator(store.list_dir("")) == ()
        for root, values in roots_and_keys:
            assert await _collect_aiterator(store.list_dir(root)) == ()
            await store._set_many(values.items())
            expected = sorted({k.removeprefix(f"{root}/").split("/")[0] for k in values})
            assert await collect(store.list_dir(root)) == expected
            assert await collect(store.list_dir(f"{root}/")) == expected
        assert await collect(store.list_dir("")) == ["foo"]
        assert await collect(store.list_dir("foo")) == ["bar", "c", "zarr.json"]
        assert await collect(store.list_dir("foo/c")) == ["1"]

    async def test_set_if_not_exists(self, store: IcechunkStore) -> None:
        # Upstream uses the non-icechunk keys "k" and "k2".
        data_buf = buf(b"0000")
        await self.set(store, "c/0", data_buf)
        new = buf(b"1111")
        await store.set_if_not_exists("c/0", new)
        assert await store.get("c/0", PROTO) == data_buf
        await store.set_if_not_exists("c/1", new)
        assert await store.get("c/1", PROTO) == new
        await store.set_if_not_exists("zarr.json", buf(GROUP_JSON))  # exists: kept
        assert (await store.get("zarr.json", PROTO)).to_bytes() == array_json((GRID,))  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------------
# Icechunk's own store rules
# ------------------------------------------------------------------------------------------


def make_tree(session: icechunk.Session) -> None:
    """root group; group ``g`` with array ``g/a`` (2 x 3 chunks, 4 written); array ``b``."""
    root = zarr.group(store=session.store)
    g = root.create_group("g")
    a = g.create_array("a", shape=(4, 6), chunks=(2, 2), dtype="i4", fill_value=0)
    a[:2, :] = 1
    a[2:, :2] = 2
    b = root.create_array("b", shape=(3,), chunks=(2,), dtype="u1", fill_value=0)
    b[:] = [1, 2, 3]


TREE_KEYS = sorted(
    [
        "zarr.json",
        "g/zarr.json",
        "g/a/zarr.json",
        "g/a/c/0/0",
        "g/a/c/0/1",
        "g/a/c/0/2",
        "g/a/c/1/0",
        "b/zarr.json",
        "b/c/0",
        "b/c/1",
    ]
)


@pytest.fixture
def session(repo: icechunk.Repository) -> icechunk.Session:
    return repo.writable_session("main")


@pytest.mark.parametrize(
    "key",
    [
        "foo",
        "foo/bar",
        ".zgroup",
        "a/.zarray",
        ".zattrs",
        "/zarr.json",
        "a/zarr.json/",
        "a//zarr.json",
        "./zarr.json",
        "a/../zarr.json",
        "a/c/x",
        "a/c/0.0",
        "a/c/-1",
        "a/0/0",
        "",
    ],
)
async def test_invalid_keys(session: icechunk.Session, key: str) -> None:
    store = session.store
    await store.set("a/zarr.json", buf(array_json((4,), (2,))))
    with pytest.raises(InvalidInputError) as e:
        await store.set(key, buf(b"\x01"))
    assert e.value.kind == ErrorKind.INVALID_KEY
    with pytest.raises(InvalidInputError) as e:
        await store.delete(key)
    assert e.value.kind == ErrorKind.INVALID_KEY
    with pytest.raises(InvalidInputError):
        await store.getsize(key)
    # reads of non-keys behave like reads of missing keys (zarr probes v2 keys when opening)
    assert await store.get(key, PROTO) is None
    assert not await store.exists(key)
    assert await collect(store.list()) == ["a/zarr.json"]


async def test_invalid_metadata_is_rejected(session: icechunk.Session) -> None:
    store = session.store
    for bad in (b"bar", b"", b"[]", b'{"zarr_format": 2}'):
        with pytest.raises(InvalidInputError) as e:
            await store.set("zarr.json", buf(bad))
        assert e.value.kind == ErrorKind.INVALID_METADATA
    assert await collect(store.list()) == []


async def test_chunk_of_missing_array_is_rejected(session: icechunk.Session) -> None:
    store = session.store
    await store.set("g/zarr.json", buf(GROUP_JSON))
    for key in ("nope/c/0", "g/c/0"):  # no node / a group
        with pytest.raises(InvalidInputError) as e:
            await store.set(key, buf(b"\x01"))
        assert e.value.kind == ErrorKind.INVALID_KEY


async def test_out_of_grid_chunk_write_is_rejected(session: icechunk.Session) -> None:
    store = session.store
    await store.set("a/zarr.json", buf(array_json((4, 5), (2, 2))))  # 2 x 3 chunks
    await store.set("a/c/1/2", buf(b"\x01"))  # the last chunk is fine
    for key in ("a/c/2/0", "a/c/0/3", "a/c/0", "a/c/0/0/0", "a/c"):
        with pytest.raises(InvalidInputError) as e:
            await store.set(key, buf(b"\x01"))
        assert e.value.kind == ErrorKind.INVALID_CHUNK_INDEX, key
        await store.delete(key)  # deleting outside the grid is a no-op
    assert await collect(store.list()) == ["a/c/1/2", "a/zarr.json"]


async def test_zero_length_chunk_is_rejected(session: icechunk.Session) -> None:
    store = session.store
    await store.set("a/zarr.json", buf(array_json((4,), (2,))))
    with pytest.raises(InvalidInputError) as e:
        await store.set("a/c/0", buf(b""))
    assert e.value.kind == ErrorKind.ZERO_LENGTH_CHUNK
    assert not await store.exists("a/c/0")


async def test_scalar_array_chunk_key(session: icechunk.Session) -> None:
    arr = zarr.create_array(session.store, name="s", shape=(), dtype="f8", fill_value=0)
    arr[()] = 4.5
    assert await collect(session.store.list()) == ["s/c", "s/zarr.json", "zarr.json"]
    assert zarr.open_array(session.store, path="s")[()] == 4.5


async def test_read_only_session_store_refuses_writes(repo: icechunk.Repository) -> None:
    writer = repo.writable_session("main")
    make_tree(writer)
    writer.commit("tree")
    store = repo.readonly_session("main").store
    assert store.read_only
    assert store.supports_writes and store.supports_deletes  # as in icechunk: writes fail
    attempts = [
        store.set("b/c/0", buf(b"\x09")),
        store.set("new/zarr.json", buf(GROUP_JSON)),
        store.set_if_not_exists("new/zarr.json", buf(GROUP_JSON)),
        store.delete("b/c/0"),
        store.delete("b/zarr.json"),
        store.delete_dir("g"),
        store.clear(),
    ]
    for attempt in attempts:
        with pytest.raises(ReadOnlyError) as e:
            await attempt
        assert e.value.kind == ErrorKind.READ_ONLY_STORE
        assert isinstance(e.value, ValueError)  # zarr's Store contract for read-only stores
        copy = pickle.loads(pickle.dumps(e.value))
        assert isinstance(copy, ReadOnlyError) and copy.kind == e.value.kind
        assert str(copy) == str(e.value)
    assert await collect(store.list()) == TREE_KEYS


async def test_with_read_only_false_cannot_make_a_read_only_session_writable(
    repo: icechunk.Repository,
) -> None:
    writer = repo.writable_session("main")
    make_tree(writer)
    writer.commit("tree")
    store = repo.readonly_session("main").store.with_read_only(False)
    assert isinstance(store, IcechunkStore)
    assert store.read_only
    with pytest.raises(ReadOnlyError):
        await store.set("b/c/0", buf(b"\x09"))
    with pytest.raises(ReadOnlyError):
        await store.delete("b/c/0")
    with pytest.raises(ValueError, match="read-only"):
        zarr.open_array(store, path="b", mode="r+")
    assert np.asarray(zarr.open_array(store, path="b", mode="r")[:]).tolist() == [1, 2, 3]


async def test_committed_session_store_refuses_writes(session: icechunk.Session) -> None:
    make_tree(session)
    store = session.store
    assert not session.store.read_only
    session.commit("tree")
    assert store.read_only  # follows the session
    with pytest.raises(ReadOnlyError, match="committed"):
        await store.set("b/c/0", buf(b"\x09"))


async def test_mode_r_on_a_writable_session_gives_a_read_only_array(
    session: icechunk.Session,
) -> None:
    make_tree(session)
    arr = zarr.open_array(session.store, path="b", mode="r")
    assert arr.store.read_only
    assert not session.store.read_only
    with pytest.raises(ReadOnlyError):
        arr[:] = 7
    assert np.asarray(zarr.open_array(session.store, path="b")[:]).tolist() == [1, 2, 3]


@pytest.mark.parametrize("size", [5, 2000], ids=["inline", "native"])
@pytest.mark.parametrize("commit", [False, True], ids=["staged", "committed"])
async def test_byte_ranges(repo: icechunk.Repository, size: int, commit: bool) -> None:
    session = repo.writable_session("main")
    store = session.store
    meta = array_json((10,), (1,))
    data = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    await store.set("zarr.json", buf(GROUP_JSON))
    await store.set("a/zarr.json", buf(meta))
    await store.set("a/c/3", buf(data))
    if commit:
        session.commit("data")
        store = repo.readonly_session("main").store
    n = len(data)
    cases: list[tuple[ByteRequest | None, slice]] = [
        (None, slice(None)),
        (RangeByteRequest(0, 3), slice(0, 3)),
        (RangeByteRequest(2, n - 1), slice(2, n - 1)),
        (RangeByteRequest(n - 2, n + 50), slice(n - 2, None)),
        (RangeByteRequest(n + 1, n + 5), slice(n, n)),
        (RangeByteRequest(3, 3), slice(3, 3)),
        (OffsetByteRequest(0), slice(None)),
        (OffsetByteRequest(n - 1), slice(n - 1, None)),
        (OffsetByteRequest(n + 7), slice(n, n)),
        (SuffixByteRequest(1), slice(n - 1, None)),
        (SuffixByteRequest(n), slice(None)),
        (SuffixByteRequest(n + 100), slice(None)),
    ]
    for byte_range, expected in cases:
        got = await store.get("a/c/3", PROTO, byte_range=byte_range)
        assert got is not None and got.to_bytes() == data[expected], byte_range
    m = len(meta)
    meta_cases: list[tuple[ByteRequest | None, slice]] = [
        (RangeByteRequest(0, 10), slice(0, 10)),
        (RangeByteRequest(5, m + 10), slice(5, None)),
        (OffsetByteRequest(7), slice(7, None)),
        (SuffixByteRequest(4), slice(m - 4, None)),
    ]
    for byte_range, expected in meta_cases:
        got = await store.get("a/zarr.json", PROTO, byte_range=byte_range)
        assert got is not None and got.to_bytes() == meta[expected], byte_range
    # missing keys stay missing whatever the range
    assert await store.get("a/c/4", PROTO, byte_range=RangeByteRequest(0, 1)) is None
    assert await store.get("x/zarr.json", PROTO, byte_range=SuffixByteRequest(1)) is None
    with pytest.raises(ValueError, match="Unexpected byte_range"):
        await store.get("a/c/3", PROTO, byte_range=(0, 2))  # type: ignore[arg-type]


async def test_get_partial_values_metadata_chunks_and_missing_keys(
    session: icechunk.Session,
) -> None:
    make_tree(session)
    store = session.store
    meta = await store.get("b/zarr.json", PROTO)
    chunk = await store.get("b/c/1", PROTO)
    assert meta is not None and chunk is not None
    key_ranges: list[tuple[str, ByteRequest | None]] = [
        ("b/zarr.json", RangeByteRequest(0, 5)),
        ("b/c/1", None),
        ("zarr.json", SuffixByteRequest(3)),
        ("b/c/7", None),  # outside the grid: missing
        ("g/a/c/1/2", OffsetByteRequest(1)),  # never written
        ("nope/zarr.json", None),
        (".zgroup", None),
        ("b/c/0", OffsetByteRequest(1)),
    ]
    got = await store.get_partial_values(PROTO, iter(key_ranges))
    root = await store.get("zarr.json", PROTO)
    assert root is not None
    expected = [
        meta.to_bytes()[:5],
        chunk.to_bytes(),
        root.to_bytes()[-3:],
        None,
        None,
        None,
        None,
        (await store.get("b/c/0", PROTO)).to_bytes()[1:],  # type: ignore[union-attr]
    ]
    assert [None if b is None else b.to_bytes() for b in got] == expected


async def test_getsize(session: icechunk.Session) -> None:
    store = session.store
    meta = array_json((10,), (5,))
    await store.set("a/zarr.json", buf(meta))
    await store.set("a/c/0", buf(b"\x01" * 3))  # inline
    await store.set("a/c/1", buf(b"\x01" * 2000))  # native
    assert await store.getsize("a/zarr.json") == len(meta)
    assert await store.getsize("a/c/0") == 3
    assert await store.getsize("a/c/1") == 2000
    assert await store.getsize_prefix("a") == len(meta) + 2003
    assert await store.getsize_prefix("a/c") == 2003
    for missing in ("b/zarr.json", "a/c/2", "b/c/0"):
        with pytest.raises(FileNotFoundError):
            await store.getsize(missing)
    session.commit("sizes")
    store = session.store
    assert await store.getsize("a/c/1") == 2000
    assert await store.getsize_prefix("") == len(meta) + 2003


@pytest.mark.parametrize("commit", [False, True], ids=["staged", "committed"])
async def test_listing(repo: icechunk.Repository, commit: bool) -> None:
    session = repo.writable_session("main")
    make_tree(session)
    # a sibling whose name extends "g": prefixes are strings, directories are not
    zarr.create_group(session.store, path="gg")
    if commit:
        session.commit("tree")
        session = repo.readonly_session("main")
    store = session.store
    keys = sorted([*TREE_KEYS, "gg/zarr.json"])
    assert await collect(store.list()) == keys
    assert await collect(store.list_prefix("")) == keys
    # directory semantics, as the real Icechunk: "g" does not reach "gg/"
    assert await collect(store.list_prefix("g")) == [k for k in keys if k.startswith("g/")]
    assert await collect(store.list_prefix("g/")) == [k for k in keys if k.startswith("g/")]
    assert await collect(store.list_prefix("g/a/c/0/")) == ["g/a/c/0/0", "g/a/c/0/1", "g/a/c/0/2"]
    assert await collect(store.list_prefix("g/a/c/")) == [
        "g/a/c/0/0",
        "g/a/c/0/1",
        "g/a/c/0/2",
        "g/a/c/1/0",
    ]
    assert await collect(store.list_prefix("b/c")) == ["b/c/0", "b/c/1"]
    assert await collect(store.list_prefix("nope/")) == []
    assert await collect(store.list_dir("")) == ["b", "g", "gg", "zarr.json"]
    assert await collect(store.list_dir("/")) == ["b", "g", "gg", "zarr.json"]
    assert await collect(store.list_dir("g")) == ["a", "zarr.json"]
    assert await collect(store.list_dir("g/a")) == ["c", "zarr.json"]
    assert await collect(store.list_dir("g/a/c")) == ["0", "1"]
    assert await collect(store.list_dir("g/a/c/0/")) == ["0", "1", "2"]
    assert await collect(store.list_dir("g/a/c/0/1")) == []
    assert await collect(store.list_dir("nope")) == []
    assert not await store.is_empty("")
    assert not await store.is_empty("g")
    assert not await store.is_empty("g/a/c/1")
    assert await store.is_empty("g/a/c/2")
    assert await store.is_empty("nope")
    assert await store.exists("g/a/c/1/0")
    assert not await store.exists("g/a/c/1/1")


async def test_listing_follows_deletes_and_resizes(session: icechunk.Session) -> None:
    make_tree(session)
    store = session.store
    await store.delete("g/a/c/0/1")
    assert await collect(store.list_dir("g/a/c/0")) == ["0", "2"]
    # shrinking the array drops the chunks outside the new grid
    zarr.open_array(store, path="g/a").resize((2, 2))
    assert await collect(store.list_prefix("g/a/c/")) == ["g/a/c/0/0"]
    zarr.open_array(store, path="g/a").resize((4, 6))
    assert await collect(store.list_prefix("g/a/c/")) == ["g/a/c/0/0"]
    assert np.asarray(zarr.open_array(store, path="g/a")[2:, :]).sum() == 0


async def test_delete_dir_of_a_group_removes_its_descendants(session: icechunk.Session) -> None:
    make_tree(session)
    zarr.create_group(session.store, path="gg")
    store = session.store
    # a prefix inside an array's chunk space deletes the chunks in that directory
    await store.delete_dir("g/a/c/0")
    assert await collect(store.list_prefix("g/a/")) == ["g/a/c/1/0", "g/a/zarr.json"]
    await store.delete_dir("b/c/1")  # the key "b/c/1" is not *inside* the directory b/c/1/
    assert await collect(store.list_prefix("b/")) == ["b/c/0", "b/c/1", "b/zarr.json"]
    await store.delete_dir("b/c/")
    assert await collect(store.list_prefix("b/")) == ["b/zarr.json"]
    await store.delete_dir("g")
    assert await collect(store.list()) == ["b/zarr.json", "gg/zarr.json", "zarr.json"]
    assert "g" not in zarr.open_group(store)
    # the root prefix deletes everything
    await store.delete_dir("")
    assert await collect(store.list()) == []


async def test_delete_dir_of_a_path_that_is_not_a_node(session: icechunk.Session) -> None:
    store = session.store
    await store.set("x/y/zarr.json", buf(GROUP_JSON))  # no node at "x" itself
    await store.set("x/y/z/zarr.json", buf(array_json((4,), (2,))))
    await store.set("x/y/z/c/1", buf(b"\x01"))
    await store.set("xx/zarr.json", buf(GROUP_JSON))
    await store.delete_dir("x")
    assert await collect(store.list()) == ["xx/zarr.json"]


async def test_delete_metadata_key_of_a_group_deletes_the_subtree(
    session: icechunk.Session,
) -> None:
    make_tree(session)
    store = session.store
    await store.delete("g/zarr.json")
    assert await collect(store.list()) == ["b/c/0", "b/c/1", "b/zarr.json", "zarr.json"]


async def test_clear(repo: icechunk.Repository) -> None:
    session = repo.writable_session("main")
    make_tree(session)
    first = session.commit("tree")
    session = repo.writable_session("main")
    store = session.store
    await store.clear()
    assert await collect(store.list()) == []
    assert await store.is_empty("")
    session.commit("cleared")
    assert await collect(repo.readonly_session("main").store.list()) == []
    # history is kept
    old = repo.readonly_session(snapshot_id=first).store
    assert await collect(old.list()) == TREE_KEYS
    assert np.asarray(zarr.open_array(old, path="b", mode="r")[:]).tolist() == [1, 2, 3]


async def test_unsupported_features(session: icechunk.Session) -> None:
    store = session.store
    assert not store.supports_partial_writes
    assert not store.supports_consolidated_metadata
    with pytest.raises(NotImplementedError, match="not implemented by Icechunk"):
        await store.set_partial_values([("a/c/0", 0, b"\x01")])


def test_equality(repo: icechunk.Repository) -> None:
    session = repo.writable_session("main")
    make_tree(session)
    assert session.store == session.store  # a new wrapper on each access
    assert hash(session.store) == hash(session.store)
    other = repo.writable_session("main")
    assert session.store != other.store  # different staged changes
    snap = session.commit("tree")
    a = repo.readonly_session("main").store
    b = repo.readonly_session(snapshot_id=snap).store
    assert a == b and hash(a) == hash(b)  # same snapshot, nothing staged
    assert a == session.store  # the committed session now shows that snapshot
    assert a != other.store
    assert a != "not a store"


def test_zarr_round_trip_through_the_store(session: icechunk.Session) -> None:
    make_tree(session)
    group = zarr.open_group(session.store, mode="r")
    assert sorted(group.group_keys()) == ["g"]
    assert sorted(group.array_keys()) == ["b"]
    expected = np.zeros((4, 6), dtype="i4")
    expected[:2, :] = 1
    expected[2:, :2] = 2
    np.testing.assert_array_equal(group["g/a"][:], expected)  # type: ignore[index]


# -- pickling --------------------------------------------------------------------------------

_READ_IN_CHILD = """
import pickle, sys
import zarr
from zarr.core.sync import sync, _collect_aiterator
store = pickle.load(open(sys.argv[1], "rb"))
from zarr.core.buffer import cpu
keys = sorted(sync(_collect_aiterator(store.list())))
print(store.session.read_only, zarr.open_array(store, path="b", mode="r")[:].tolist(), len(keys))
try:
    sync(store.set("b/c/0", cpu.Buffer.from_bytes(b"0")))
except Exception as e:
    import icechunk
    print(isinstance(e, icechunk.ReadOnlyError), "fork()" in str(e))
"""


def _read_in_child(store: IcechunkStore, tmp_path: Path) -> list[str]:
    path = tmp_path / "store.pickle"
    path.write_bytes(pickle.dumps(store))
    out = subprocess.run(
        [sys.executable, "-c", _READ_IN_CHILD, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return out.stdout.splitlines()


def test_read_only_store_pickles_and_reads_in_a_subprocess(
    local_repo: icechunk.Repository, tmp_path: Path
) -> None:
    session = local_repo.writable_session("main")
    make_tree(session)
    session.commit("tree")
    store = local_repo.readonly_session("main").store
    copy = pickle.loads(pickle.dumps(store))
    assert copy == store and copy.read_only
    lines = _read_in_child(store, tmp_path)
    assert lines[0] == f"True [1, 2, 3] {len(TREE_KEYS)}"
    assert lines[1] == "True False"  # a ReadOnlyError; nothing to do with fork()


async def test_writable_store_unpickles_as_a_read_only_view(
    local_repo: icechunk.Repository, tmp_path: Path
) -> None:
    session = local_repo.writable_session("main")
    make_tree(session)  # uncommitted: the view carries the staged changes
    store = session.store
    view: IcechunkStore = pickle.loads(pickle.dumps(store))
    assert view.session.read_only and not store.read_only
    assert view != store
    assert await collect(view.list()) == TREE_KEYS
    with pytest.raises(ReadOnlyError, match=r"fork\(\)") as e:
        await view.set("b/c/0", buf(b"\x09"))
    assert e.value.kind == ErrorKind.READ_ONLY_SESSION
    with pytest.raises(ReadOnlyError, match=r"fork\(\)"):
        await view.delete_dir("g")
    # in another process too
    lines = _read_in_child(store, tmp_path)
    assert lines == [f"True [1, 2, 3] {len(TREE_KEYS)}", "True True"]
    # the original session is untouched and still commits
    await store.set("b/c/0", buf(b"\x07\x07"))
    session.commit("tree")


async def test_fork_store_pickles_writable(repo: icechunk.Repository) -> None:
    session = repo.writable_session("main")
    make_tree(session)
    session.commit("tree")
    session = repo.writable_session("main")
    fork = session.fork()
    store: IcechunkStore = pickle.loads(pickle.dumps(fork.store))
    assert not store.read_only
    assert isinstance(store.session, icechunk.ForkSession)
    zarr.open_array(store, path="b")[:2] = [5, 6]
    session.merge(store.session)
    assert np.asarray(zarr.open_array(session.store, path="b")[:]).tolist() == [5, 6, 3]


async def test_fork_of_a_dirty_session_rewrites_staged_chunks(session: icechunk.Session) -> None:
    # The fork sees the parent's staged chunk and overwrites it: merging back is a plain
    # sequential update (the fork's bytes win), not an overlap between two writers.
    make_tree(session)  # staged, not committed
    fork = session.fork()
    store: IcechunkStore = pickle.loads(pickle.dumps(fork.store))
    zarr.open_array(store, path="b")[:2] = [5, 6]
    session.merge(store.session)  # must not warn (filterwarnings=error)
    assert np.asarray(zarr.open_array(session.store, path="b")[:]).tolist() == [5, 6, 3]
