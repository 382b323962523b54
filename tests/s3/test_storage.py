"""The storage conformance suite against real S3 servers, plus what only object stores need."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from icechunk.storage import ObjectStoreStorage, s3_storage
from icechunk.testing.storage import StorageTests
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
