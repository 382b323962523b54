"""Spec-1 ref files."""

from __future__ import annotations

import pytest

from icechunk.errors import FormatError, InvalidInputError
from icechunk.format import decode_ref, encode_ref
from icechunk.format.ids import INITIAL_SNAPSHOT_ID

NAME = "refs/branch.main/ref.json"


def test_exact_bytes() -> None:
    data = encode_ref(INITIAL_SNAPSHOT_ID)
    assert data == b'{"snapshot":"1CECHNKREP0F1RSTCMT0"}'
    assert len(data) == 35
    assert decode_ref(data, NAME) == INITIAL_SNAPSHOT_ID


def test_accepts_whitespace_and_extra_keys() -> None:
    data = b'{ "snapshot" : "1CECHNKREP0F1RSTCMT0", "x": 1 }\n'
    assert decode_ref(data, NAME) == INITIAL_SNAPSHOT_ID


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe",
        b"[]",
        b'{"snapshot": 5}',
        b'{"snap":"1CECHNKREP0F1RSTCMT0"}',
        b'{"snapshot":"1CECHNKREP0F1RSTCMT"}',
        b'{"snapshot":"1CECHNKREP0F1RSTCMT!"}',
        b"[" * 100_000,
    ],
)
def test_corrupt(data: bytes) -> None:
    with pytest.raises(FormatError, match=r"refs/branch\.main/ref\.json"):
        decode_ref(data, NAME)


def test_rejects_bad_ids() -> None:
    with pytest.raises(InvalidInputError):
        encode_ref(b"12345")
