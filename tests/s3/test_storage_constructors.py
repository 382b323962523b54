"""The real Storage constructors and the flavoured S3 factories (R2, Tigris, Hugging Face)
against the real S3 servers, refreshable credentials calling the user's function, and
StorageSettings (retries, timeouts) honoured by the object-store backend."""

from __future__ import annotations

import functools
import itertools
import pickle
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import zarr

import icechunk as ic
from icechunk.errors import StorageError
from tests.s3._servers import S3Server


def _options(server: S3Server) -> ic.S3Options:
    return ic.S3Options(
        region=server.region, endpoint_url=server.endpoint, allow_http=True, force_path_style=True
    )


def _roundtrip(storage: ic.Storage) -> None:
    repo = ic.Repository.create(storage)
    session = repo.writable_session("main")
    array = zarr.group(store=session.store).create_array("x", shape=(4,), chunks=(2,), dtype="i2")
    array[:] = np.arange(4, dtype="i2")
    session.commit("c")
    again = ic.Repository.open(pickle.loads(pickle.dumps(storage)))
    read = zarr.open_array(again.readonly_session(branch="main").store, path="x", mode="r")
    np.testing.assert_array_equal(read[:], np.arange(4, dtype="i2"))


def test_new_s3_with_static_credentials_and_listing(s3_server: S3Server, bucket: str) -> None:
    creds = ic.s3_static_credentials(
        access_key_id=s3_server.key, secret_access_key=s3_server.secret
    )
    storage = ic.Storage.new_s3(_options(s3_server), bucket, "repo", creds, headers={"x-ic": "1"})
    _roundtrip(storage)
    keys = dict(storage.list_objects())
    assert "repo" in keys and all(size > 0 for size in keys.values())
    infos = storage.list_objects_metadata(prefix="snapshots/")
    assert infos and all(i.key.startswith("snapshots/") and i.created_at.tzinfo for i in infos)
    assert storage.list_objects(prefix="snapshots/") == [(i.key, i.size_bytes) for i in infos]


def _counted(counter: Path, key: str, secret: str) -> ic.S3StaticCredentials:
    with counter.open("a") as out:
        out.write("x")
    return ic.S3StaticCredentials(key, secret, expires_after=datetime.now(UTC) + timedelta(hours=1))


def test_refreshable_credentials_call_the_function(
    s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    counter = tmp_path / "calls"
    get = functools.partial(_counted, counter, s3_server.key, s3_server.secret)
    storage = ic.s3_storage(
        bucket=bucket,
        prefix="refresh",
        region=s3_server.region,
        endpoint_url=s3_server.endpoint,
        allow_http=True,
        force_path_style=True,
        get_credentials=get,
    )
    _roundtrip(storage)
    assert counter.read_text().count("x") >= 1
    # Scattered: the first answer travels with the value, the function is not called at once.
    before = counter.read_text()
    scattered = ic.Storage.new_s3(
        _options(s3_server), bucket, "refresh", ic.s3_refreshable_credentials(get, True)
    )
    assert counter.read_text() == before + "x"  # called once, by scatter_initial_credentials
    assert ic.Repository.exists(pickle.loads(pickle.dumps(scattered)))


def test_r2_and_tigris_reach_an_overridden_endpoint(s3_server: S3Server, bucket: str) -> None:
    common = {
        "endpoint_url": s3_server.endpoint,
        "allow_http": True,
        "access_key_id": s3_server.key,
        "secret_access_key": s3_server.secret,
    }
    _roundtrip(ic.r2_storage(bucket=bucket, prefix="r2", region=s3_server.region, **common))
    # Without a bucket, the first segment of the prefix is the bucket (as the real one).
    no_bucket = ic.r2_storage(prefix=f"{bucket}/r2", region=s3_server.region, **common)
    assert ic.Repository.exists(no_bucket)
    _roundtrip(ic.tigris_storage(bucket=bucket, prefix="t", region=s3_server.region, **common))
    # Weak consistency: read-only, as the real one.
    weak = ic.tigris_storage(bucket=bucket, prefix="t", use_weak_consistency=True, **common)
    assert ic.Repository.exists(weak)
    repo = ic.Repository.open(weak)
    with pytest.raises(StorageError, match="read-only"):
        repo.create_tag("v1", repo.lookup_branch("main"))


def test_flavoured_factories_argument_handling() -> None:
    r2 = ic.r2_storage(bucket="b", prefix="p", account_id="acc", anonymous=True)
    assert r2._endpoint == "https://acc.r2.cloudflarestorage.com" and r2._config["region"] == "auto"
    with pytest.raises(StorageError, match="Either endpoint_url or account_id"):
        ic.r2_storage(bucket="b", prefix="p")
    with pytest.raises(StorageError, match="requires a region"):
        ic.tigris_storage(bucket="b", prefix="p", anonymous=True)
    weak = ic.tigris_storage(bucket="b", prefix="p", use_weak_consistency=True, anonymous=True)
    assert weak._endpoint == "https://t3.storage.dev"
    hf = ic.hf_storage(
        bucket="b", prefix="p", namespace="me", access_key_id="HFAK1", secret_access_key="s"
    )
    assert hf._endpoint == "https://s3.hf.co/me" and hf._config["region"] == "us-east-1"
    with pytest.raises(ValueError, match="namespace"):
        ic.hf_storage(bucket="b", prefix="p", namespace="a/b")
    with pytest.raises(StorageError, match="only valid with an empty prefix"):
        ic.s3_storage(bucket="b", prefix="p", legacy_rooted_keys=True, anonymous=True)


def test_hf_without_network_is_a_storage_error() -> None:
    hf = ic.hf_storage(
        bucket="b", prefix="p", namespace="me", access_key_id="HFAK1", secret_access_key="s"
    )
    settings = ic.StorageSettings(retries=ic.StorageRetriesSettings(max_tries=1))
    with pytest.raises(StorageError):
        ic.Repository.exists(hf, storage_settings=settings)


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A TCP server that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def test_storage_settings_timeouts_bound_a_silent_server(silent_endpoint: str) -> None:
    storage = ic.s3_storage(
        bucket="b",
        prefix="p",
        region="us-east-1",
        endpoint_url=silent_endpoint,
        allow_http=True,
        anonymous=True,
        network_stream_timeout_seconds=0,
        check_bucket=False,
    )
    settings = ic.StorageSettings(
        retries=ic.StorageRetriesSettings(max_tries=1),
        timeouts=ic.StorageTimeoutSettings(operation_attempt_timeout_ms=300),
    )
    configured = ic.storage.apply_settings(storage, settings)
    assert configured._client_options["timeout"] == timedelta(milliseconds=300)
    assert configured.default_settings().retries == settings.retries
    started = time.monotonic()
    with pytest.raises(StorageError):
        ic.Repository.exists(storage, storage_settings=settings)
    assert time.monotonic() - started < 10  # without the settings: the 10-minute default
    # RepositoryConfig.storage reaches the repository's storage as well.
    config = ic.RepositoryConfig(storage=settings)
    repo = ic.Repository(storage, 2, config)
    assert repo.storage._client_options["timeout"] == timedelta(milliseconds=300)


def test_split_range_covers_the_range_in_at_most_max_parts() -> None:
    from icechunk.storage._obstore import split_range

    assert split_range(0, 100, None, 10) == [(0, 100)]
    assert split_range(0, 100, 4, 1000) == [(0, 100)]
    assert split_range(10, 110, 4, 10) == [(10, 35), (35, 60), (60, 85), (85, 110)]
    assert split_range(0, 30, 8, 10) == [(0, 10), (10, 20), (20, 30)]
    for start, end, parts, ideal in ((0, 1, 3, 1), (5, 1000, 7, 33), (0, 999, 2, 500)):
        pieces = split_range(start, end, parts, ideal)
        assert pieces[0][0] == start and pieces[-1][1] == end and len(pieces) <= parts
        assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))


def test_concurrency_settings_split_range_reads(s3_server: S3Server, bucket: str) -> None:
    import asyncio

    from icechunk.storage import RangeRequest, apply_settings

    storage = ic.s3_storage(**s3_server.storage_kwargs(bucket, "split"))
    data = bytes(range(256)) * 4096  # 1 MiB
    asyncio.run(storage.put("chunks/big", data))
    settings = ic.StorageSettings(
        concurrency=ic.StorageConcurrencySettings(
            max_concurrent_requests_for_object=4, ideal_concurrent_request_size=100_000
        )
    )
    split = apply_settings(storage, settings)
    assert split.default_settings().concurrency == settings.concurrency
    for start, end in ((0, len(data)), (12_345, 700_001), (900_000, len(data) + 500_000)):
        got = asyncio.run(split.get("chunks/big", RangeRequest(start, end)))
        assert got == data[start:end]
    assert pickle.loads(pickle.dumps(split))._concurrency == settings.concurrency
