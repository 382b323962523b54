"""The conformance suite every :class:`~icechunk.storage.Storage` backend must pass.

Usage: subclass :class:`StorageTests` in a test module, name the subclass ``Test...`` so pytest
collects it, and provide a ``storage`` fixture returning a fresh, empty storage for each test::

    class TestMyStorage(StorageTests[MyStorage]):
        @pytest.fixture
        def storage(self, tmp_path: Path) -> MyStorage:
            return MyStorage(tmp_path / "repo")

        async def raw_get(self, storage: MyStorage, key: str) -> bytes | None:
            ...  # optional: read the backend directly, bypassing the Storage API

The suite checks the contract stated on :class:`~icechunk.storage.base.Storage`: round trips,
byte ranges, missing keys, create-only and compare-and-swap puts (including races between many
concurrent writers), listing, deletion, key validation and pickling. It needs pytest with
pytest-asyncio in ``auto`` mode.
"""

from __future__ import annotations

import asyncio
import pickle
from datetime import UTC, datetime, timedelta

import pytest

from icechunk.errors import (
    InvalidInputError,
    ObjectNotFoundError,
    PreconditionFailedError,
    StorageError,
)
from icechunk.storage.base import (
    ByteRange,
    IfMatch,
    OffsetRange,
    PutMode,
    RangeRequest,
    Storage,
    SuffixRange,
    VersionInfo,
    WriteMode,
)

__all__ = ["INVALID_KEYS", "StorageTests", "cas_increment", "listing"]

INVALID_KEYS: tuple[str, ...] = (
    "",
    "/abs",
    "/etc/passwd",
    "a//b",
    "a/",
    "../x",
    "a/../../b",
    "a/./b",
    ".",
    "a\\b",
    "a\x00b",
)
"""Keys every backend must reject with :class:`~icechunk.errors.InvalidInputError`."""

_DATA = b"0123456789"

# (range, expected bytes of _DATA)
_RANGES: list[tuple[ByteRange, bytes]] = [
    (RangeRequest(0, 10), _DATA),
    (RangeRequest(2, 5), b"234"),
    (RangeRequest(0, 0), b""),
    (RangeRequest(5, 5), b""),
    (RangeRequest(8, 20), b"89"),
    (RangeRequest(10, 12), b""),
    (RangeRequest(50, 60), b""),
    (OffsetRange(0), _DATA),
    (OffsetRange(3), b"3456789"),
    (OffsetRange(10), b""),
    (OffsetRange(11), b""),
    (SuffixRange(3), b"789"),
    (SuffixRange(0), b""),
    (SuffixRange(10), _DATA),
    (SuffixRange(20), _DATA),
]

_BAD_RANGES: list[ByteRange] = [
    RangeRequest(5, 2),
    RangeRequest(-1, 3),
    OffsetRange(-1),
    SuffixRange(-1),
]

_LISTING_KEYS: dict[str, bytes] = {
    "config.yaml": b"c",
    "refs/branch.main/ref.json": b"main",
    "refs/tag.v1/ref.json": b"tag-v1",
    "snapshots/1CECHNKREP0F1RSTCMT0": b"root",
    "snapshots/1CEABC": b"",
    "snapshots/XYZ": b"xyz" * 10,
    "chunks/AAA": b"a" * 100,
}


async def listing(storage: Storage, prefix: str = "") -> dict[str, int]:
    """Return ``{key: size_bytes}`` of everything ``storage.list(prefix)`` yields.

    Fails the test if a key is yielded twice.
    """
    found: dict[str, int] = {}
    async for info in storage.list(prefix):
        assert info.key not in found, f"{info.key!r} listed twice"
        found[info.key] = info.size_bytes
    return found


async def cas_increment(storage: Storage, key: str) -> int:
    """Add one to the decimal counter stored at ``key`` by read-modify-compare-and-swap.

    Retries until its own compare-and-swap succeeds, yielding to the event loop between the read
    and the write so that concurrent tasks really interleave. Returns the number of attempts.
    """
    attempts = 0
    while True:
        attempts += 1
        data, version = await storage.get_with_version(key)
        await asyncio.sleep(0)
        try:
            await storage.put(key, str(int(data) + 1).encode(), IfMatch(version))
        except PreconditionFailedError:
            continue
        return attempts


async def _increments(storage: Storage, key: str, count: int) -> None:
    for _ in range(count):
        await cas_increment(storage, key)


class StorageTests[S: Storage]:
    """Conformance tests for one storage backend.

    Subclasses must override the ``storage`` fixture (a fresh, empty storage per test) and may
    override :meth:`raw_get` to let the suite check writes against the backend's ground truth.
    """

    concurrency: int = 16
    """Number of concurrent tasks in the race tests."""

    @pytest.fixture
    def storage(self) -> S:
        """A fresh, empty storage. Subclasses must override this fixture."""
        raise NotImplementedError("StorageTests subclasses must provide a `storage` fixture")

    async def raw_get(self, storage: S, key: str) -> bytes | None:
        """Read ``key`` straight from the backend, bypassing the API; ``None`` if it is absent.

        The default skips the tests that need it.
        """
        pytest.skip("this backend provides no raw_get helper")

    # -- round trips -------------------------------------------------------------------------

    @pytest.mark.parametrize(
        "data", [b"", b"x", bytes(range(256)) * 400], ids=["empty", "one-byte", "100KiB"]
    )
    async def test_put_get_round_trip(self, storage: S, data: bytes) -> None:
        await storage.put("chunks/ABC", data)
        got = await storage.get("chunks/ABC")
        assert type(got) is bytes
        assert got == data

    async def test_put_is_visible_in_the_backend(self, storage: S) -> None:
        await storage.put("snapshots/ABC", b"payload")
        assert await self.raw_get(storage, "snapshots/ABC") == b"payload"
        await storage.delete(["snapshots/ABC"])
        assert await self.raw_get(storage, "snapshots/ABC") is None

    async def test_overwrite_replaces(self, storage: S) -> None:
        v1 = await storage.put("k", b"first")
        v2 = await storage.put("k", b"second, longer")
        assert await storage.get("k") == b"second, longer"
        assert v1 != v2
        await storage.put("k", b"3", WriteMode.OVERWRITE)
        assert await storage.get("k") == b"3"

    async def test_put_returns_current_version(self, storage: S) -> None:
        version = await storage.put("k", b"abc")
        assert isinstance(version, VersionInfo)
        assert isinstance(version.etag, str)
        assert version.etag
        assert await storage.get_with_version("k") == (b"abc", version)

    async def test_keys_are_independent(self, storage: S) -> None:
        await storage.put("a/b", b"1")
        await storage.put("a/c", b"2")
        await storage.put("b", b"3")
        assert [await storage.get(k) for k in ("a/b", "a/c", "b")] == [b"1", b"2", b"3"]

    # -- byte ranges -------------------------------------------------------------------------

    @pytest.mark.parametrize(("byte_range", "expected"), _RANGES, ids=repr)
    async def test_byte_range(self, storage: S, byte_range: ByteRange, expected: bytes) -> None:
        await storage.put("data", _DATA)
        assert await storage.get("data", byte_range) == expected

    async def test_byte_range_of_empty_object(self, storage: S) -> None:
        await storage.put("empty", b"")
        for byte_range, _ in _RANGES:
            assert await storage.get("empty", byte_range) == b""

    async def test_byte_range_of_large_object(self, storage: S) -> None:
        data = bytes(range(256)) * 4096  # 1 MiB
        await storage.put("big", data)
        assert await storage.get("big", RangeRequest(300_000, 300_100)) == data[300_000:300_100]
        assert await storage.get("big", SuffixRange(5)) == data[-5:]
        assert await storage.get("big", OffsetRange(len(data) - 7)) == data[-7:]

    @pytest.mark.parametrize("byte_range", _BAD_RANGES, ids=repr)
    async def test_invalid_byte_range(self, storage: S, byte_range: ByteRange) -> None:
        await storage.put("data", _DATA)
        with pytest.raises(InvalidInputError):
            await storage.get("data", byte_range)
        with pytest.raises(InvalidInputError):  # checked before the key is looked up
            await storage.get("missing", byte_range)

    # -- missing keys ------------------------------------------------------------------------

    async def test_get_missing(self, storage: S) -> None:
        with pytest.raises(ObjectNotFoundError):
            await storage.get("snapshots/NOPE")
        with pytest.raises(ObjectNotFoundError):
            await storage.get("snapshots/NOPE", RangeRequest(0, 1))

    async def test_get_with_version_missing(self, storage: S) -> None:
        with pytest.raises(ObjectNotFoundError):
            await storage.get_with_version("refs/branch.main/ref.json")

    async def test_missing_is_a_key_error(self, storage: S) -> None:
        with pytest.raises(KeyError):
            await storage.get("nope")

    async def test_a_prefix_of_keys_is_not_an_object(self, storage: S) -> None:
        await storage.put("a/b/c", b"x")
        for key in ("a", "a/b"):
            assert not await storage.exists(key)
            with pytest.raises(ObjectNotFoundError):
                await storage.get(key)
            with pytest.raises(ObjectNotFoundError):
                await storage.get_with_version(key)
        await storage.delete(["a", "a/b"])  # not objects: ignored
        assert await storage.get("a/b/c") == b"x"

    # -- create-only -------------------------------------------------------------------------

    async def test_create_new_key(self, storage: S) -> None:
        version = await storage.put("refs/tag.v1/ref.json", b"{}", WriteMode.CREATE)
        assert await storage.get_with_version("refs/tag.v1/ref.json") == (b"{}", version)

    async def test_create_existing_key_fails(self, storage: S) -> None:
        original = await storage.put("refs/tag.v1/ref.json", b"original", WriteMode.CREATE)
        with pytest.raises(PreconditionFailedError):
            await storage.put("refs/tag.v1/ref.json", b"intruder", WriteMode.CREATE)
        assert await storage.get_with_version("refs/tag.v1/ref.json") == (b"original", original)

    async def test_create_after_delete(self, storage: S) -> None:
        await storage.put("k", b"1", WriteMode.CREATE)
        await storage.delete(["k"])
        await storage.put("k", b"2", WriteMode.CREATE)
        assert await storage.get("k") == b"2"

    async def test_precondition_failure_is_a_storage_error(self, storage: S) -> None:
        await storage.put("k", b"1")
        with pytest.raises(StorageError):
            await storage.put("k", b"2", WriteMode.CREATE)

    async def test_put_copy_holds_the_data_given(self, storage: S) -> None:
        """A backup of the ``repo`` object: the copy holds the bytes given, whether the
        source still holds them, holds others, or is gone, and survives the source's
        replacement."""
        v1 = await storage.put("repo", b"state 1")
        await storage.put_copy("overwritten/repo.1", b"state 1", source="repo")
        await storage.put("repo", b"state 2", IfMatch(v1))
        assert await storage.get("overwritten/repo.1") == b"state 1"
        await storage.put_copy("overwritten/repo.2", b"state 1 again", source="repo")
        assert await storage.get("overwritten/repo.2") == b"state 1 again"
        await storage.delete(["repo"])
        await storage.put_copy("overwritten/repo.3", b"state 3", source="repo")
        assert await storage.get("overwritten/repo.3") == b"state 3"

    async def test_put_copy_is_create_only(self, storage: S) -> None:
        await storage.put("repo", b"state")
        await storage.put_copy("overwritten/repo.1", b"state", source="repo")
        with pytest.raises(PreconditionFailedError):
            await storage.put_copy("overwritten/repo.1", b"state", source="repo")
        assert await storage.get("overwritten/repo.1") == b"state"

    # -- compare-and-swap --------------------------------------------------------------------

    async def test_supports_conditional_update_is_declared(self, storage: S) -> None:
        assert isinstance(storage.supports_conditional_update, bool)

    async def test_if_match_success(self, storage: S) -> None:
        v1 = await storage.put("repo", b"one")
        v2 = await storage.put("repo", b"two", IfMatch(v1))
        assert await storage.get_with_version("repo") == (b"two", v2)
        v3 = await storage.put("repo", b"three", IfMatch(v2))  # the returned version chains
        assert await storage.get_with_version("repo") == (b"three", v3)

    async def test_if_match_with_version_from_get(self, storage: S) -> None:
        await storage.put("repo", b"one")
        _, version = await storage.get_with_version("repo")
        await storage.put("repo", b"two", IfMatch(version))
        assert await storage.get("repo") == b"two"

    async def test_if_match_stale_version_fails(self, storage: S) -> None:
        stale = await storage.put("repo", b"one")
        current = await storage.put("repo", b"two")
        with pytest.raises(PreconditionFailedError):
            await storage.put("repo", b"three", IfMatch(stale))
        assert await storage.get_with_version("repo") == (b"two", current)

    async def test_if_match_unknown_version_fails(self, storage: S) -> None:
        await storage.put("repo", b"one")
        with pytest.raises(PreconditionFailedError):
            await storage.put("repo", b"two", IfMatch(VersionInfo("no-such-version")))
        assert await storage.get("repo") == b"one"

    async def test_if_match_missing_key_fails(self, storage: S) -> None:
        version = await storage.put("other", b"x")
        with pytest.raises(PreconditionFailedError):
            await storage.put("repo", b"one", IfMatch(version))
        assert not await storage.exists("repo")

    async def test_if_match_deleted_key_fails(self, storage: S) -> None:
        version = await storage.put("repo", b"one")
        await storage.delete(["repo"])
        with pytest.raises(PreconditionFailedError):
            await storage.put("repo", b"two", IfMatch(version))
        assert not await storage.exists("repo")

    async def test_unknown_put_mode_is_rejected(self, storage: S) -> None:
        bogus: PutMode = "create"  # type: ignore[assignment]
        with pytest.raises(InvalidInputError):
            await storage.put("k", b"x", bogus)
        assert not await storage.exists("k")

    # -- races -------------------------------------------------------------------------------

    async def test_concurrent_create_has_one_winner(self, storage: S) -> None:
        payloads = [f"writer-{i}".encode() for i in range(self.concurrency)]
        results = await asyncio.gather(
            *(storage.put("refs/tag.race/ref.json", p, WriteMode.CREATE) for p in payloads),
            return_exceptions=True,
        )
        winners = [p for p, r in zip(payloads, results, strict=True) if isinstance(r, VersionInfo)]
        losers = [r for r in results if isinstance(r, PreconditionFailedError)]
        assert len(winners) == 1, results
        assert len(losers) == self.concurrency - 1, results
        assert await storage.get("refs/tag.race/ref.json") == winners[0]

    async def test_concurrent_if_match_has_no_lost_update(self, storage: S) -> None:
        await storage.put("counter", b"0")
        attempts = await asyncio.gather(
            *(cas_increment(storage, "counter") for _ in range(self.concurrency))
        )
        assert await storage.get("counter") == str(self.concurrency).encode()
        assert max(attempts) > 1, "the tasks never raced; the test proves nothing"

    async def test_concurrent_if_match_from_threads(self, storage: S) -> None:
        """Several threads, each with its own event loop, share one storage object."""
        threads, per_thread = 4, 5
        await storage.put("counter", b"0")
        await asyncio.gather(
            *(
                asyncio.to_thread(asyncio.run, _increments(storage, "counter", per_thread))
                for _ in range(threads)
            )
        )
        assert await storage.get("counter") == str(threads * per_thread).encode()

    # -- listing -----------------------------------------------------------------------------

    async def _populate(self, storage: S) -> None:
        await asyncio.gather(*(storage.put(k, v) for k, v in _LISTING_KEYS.items()))

    @pytest.mark.parametrize(
        ("prefix", "expected"),
        [
            ("", set(_LISTING_KEYS)),
            ("refs/", {"refs/branch.main/ref.json", "refs/tag.v1/ref.json"}),
            ("refs/tag.", {"refs/tag.v1/ref.json"}),
            ("snapshots/1CE", {"snapshots/1CECHNKREP0F1RSTCMT0", "snapshots/1CEABC"}),
            ("snapshots", {k for k in _LISTING_KEYS if k.startswith("snapshots/")}),
            ("c", {"config.yaml", "chunks/AAA"}),
            ("refs/branch.main/ref.json", {"refs/branch.main/ref.json"}),
            ("nothing/", set()),
            ("snapshots/1CEZ", set()),
        ],
    )
    async def test_list_prefix(self, storage: S, prefix: str, expected: set[str]) -> None:
        await self._populate(storage)
        assert await listing(storage, prefix) == {k: len(_LISTING_KEYS[k]) for k in expected}

    async def test_list_metadata(self, storage: S) -> None:
        before = datetime.now(UTC)
        await storage.put("k", b"12345")
        infos = [info async for info in storage.list()]
        assert len(infos) == 1
        info = infos[0]
        assert (info.key, info.size_bytes) == ("k", 5)
        assert info.created_at.utcoffset() == timedelta(0)
        assert before - timedelta(seconds=5) <= info.created_at <= datetime.now(UTC)

    async def test_list_empty(self, storage: S) -> None:
        assert await listing(storage) == {}
        assert await listing(storage, "refs/") == {}

    async def test_is_empty(self, storage: S) -> None:
        assert await storage.is_empty()
        await storage.put("refs/branch.main/ref.json", b"{}")
        assert not await storage.is_empty()
        await storage.delete(["refs/branch.main/ref.json"])
        assert await storage.is_empty()

    async def test_list_after_overwrite_and_delete(self, storage: S) -> None:
        await self._populate(storage)
        await storage.put("chunks/AAA", b"short")
        await storage.delete(["config.yaml", "snapshots/XYZ"])
        expected = {k: len(v) for k, v in _LISTING_KEYS.items()}
        expected["chunks/AAA"] = 5
        del expected["config.yaml"], expected["snapshots/XYZ"]
        assert await listing(storage) == expected

    # -- exists and delete -------------------------------------------------------------------

    async def test_exists(self, storage: S) -> None:
        assert not await storage.exists("k")
        await storage.put("k", b"")
        assert await storage.exists("k")
        await storage.delete(["k"])
        assert not await storage.exists("k")

    async def test_delete(self, storage: S) -> None:
        await self._populate(storage)
        await storage.delete(k for k in _LISTING_KEYS if k.startswith("refs/"))
        assert await listing(storage, "refs/") == {}
        assert set(await listing(storage)) == {
            k for k in _LISTING_KEYS if not k.startswith("refs/")
        }
        with pytest.raises(ObjectNotFoundError):
            await storage.get("refs/tag.v1/ref.json")

    async def test_delete_ignores_missing_keys(self, storage: S) -> None:
        await storage.put("keep", b"1")
        await storage.delete(["missing", "missing/too", "keep/not-a-dir"])
        await storage.delete([])
        assert await storage.get("keep") == b"1"

    async def test_delete_then_recreate(self, storage: S) -> None:
        await storage.put("k", b"1")
        await storage.delete(["k", "k"])
        await storage.put("k", b"2")
        assert await storage.get("k") == b"2"

    # -- key validation ----------------------------------------------------------------------

    @pytest.mark.parametrize("key", INVALID_KEYS, ids=repr)
    async def test_invalid_keys_are_rejected(self, storage: S, key: str) -> None:
        with pytest.raises(InvalidInputError):
            await storage.put(key, b"x")
        with pytest.raises(InvalidInputError):
            await storage.put(key, b"x", WriteMode.CREATE)
        with pytest.raises(InvalidInputError):
            await storage.get(key)
        with pytest.raises(InvalidInputError):
            await storage.get_with_version(key)
        with pytest.raises(InvalidInputError):
            await storage.exists(key)
        with pytest.raises(InvalidInputError):
            await storage.delete([key])
        assert await storage.is_empty()

    # -- pickling ----------------------------------------------------------------------------

    async def test_pickle_round_trip_shares_data(self, storage: S) -> None:
        await storage.put("a", b"1")
        copy = pickle.loads(pickle.dumps(storage))
        assert isinstance(copy, type(storage))
        assert await copy.get("a") == b"1"
        await copy.put("b", b"2")
        assert await storage.get("b") == b"2"
        _, version = await storage.get_with_version("a")
        await copy.put("a", b"3", IfMatch(version))  # versions mean the same through the copy
        assert await storage.get("a") == b"3"
