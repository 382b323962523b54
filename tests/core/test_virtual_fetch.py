"""``icechunk._core.virtual_fetch.fetch``: reading virtual chunk bytes, refusing changed objects."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from icechunk._core.payloads import VirtualPayload
from icechunk._core.virtual_fetch import fetch
from icechunk._sync import sync
from icechunk.errors import InvalidInputError, ObjectNotFoundError, StorageError
from icechunk.virtual import UnauthorizedVirtualChunkContainerError, VirtualChunkModifiedError
from tests.core._virtual import local_container_repo


def _file(data: Path, content: bytes = b"0123456789") -> str:
    (data / "f.bin").write_bytes(content)
    return f"file://{data}/f.bin"


def test_reads_the_range_relative_to_the_chunk_offset(tmp_path: Path) -> None:
    objects, data, _ = local_container_repo(tmp_path)
    payload = VirtualPayload(_file(data), offset=2, length=6)
    assert sync(fetch(objects, payload, 0, 6)) == b"234567"
    assert sync(fetch(objects, payload, 1, 3)) == b"34"
    assert sync(fetch(objects, payload, 3, 3)) == b""


def test_a_modified_object_is_refused(tmp_path: Path) -> None:
    objects, data, _ = local_container_repo(tmp_path)
    url = _file(data)
    os.utime(data / "f.bin", (2_000_000_000, 2_000_000_000))
    recorded = 1_000_000_000  # the reference predates the file's modification time
    with pytest.raises(VirtualChunkModifiedError, match="last modified"):
        sync(fetch(objects, VirtualPayload(url, 0, 4, None, recorded), 0, 4))
    with pytest.raises(VirtualChunkModifiedError, match="ETag"):
        sync(fetch(objects, VirtualPayload(url, 0, 4, '"not-the-etag"'), 0, 4))
    # a checksum time after the modification passes
    assert sync(fetch(objects, VirtualPayload(url, 0, 4, None, 2_000_000_001), 0, 4)) == b"0123"


def test_short_and_missing_objects(tmp_path: Path) -> None:
    objects, data, _ = local_container_repo(tmp_path)
    url = _file(data, b"abc")
    with pytest.raises(StorageError, match="not enough data"):
        sync(fetch(objects, VirtualPayload(url, 0, 10), 0, 10))
    with pytest.raises(ObjectNotFoundError):
        sync(fetch(objects, VirtualPayload(f"file://{data}/missing.bin", 0, 1), 0, 1))


def test_containers_and_authorization(tmp_path: Path) -> None:
    objects, _, prefix = local_container_repo(tmp_path / "a")
    with pytest.raises(InvalidInputError, match="no virtual chunk container"):
        sync(fetch(objects, VirtualPayload("s3://other/k", 0, 1), 0, 1))
    with pytest.raises(InvalidInputError, match="path segments"):
        sync(fetch(objects, VirtualPayload(f"{prefix}../secret", 0, 1), 0, 1))
    unauthorized, data_b, _ = local_container_repo(tmp_path / "b", authorize=False)
    with pytest.raises(UnauthorizedVirtualChunkContainerError):
        sync(fetch(unauthorized, VirtualPayload(_file(data_b), 0, 1), 0, 1))
