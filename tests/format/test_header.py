"""The 39-byte header and the zstd framing."""

from __future__ import annotations

import os

import pytest
import zstandard

from icechunk.errors import ErrorKind, FormatError, InvalidInputError
from icechunk.format.header import (
    HEADER_SIZE,
    IMPL_NAME,
    MAGIC,
    decode_object,
    decompress,
    encode_object,
    make_header,
)
from icechunk.format.model import FileType

NAME = "snapshots/ABCDEFGHJKMNPQRSTVWX"


def test_header_layout() -> None:
    h = make_header(FileType.MANIFEST, 2)
    assert len(h) == HEADER_SIZE == 39
    assert h[:12] == MAGIC == b"ICE\xf0\x9f\xa7\x8aCHUNK"
    assert h[12:36] == IMPL_NAME.encode().ljust(24, b" ")
    assert h[36:] == bytes([2, 2, 1])


def test_make_header_rejects_unknown_spec() -> None:
    with pytest.raises(InvalidInputError) as e:
        make_header(FileType.SNAPSHOT, 3)
    assert e.value.kind == ErrorKind.UNSUPPORTED_SPEC_VERSION


@pytest.mark.parametrize("spec", [1, 2])
def test_round_trip_writes_content_size(spec: int) -> None:
    body = os.urandom(100) + b"x" * 5000
    data = encode_object(body, FileType.TRANSACTION_LOG, spec)
    assert zstandard.get_frame_parameters(data[HEADER_SIZE:]).content_size == len(body)
    assert decode_object(data, NAME, FileType.TRANSACTION_LOG) == (spec, body)


def test_accepts_frames_without_content_size() -> None:
    """Real icechunk 1.x streams its zstd frames and records no content size."""
    body = b"abc" * 10000
    frame = zstandard.ZstdCompressor(write_content_size=False).compress(body)
    assert zstandard.get_frame_parameters(frame).content_size == zstandard.CONTENTSIZE_UNKNOWN
    data = make_header(FileType.SNAPSHOT, 1) + frame
    assert decode_object(data, NAME, FileType.SNAPSHOT) == (1, body)


def test_large_payload_multithreaded_compression() -> None:
    body = os.urandom(9 << 20)
    data = encode_object(body, FileType.MANIFEST, 2)
    assert decode_object(data, NAME, FileType.MANIFEST)[1] == body


def _with(data: bytes, pos: int, value: int) -> bytes:
    return data[:pos] + bytes([value]) + data[pos + 1 :]


@pytest.mark.parametrize(
    ("pos", "value", "message"),
    [
        (0, ord("X"), "bad magic"),
        (37, 2, "file type 2"),
        (37, 99, "unknown type 99"),
        (36, 3, "unsupported spec version 3"),
        (36, 0, "unsupported spec version 0"),
        (38, 0, "unsupported compression 0"),
        (38, 2, "unsupported compression 2"),
    ],
)
def test_header_errors_name_the_object(pos: int, value: int, message: str) -> None:
    data = encode_object(b"payload", FileType.SNAPSHOT, 1)
    with pytest.raises(FormatError) as e:
        decode_object(_with(data, pos, value), NAME, FileType.SNAPSHOT)
    assert NAME in str(e.value)
    assert message in str(e.value)


def test_repo_info_spec_versions_restricted() -> None:
    data = encode_object(b"x", FileType.REPO_INFO, 1)
    with pytest.raises(FormatError, match="unsupported spec version 1"):
        decode_object(data, "repo", FileType.REPO_INFO, spec_versions=(2,))


@pytest.mark.parametrize("size", range(HEADER_SIZE + 1))
def test_short_input(size: int) -> None:
    data = encode_object(b"payload" * 10, FileType.SNAPSHOT, 2)[:size]
    with pytest.raises(FormatError, match="snapshots/"):
        decode_object(data, NAME, FileType.SNAPSHOT)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"", "invalid zstd frame"),
        (b"garbage garbage garbage", "invalid zstd frame"),
        (b"\x28\xb5\x2f\xfd" + b"\xff" * 20, "zstd"),
    ],
)
def test_zstd_garbage(frame: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        decompress(frame, NAME)


def test_truncated_and_trailing_frames() -> None:
    body = os.urandom(3000)
    for writes_size in (True, False):
        frame = zstandard.ZstdCompressor(write_content_size=writes_size).compress(body)
        for cut in range(1, len(frame), 97):
            with pytest.raises(FormatError, match=NAME):
                decompress(frame[:cut], NAME)
        with pytest.raises(FormatError, match="after the zstd frame"):
            decompress(frame + b"\x00", NAME)
        with pytest.raises(FormatError, match="after the zstd frame"):
            decompress(frame + frame, NAME)


def test_output_size_is_bounded() -> None:
    """A small frame that expands hugely (a zstd bomb) is stopped near the limit."""
    bomb = zstandard.ZstdCompressor(write_content_size=False).compress(bytes(64 << 20))
    assert len(bomb) < 10_000
    with pytest.raises(FormatError, match="more than 1048576 bytes"):
        decompress(bomb, NAME, max_size=1 << 20)
    declared = zstandard.ZstdCompressor().compress(bytes(8 << 20))
    with pytest.raises(FormatError, match="declares 8388608 bytes"):
        decompress(declared, NAME, max_size=1 << 20)


def test_content_size_mismatch() -> None:
    body = b"hello world" * 10
    frame = bytearray(zstandard.ZstdCompressor().compress(body))
    # frame header: magic (4), descriptor (1) then the 1-byte content size for small frames
    descriptor = frame[4]
    assert descriptor & 0xC0 == 0 and descriptor & 0x20  # single segment, 1-byte size
    frame[5] = len(body) - 1
    with pytest.raises(FormatError, match=NAME):
        decompress(bytes(frame), NAME)
