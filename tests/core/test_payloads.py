"""``icechunk._core.payloads``: where a chunk's bytes are."""

from __future__ import annotations

import dataclasses

import pytest

from icechunk._core.payloads import InlinePayload, NativePayload, VirtualPayload


def test_payloads_are_immutable_hashable_values() -> None:
    a = NativePayload(b"\x01" * 12, 0, 10)
    assert a == NativePayload(b"\x01" * 12, 0, 10)
    assert a != NativePayload(b"\x01" * 12, 0, 11)
    assert len({a, NativePayload(b"\x01" * 12, 0, 10), InlinePayload(b"x")}) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.length = 3  # type: ignore[misc]


def test_virtual_payload_has_no_checksum_by_default() -> None:
    v = VirtualPayload("s3://bucket/key.nc", 8, 100)
    assert v.checksum_etag is None
    assert v.checksum_last_modified == 0
    assert v != VirtualPayload("s3://bucket/key.nc", 8, 100, checksum_etag='"e"')


def test_payload_kinds_never_compare_equal() -> None:
    assert InlinePayload(b"abc") != VirtualPayload("file:///abc", 0, 3)
    assert InlinePayload(b"abc") == InlinePayload(b"abc")
