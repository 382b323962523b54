"""The storage conformance suite against real S3 servers, plus what only object stores need."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from icechunk.errors import PreconditionFailedError
from icechunk.storage import IfMatch, ObjectStoreStorage, RangeRequest, WriteMode, s3_storage
from icechunk.storage.obstore import WRITE_ID_METADATA_KEY
from icechunk.testing.storage import StorageTests
from tests.s3._faults import (
    DropRule,
    Exchange,
    LossyProxy,
    drop_first,
    drop_first_conditional_put,
    never,
)
from tests.s3._servers import S3Server


class TestObjectStoreStorage(StorageTests[ObjectStoreStorage]):
    @pytest.fixture(autouse=True)
    def _server(self, s3_server: S3Server) -> None:
        self.server = s3_server

    @pytest.fixture
    def storage(self, s3_server: S3Server, bucket: str) -> ObjectStoreStorage:
        return s3_storage(**s3_server.storage_kwargs(bucket, "repo"))

    async def raw_get(self, storage: ObjectStoreStorage, key: str) -> bytes | None:
        def read() -> bytes | None:
            client: Any = self.server.client()
            try:
                body = client.get_object(Bucket=storage.bucket, Key=f"{storage.prefix}/{key}")
            except client.exceptions.NoSuchKey:
                return None
            data: bytes = body["Body"].read()
            return data

        return await asyncio.to_thread(read)


# -- what only object stores need -------------------------------------------------------------


@pytest.fixture
def lossy(s3_server: S3Server) -> Iterator[Callable[[DropRule], LossyProxy]]:
    proxies: list[LossyProxy] = []
    host, port = s3_server.endpoint.removeprefix("http://").split(":")

    def make(rule: DropRule) -> LossyProxy:
        proxies.append(LossyProxy((host, int(port)), rule))
        return proxies[-1]

    yield make
    for proxy in proxies:
        proxy.close()


def _puts(proxy: LossyProxy, key: str) -> list[Exchange]:
    return [e for e in proxy.exchanges if e.method == "PUT" and e.target.endswith(key)]


async def test_lost_response_of_create_is_not_a_conflict(
    s3_server: S3Server, bucket: str, lossy: Callable[[DropRule], LossyProxy]
) -> None:
    """Design doc 017: the create landed but its 200 was lost; the retry's 412 is our own."""
    proxy = lossy(drop_first_conditional_put("refs/tag.v1/ref.json"))
    kwargs = {**s3_server.storage_kwargs(bucket, "repo"), "endpoint_url": proxy.endpoint}
    storage = s3_storage(**kwargs)
    version = await storage.put("refs/tag.v1/ref.json", b"mine", WriteMode.CREATE)
    puts = _puts(proxy, "refs/tag.v1/ref.json")
    assert [(p.status, p.dropped) for p in puts] == [(200, True), (412, False)]
    assert await storage.get_with_version("refs/tag.v1/ref.json") == (b"mine", version)
    with pytest.raises(PreconditionFailedError):  # a real conflict is still one
        await storage.put("refs/tag.v1/ref.json", b"other", WriteMode.CREATE)


async def test_lost_response_of_compare_and_swap_is_not_a_conflict(
    s3_server: S3Server, bucket: str, lossy: Callable[[DropRule], LossyProxy]
) -> None:
    proxy = lossy(drop_first_conditional_put("/repo", count=1))
    kwargs = {**s3_server.storage_kwargs(bucket, "r"), "endpoint_url": proxy.endpoint}
    storage = s3_storage(**kwargs)
    v1 = await storage.put("repo", b"one")
    v2 = await storage.put("repo", b"two", IfMatch(v1))
    statuses = [(p.status, p.dropped) for p in _puts(proxy, "/repo")]
    assert statuses[-2:] == [(200, True), (412, False)]
    assert await storage.get_with_version("repo") == (b"two", v2)
    with pytest.raises(PreconditionFailedError):
        await storage.put("repo", b"three", IfMatch(v1))
    assert await storage.get("repo") == b"two"


async def test_without_write_ids_a_lost_response_is_a_false_conflict(
    s3_server: S3Server, bucket: str, lossy: Callable[[DropRule], LossyProxy]
) -> None:
    """The control experiment: plain obstore reports the same lost response as a conflict."""
    import obstore
    from obstore.store import S3Store

    proxy = lossy(drop_first_conditional_put("/k"))
    store = S3Store(
        bucket,
        config={
            "endpoint": proxy.endpoint,
            "access_key_id": s3_server.key,
            "secret_access_key": s3_server.secret,
            "region": s3_server.region,
        },
        client_options={"allow_http": True},
    )
    with pytest.raises(obstore.exceptions.AlreadyExistsError):
        await obstore.put_async(store, "k", b"x", mode="create")
    assert s3_server.client().get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"


async def test_large_object_round_trip(s3_server: S3Server, bucket: str) -> None:
    storage = s3_storage(**s3_server.storage_kwargs(bucket, "big"))
    data = np.random.default_rng(1).bytes(20 * 1024 * 1024 + 17)
    version = await storage.put("chunks/BIG", data)
    assert await storage.get("chunks/BIG") == data
    part = RangeRequest(9_000_000, 9_000_100)
    assert await storage.get("chunks/BIG", part) == data[9_000_000:9_000_100]
    assert await storage.get_with_version("chunks/BIG") == (data, version)
    head = s3_server.client().head_object(Bucket=bucket, Key="big/chunks/BIG")
    assert head["ContentLength"] == len(data) and head["ETag"].strip('"').endswith("-3")


async def test_conditional_puts_carry_a_write_id(s3_server: S3Server, bucket: str) -> None:
    storage = s3_storage(**s3_server.storage_kwargs(bucket, "ids"))
    v1 = await storage.put("repo", b"1", WriteMode.CREATE)
    first = s3_server.client().head_object(Bucket=bucket, Key="ids/repo")["Metadata"]
    await storage.put("repo", b"2", IfMatch(v1))
    second = s3_server.client().head_object(Bucket=bucket, Key="ids/repo")["Metadata"]
    assert uuid.UUID(first[WRITE_ID_METADATA_KEY])
    assert first[WRITE_ID_METADATA_KEY] != second[WRITE_ID_METADATA_KEY]


async def test_reads_are_retried_after_a_dropped_connection(
    s3_server: S3Server, bucket: str, lossy: Callable[[DropRule], LossyProxy]
) -> None:
    proxy = lossy(drop_first("GET", "/chunks/A"))
    kwargs = {**s3_server.storage_kwargs(bucket, "r"), "endpoint_url": proxy.endpoint}
    storage = s3_storage(**kwargs)
    await storage.put("chunks/A", b"payload")
    assert await storage.get("chunks/A") == b"payload"
    gets = [e.dropped for e in proxy.exchanges if e.method == "GET" and "chunks/A" in e.target]
    assert gets == [True, False]


async def test_concurrency_is_bounded(
    s3_server: S3Server, bucket: str, lossy: Callable[[DropRule], LossyProxy]
) -> None:
    proxy = lossy(never)
    kwargs = {**s3_server.storage_kwargs(bucket, "r"), "endpoint_url": proxy.endpoint}
    storage = s3_storage(**kwargs, max_concurrent_requests=3)
    await asyncio.gather(*(storage.put(f"chunks/{i}", b"x" * 1000) for i in range(24)))
    assert (
        sorted(await asyncio.gather(*(storage.get(f"chunks/{i}") for i in range(24))))
        == [b"x" * 1000] * 24
    )
    assert 1 < proxy.max_in_flight <= 3
