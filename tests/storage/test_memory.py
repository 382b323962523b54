"""In-memory storage: the conformance suite plus its process-sharing rules."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest

from icechunk.errors import StorageError
from icechunk.storage import InMemoryStorage, Storage, in_memory_storage
from icechunk.testing.storage import StorageTests


class TestInMemoryStorage(StorageTests[InMemoryStorage]):
    @pytest.fixture
    def storage(self) -> InMemoryStorage:
        return InMemoryStorage()

    async def raw_get(self, storage: InMemoryStorage, key: str) -> bytes | None:
        assert storage._bucket is not None
        entry = storage._bucket.objects.get(key)
        return None if entry is None else entry.data


def _get_in_child(storage: Storage, key: str) -> bytes:
    return asyncio.run(storage.get(key))


def _echo(storage: Storage) -> Storage:
    return storage


async def test_factory_returns_fresh_storage() -> None:
    a, b = in_memory_storage(), in_memory_storage()
    assert isinstance(a, InMemoryStorage)
    await a.put("k", b"1")
    assert not await b.exists("k")
    assert a != b
    assert a == pickle.loads(pickle.dumps(a))


async def test_copy_in_another_process_fails_clearly() -> None:
    storage = InMemoryStorage()
    await storage.put("k", b"1")
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        future = pool.submit(_get_in_child, storage, "k")
        with pytest.raises(StorageError, match="cannot be shared across processes") as info:
            await asyncio.wrap_future(future)
        # The foreign copy still names its owner: sent back home, it reaches the data again.
        back = await asyncio.wrap_future(pool.submit(_echo, storage))
    assert "local_filesystem_storage" in str(info.value)
    assert back == storage
    assert await back.get("k") == b"1"


async def test_copy_outliving_the_original_fails_clearly() -> None:
    storage = InMemoryStorage()
    await storage.put("k", b"1")
    pickled = pickle.dumps(storage)
    del storage
    gc.collect()
    orphan = pickle.loads(pickled)  # loading works; using does not
    with pytest.raises(StorageError, match="no longer exists"):
        await orphan.get("k")


async def test_copies_keep_the_data_alive() -> None:
    storage = InMemoryStorage()
    await storage.put("k", b"1")
    copy = pickle.loads(pickle.dumps(storage))
    del storage
    gc.collect()
    assert await copy.get("k") == b"1"
