"""IcechunkStore.array_chunk_iterator, sync_clear and getsize_prefix, as the real 2.3.0 has them.

The expected values were read off the real icechunk 2.3.0 running the same calls.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
import zarr

import icechunk as ic


def _collect(store: ic.IcechunkStore, path: str, batch_size: int = 100_000) -> list[Any]:
    async def run() -> list[Any]:
        return [batch async for batch in store.array_chunk_iterator(path, batch_size)]

    return asyncio.run(run())


def _rows(batches: list[Any]) -> dict[tuple[int, ...], tuple[int, str, int, int, bytes | None]]:
    rows = {}
    for coords, kinds, paths, offsets, lengths, inlined in batches:
        assert coords.dtype == np.uint32 and kinds.dtype == np.uint8
        assert offsets.dtype == np.uint64 and lengths.dtype == np.uint64
        assert isinstance(paths, list) and isinstance(inlined, dict)
        assert len(coords) == len(kinds) == len(paths) == len(offsets) == len(lengths)
        for i in range(len(coords)):
            key = tuple(int(c) for c in coords[i])
            rows[key] = (int(kinds[i]), paths[i], int(offsets[i]), int(lengths[i]), inlined.get(i))
        assert set(inlined) == {i for i in range(len(kinds)) if kinds[i] == 3}
    return rows


@pytest.fixture
def session() -> ic.Session:
    repo = ic.Repository.create(
        ic.in_memory_storage(), config=ic.RepositoryConfig(inline_chunk_threshold_bytes=40)
    )
    s = repo.writable_session("main")
    a = zarr.group(s.store).create_array(
        "g/a", shape=(4, 4), chunks=(2, 2), dtype="f8", fill_value=0, compressors=None
    )
    a[0:2, 0:2] = 1
    s.commit("inline chunk")
    s = repo.writable_session("main")
    s.store.set_virtual_ref(
        "g/a/c/0/1", "s3://bucket/x.nc", offset=10, length=64, validate_container=False
    )
    return s


def test_array_chunk_iterator_yields_every_kind_with_uncommitted_changes(
    session: ic.Session,
) -> None:
    a = zarr.open_array(session.store, path="g/a")
    a[2:4, 2:4] = np.arange(4.0).reshape(2, 2)  # 32 bytes: inline
    big = zarr.open_array(session.store, path="g/a")
    assert big.shape == (4, 4)
    rows = _rows(_collect(session.store, "/g/a"))
    assert set(rows) == {(0, 0), (0, 1), (1, 1)}
    assert rows[(0, 0)] == (3, "", 0, 32, np.ones(4).tobytes())
    assert rows[(0, 1)] == (2, "s3://bucket/x.nc", 10, 64, None)
    assert rows[(1, 1)][:4] == (3, "", 0, 32)
    # the same through the relative path form
    assert _rows(_collect(session.store, "g/a")) == rows


def test_array_chunk_iterator_native_chunks_carry_their_chunk_id() -> None:
    repo = ic.Repository.create(
        ic.in_memory_storage(), config=ic.RepositoryConfig(inline_chunk_threshold_bytes=0)
    )
    s = repo.writable_session("main")
    a = zarr.create_array(s.store, name="a", shape=(4,), chunks=(2,), dtype="i4", fill_value=0)
    a[:] = [1, 2, 3, 4]
    rows = _rows(_collect(s.store, "a"))
    assert sorted(rows) == [(0,), (1,)]
    for kind, path, offset, length, inline in rows.values():
        assert (kind, offset, inline) == (1, 0, None)
        assert len(path) == 20 and path.isalnum() and path.isupper()  # base32 chunk id
        assert length > 0


def test_array_chunk_iterator_batches_and_closes(session: ic.Session) -> None:
    batches = _collect(session.store, "g/a", batch_size=1)
    assert [len(b[0]) for b in batches] == [1, 1]

    async def close_early() -> None:
        it = session.store.array_chunk_iterator("g/a", 1)
        await anext(it)
        await it.aclose()
        with pytest.raises(StopAsyncIteration):
            await anext(it)

    asyncio.run(close_early())


def test_array_chunk_iterator_of_groups_and_missing_paths_yields_nothing(
    session: ic.Session,
) -> None:
    assert _collect(session.store, "/") == []
    assert _collect(session.store, "g") == []
    assert _collect(session.store, "nope") == []


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_array_chunk_iterator_refuses_bad_batch_size(session: ic.Session, bad: Any) -> None:
    with pytest.raises(ic.InvalidInputError, match="batch_size"):
        session.store.array_chunk_iterator("g/a", bad)


def test_sync_clear_deletes_everything_but_keeps_history(session: ic.Session) -> None:
    session.store.sync_clear()

    async def keys() -> list[str]:
        return [k async for k in session.store.list()]

    assert asyncio.run(keys()) == []  # the root group too, as in the real one
    assert session.has_uncommitted_changes
    session.commit("cleared")
    repo = session._repo
    history = [s.message for s in repo.ancestry(branch="main")]
    assert history[:2] == ["cleared", "inline chunk"]


def test_sync_clear_on_a_read_only_session_is_refused(session: ic.Session) -> None:
    ro = session._repo.readonly_session("main")
    with pytest.raises(ic.ReadOnlyError):
        ro.store.sync_clear()
    assert "g" in dict(zarr.open_group(ro.store, mode="r").members())


def test_getsize_prefix_sums_metadata_and_chunks(session: ic.Session) -> None:
    store = session.store

    async def sizes() -> tuple[int, int]:
        total = await store.getsize_prefix("g/a")
        parts = [await store.getsize(k) async for k in store.list_prefix("g/a")]
        return total, sum(parts)

    total, expected = asyncio.run(sizes())
    assert total == expected > 32 + 64
