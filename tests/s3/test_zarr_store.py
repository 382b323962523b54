"""zarr's ``StoreTests`` conformance suite on ``IcechunkStore`` over S3-compatible storage.

The same suite (and the same Icechunk-specific overrides) as ``tests/test_store.py``, with the
repository in a bucket of a real S3 server: SeaweedFS with spec 2, moto with spec 1.
"""

from __future__ import annotations

import uuid

import pytest

import icechunk
import tests.test_store as local_suite
from icechunk.storage import s3_storage
from tests.s3._servers import S3Server

CASES = [("seaweedfs", 2), ("moto", 1)]
_BUCKETS: dict[str, str] = {}


class TestIcechunkStoreOnS3(local_suite.TestIcechunkStore):
    @pytest.fixture(params=CASES, ids=[f"{server}-spec{spec}" for server, spec in CASES])
    def store_repo(  # type: ignore[override]
        self, request: pytest.FixtureRequest
    ) -> icechunk.Repository:
        server_name, spec = request.param
        server: S3Server = request.getfixturevalue(f"{server_name}_server")
        # one bucket per server, a fresh prefix per test: SeaweedFS allots volumes per bucket
        # and answers HTTP 500 once a few hundred buckets have used them up
        key = f"{server_name}-{id(server)}"
        if key not in _BUCKETS:
            _BUCKETS[key] = server.new_bucket()
        prefix = f"store-tests/{uuid.uuid4().hex}"
        storage = s3_storage(**server.storage_kwargs(_BUCKETS[key], prefix))
        return icechunk.Repository.create(storage, spec_version=spec)
