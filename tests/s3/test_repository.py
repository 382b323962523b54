"""Repositories on S3: zarr round trips in both spec versions, large chunks, pickling with
credentials, and clear, bounded failures (wrong credentials, missing bucket, dead endpoint)."""

from __future__ import annotations

import pickle
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import zarr

import icechunk
from icechunk.errors import StorageError
from icechunk.storage import StorageRetriesSettings, from_url, s3_storage
from tests.s3._servers import S3Server

FAIL_FAST_SECONDS = 5.0  # "a clear StorageError within a bounded time"


def write_sample(session: icechunk.Session) -> dict[str, np.ndarray[Any, Any]]:
    root = zarr.group(store=session.store, attributes={"title": "s3 round trip"})
    temps = root.create_array("weather/temps", shape=(6, 8), chunks=(2, 4), dtype="f4")
    temps[:] = np.arange(48, dtype="f4").reshape(6, 8)
    temps.attrs["units"] = "K"
    flags = root.create_array("flags", shape=(10,), chunks=(10,), dtype="i1", fill_value=-1)
    flags[3:7] = 1
    return {"weather/temps": temps[:], "flags": flags[:]}


@pytest.mark.parametrize("spec", [1, 2], ids=["spec1", "spec2"])
def test_round_trip(s3_server: S3Server, bucket: str, spec: int) -> None:
    storage = s3_storage(**s3_server.storage_kwargs(bucket, "repos/round-trip"))
    repo = icechunk.Repository.create(storage, spec_version=spec)
    session = repo.writable_session("main")
    expected = write_sample(session)
    first = session.commit("first commit")
    session = repo.writable_session("main")
    zarr.open_array(session.store, path="flags", mode="r+")[0] = 9
    expected["flags"][0] = 9
    second = session.commit("second commit")

    # a fresh handle, as another program would open it
    again = s3_storage(**s3_server.storage_kwargs(bucket, "repos/round-trip"))
    reopened = icechunk.Repository.open(again)
    store = reopened.readonly_session("main").store
    for path, data in expected.items():
        np.testing.assert_array_equal(zarr.open_array(store, path=path, mode="r")[:], data)
    assert zarr.open_group(store, mode="r").attrs["title"] == "s3 round trip"
    assert [s.id for s in reopened.ancestry(branch="main")][:2] == [second, first]
    old = reopened.readonly_session(snapshot_id=first).store
    assert zarr.open_array(old, path="flags", mode="r")[0] == -1

    keys = {o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]}
    assert all(k.startswith("repos/round-trip/") for k in keys)
    marker = "repos/round-trip/repo" if spec == 2 else "repos/round-trip/refs/branch.main/ref.json"
    assert marker in keys


def test_large_chunks_use_multipart_upload(s3_server: S3Server, bucket: str) -> None:
    """A 24 MiB chunk goes up as a multipart upload and reads back whole and in ranges."""
    storage = s3_storage(**s3_server.storage_kwargs(bucket, "big"))
    repo = icechunk.Repository.create(storage)
    session = repo.writable_session("main")
    arr = zarr.create_array(
        session.store,
        name="big",
        shape=(3 * 1024 * 1024,),
        chunks=(3 * 1024 * 1024,),
        dtype="f8",
        compressors=None,
    )
    data = np.random.default_rng(0).random(3 * 1024 * 1024)
    arr[:] = data
    session.commit("big chunk")
    back = zarr.open_array(repo.readonly_session("main").store, path="big", mode="r")
    np.testing.assert_array_equal(back[:], data)
    np.testing.assert_array_equal(back[1000:1010], data[1000:1010])

    client = s3_server.client()
    chunks = client.list_objects_v2(Bucket=bucket, Prefix="big/chunks/")["Contents"]
    assert [c["Size"] for c in chunks] == [24 * 1024 * 1024]
    assert chunks[0]["ETag"].strip('"').endswith("-3"), "expected a 3-part multipart upload"


def test_repository_pickles_with_credentials(s3_server: S3Server, bucket: str) -> None:
    kwargs = s3_server.storage_kwargs(bucket, "pickled")
    repo = icechunk.Repository.create(s3_storage(**kwargs))
    copy = pickle.loads(pickle.dumps(repo))
    session = copy.writable_session("main")
    zarr.create_array(session.store, name="a", shape=(4,), chunks=(2,), dtype="i4")[:] = 7
    session.commit("through a pickled copy")
    store = repo.readonly_session("main").store
    assert zarr.open_array(store, path="a", mode="r")[:].tolist() == [7, 7, 7, 7]


def test_secrets_stay_out_of_repr_and_errors(s3_server: S3Server, bucket: str) -> None:
    secret, token = "SUPER-SECRET-key-0123456789", "SESSION-token-9876543210"
    storage = s3_storage(
        **{
            **s3_server.storage_kwargs(bucket, "p"),
            "secret_access_key": secret,
            "session_token": token,
        }
    )
    assert secret not in repr(storage) and token not in repr(storage)
    if s3_server.name == "moto":  # moto accepts any signature: force an error another way
        storage = s3_storage(
            **{
                **s3_server.storage_kwargs("no-such-bucket-x1", "p"),
                "secret_access_key": secret,
                "session_token": token,
            }
        )
    with pytest.raises(StorageError) as info:
        icechunk.Repository.create(storage)
    text = "".join(traceback.format_exception(info.value))
    assert secret not in text and token not in text
    assert pickle.loads(pickle.dumps(storage))._config["secret_access_key"] == secret


def _assert_nothing_written(server: S3Server, bucket: str) -> None:
    assert server.client().list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def _bucket_exists(server: S3Server, bucket: str) -> bool:
    client = server.client()
    try:
        client.head_bucket(Bucket=bucket)
    except client.exceptions.ClientError:
        return False
    return True


# moto does not verify request signatures, so only the real server can refuse credentials
@pytest.mark.parametrize("s3_server", ["seaweedfs"], indirect=True)
def test_wrong_credentials(s3_server: S3Server, bucket: str) -> None:
    storage = s3_storage(
        **{**s3_server.storage_kwargs(bucket, "repo"), "secret_access_key": "not-the-secret"}
    )
    for action in (icechunk.Repository.create, icechunk.Repository.open):
        start = time.monotonic()
        with pytest.raises(StorageError, match="access denied: check the credentials"):
            action(storage)
        assert time.monotonic() - start < FAIL_FAST_SECONDS
    _assert_nothing_written(s3_server, bucket)


def test_missing_bucket(s3_server: S3Server) -> None:
    bucket = "missing-bucket-" + str(time.monotonic_ns())[-8:]
    storage = s3_storage(**s3_server.storage_kwargs(bucket, "repo"))
    for action in (icechunk.Repository.create, icechunk.Repository.open):
        start = time.monotonic()
        with pytest.raises(StorageError, match=f"the bucket '{bucket}' does not exist"):
            action(storage)
        assert time.monotonic() - start < FAIL_FAST_SECONDS
    assert not _bucket_exists(s3_server, bucket)  # SeaweedFS would create it on a PUT


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_endpoint(s3_server: S3Server, bucket: str) -> None:
    kwargs = {
        **s3_server.storage_kwargs(bucket, "repo"),
        "endpoint_url": f"http://127.0.0.1:{_closed_port()}",
    }
    storage = s3_storage(**kwargs)
    for action in (icechunk.Repository.create, icechunk.Repository.open):
        start = time.monotonic()
        with pytest.raises(StorageError, match=r"could not connect to http://127\.0\.0\.1"):
            action(storage)
        assert time.monotonic() - start < FAIL_FAST_SECONDS
    _assert_nothing_written(s3_server, bucket)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conns.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        for c in conns:
            c.close()
        listener.close()


def test_silent_endpoint_times_out(silent_server: int) -> None:
    storage = s3_storage(
        bucket="b",
        prefix="p",
        endpoint_url=f"http://127.0.0.1:{silent_server}",
        allow_http=True,
        access_key_id="k",
        secret_access_key="s",
        region="us-east-1",
        network_stream_timeout_seconds=1,
        retries=StorageRetriesSettings(max_tries=2, initial_backoff_ms=50, max_backoff_ms=100),
    )
    start = time.monotonic()
    with pytest.raises(StorageError, match="s3 storage could not"):
        icechunk.Repository.create(storage)
    assert time.monotonic() - start < FAIL_FAST_SECONDS


def test_from_url(s3_server: S3Server, bucket: str) -> None:
    kwargs = s3_server.storage_kwargs(bucket, "via/url")
    del kwargs["bucket"], kwargs["prefix"]
    storage = from_url(f"s3://{bucket}/via/url", **kwargs)
    icechunk.Repository.create(storage)
    assert icechunk.Repository.exists(s3_storage(**s3_server.storage_kwargs(bucket, "via/url")))
    endpoint = s3_server.endpoint
    assert repr(storage) == f"ObjectStoreStorage('s3://{bucket}/via/url', endpoint={endpoint!r})"


def test_refreshable_credentials(s3_server: S3Server, bucket: str) -> None:
    """``get_credentials`` is called in each process that needs credentials, unless the first
    result was scattered with the pickled storage."""
    import asyncio
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from tests.s3 import _workers

    kwargs = s3_server.storage_kwargs(bucket, "creds")
    del kwargs["access_key_id"], kwargs["secret_access_key"]
    storage = s3_storage(**kwargs, get_credentials=_workers.server_credentials)
    asyncio.run(storage.put("k", b"v"))
    scattered = s3_storage(
        **kwargs, get_credentials=_workers.server_credentials, scatter_initial_credentials=True
    )
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        assert pool.submit(_workers.credential_calls_in_child, storage).result() == (1, b"v")
        assert pool.submit(_workers.credential_calls_in_child, scattered).result() == (0, b"v")
    if s3_server.name == "seaweedfs":  # moto accepts any signature
        wrong = s3_storage(**kwargs, get_credentials=_workers.wrong_credentials)
        with pytest.raises(StorageError, match="access denied"):
            asyncio.run(wrong.get("k"))
