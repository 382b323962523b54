"""JSON metadata values: MessagePack (spec 1) and FlexBuffers (spec 2)."""

from __future__ import annotations

import math
import struct
import time
from typing import Any

import msgpack
import pytest
from flatbuffers import flexbuffers
from hypothesis import given
from hypothesis import strategies as st

from icechunk.errors import ErrorKind, FormatError, InvalidInputError
from icechunk.format.metadata import (
    decode_flexbuffer,
    decode_json_value,
    decode_msgpack,
    encode_flexbuffer,
    encode_json_value,
    encode_msgpack,
)
from tests.format.helpers import flex_values, json_scalars, json_values

NAME = "snapshots/X"
SAMPLES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    2**63,
    2**64 - 1,
    -(2**63),
    1.5,
    0.1,
    -1e300,
    "",
    "ünïcødé 🧊",
    [],
    {},
    [1, "a", None, 2.5],
    {"author": "probe", "k": [1, 2.5, None]},
    {"__icechunk": {"is_root": True}},
    [[[[[1]]]]],
    list(range(300)),
    {"x" * 300: "y" * 70_000},
]


def same(a: Any, b: Any) -> bool:
    """Equality that also compares types (True != 1 here) and treats tuples as lists."""
    if isinstance(a, (list, tuple)):
        return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return isinstance(b, float) and (a == b or (math.isnan(a) and math.isnan(b)))
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("value", SAMPLES)
@pytest.mark.parametrize("spec", [1, 2])
def test_round_trip_samples(value: Any, spec: int) -> None:
    assert same(value, decode_json_value(encode_json_value(value, spec), spec, NAME))


@given(json_values)
def test_msgpack_round_trip(value: Any) -> None:
    assert same(value, decode_msgpack(encode_msgpack(value), NAME))


@given(flex_values)
def test_flexbuffer_round_trip(value: Any) -> None:
    assert same(value, decode_flexbuffer(encode_flexbuffer(value), NAME))


# the reference implementation handles ASCII keys only
_ascii_keys = st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=127), max_size=8)
_ascii_flex_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_ascii_keys, inner, max_size=4),
    max_leaves=12,
)


@given(_ascii_flex_values)
def test_flexbuffer_agrees_with_reference_reader(value: Any) -> None:
    """Our bytes read back with the flatbuffers package's own reader, and vice versa."""
    ours = encode_flexbuffer(value)
    assert flexbuffers.Loads(ours) == value
    try:
        theirs = flexbuffers.Dumps(value)
    except (ValueError, OverflowError, RuntimeError):  # it fails on big ints and floats
        return
    assert decode_flexbuffer(bytes(theirs), NAME) == value


def test_reads_typed_indirect_and_fixed_vectors() -> None:
    cases: list[tuple[Any, Any]] = []
    fbb = flexbuffers.Builder()
    fbb.TypedVectorFromElements([1, -2, 3])
    cases.append((fbb.Finish(), [1, -2, 3]))
    fbb = flexbuffers.Builder()
    fbb.TypedVectorFromElements([True, False])
    cases.append((fbb.Finish(), [True, False]))
    fbb = flexbuffers.Builder()
    fbb.FixedTypedVectorFromElements([1.0, 2.5, 3.0])
    cases.append((fbb.Finish(), [1.0, 2.5, 3.0]))
    fbb = flexbuffers.Builder()
    fbb.IndirectInt(-5)
    cases.append((fbb.Finish(), -5))
    fbb = flexbuffers.Builder()
    fbb.IndirectFloat(0.25)
    cases.append((fbb.Finish(), 0.25))
    for data, expected in cases:
        assert decode_flexbuffer(bytes(data), NAME) == expected


@pytest.mark.parametrize(
    "value",
    [
        b"bytes",
        {1: "int key"},
        float("nan"),
        float("inf"),
        2**64,
        -(2**63) - 1,
        object(),
        "\ud800",
        {"\udfff": 1},
    ],
)
def test_rejects_non_json(value: Any) -> None:
    for spec in (1, 2):
        with pytest.raises(InvalidInputError) as e:
            encode_json_value(value, spec)
        assert e.value.kind == ErrorKind.INVALID_METADATA


def test_flexbuffer_rejects_nul_in_keys() -> None:
    with pytest.raises(InvalidInputError):
        encode_flexbuffer({"a\x00b": 1})


def test_rejects_too_deep() -> None:
    value: Any = 1
    for _ in range(200):
        value = [value]
    with pytest.raises(InvalidInputError, match="nested deeper"):
        encode_msgpack(value)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",  # never used
        msgpack.packb(b"binary"),
        msgpack.packb(msgpack.ExtType(5, b"x")),
        msgpack.packb({1: 2}),
        msgpack.packb(1) + b"extra",
        msgpack.packb([1, 2])[:-1],
        b"\xdd\xff\xff\xff\xff",  # array32 of 4 billion elements, no data
        b"\x91" * 100_000,  # nesting deeper than the unpacker allows
    ],
)
def test_corrupt_msgpack(data: bytes) -> None:
    with pytest.raises(FormatError, match=NAME):
        decode_msgpack(data, NAME)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"\x01\x02",
        b"\x05\x14\x03",  # root byte width 3
        b"\xff\x28\x01",  # vector offset beyond the start
        b"\x00\x64\x01",  # blob (not JSON)
        b"\x00\xfc\x01",  # unknown type 63
        b"\x05\x00\x00\x00\x00\x24\x04",  # map with garbage
        b"\xff\xff\xff\xff\x02\x14\x01",  # string longer than the buffer
        b"abc\xff" + b"\x02\x14\x01",  # invalid UTF-8 (length 3 at offset)
    ],
)
def test_corrupt_flexbuffer(data: bytes) -> None:
    with pytest.raises(FormatError, match=NAME):
        decode_flexbuffer(data, NAME)


def test_flexbuffer_shared_values_do_not_blow_up() -> None:
    """Vectors whose elements all point at the same vector (a DAG) would decode to 2**k values.

    The reader charges every decoded value to a budget proportional to the input size.
    """
    buf = bytearray(b"\x00")  # empty untyped vector (length prefix 0) at offset 1
    prev = 1
    for _ in range(60):
        # length 2, two offsets (byte width 1) to prev, types (vector, width 1)
        start = len(buf) + 1
        buf += bytes([2, start - prev, start + 1 - prev, 0x28, 0x28])
        prev = start
    root = len(buf)
    buf += bytes([root - prev, 0x28, 1])
    t = time.perf_counter()
    with pytest.raises(FormatError, match="too many values"):
        decode_flexbuffer(bytes(buf), NAME)
    assert time.perf_counter() - t < 1


def test_flexbuffer_self_reference_is_bounded() -> None:
    # a 1-element vector whose element is the vector itself (offset 0)
    data = bytes([1, 0, 0x28, 0, 0x28, 1])
    with pytest.raises(FormatError, match=NAME):
        decode_flexbuffer(data, NAME)


def test_flexbuffer_float_widths() -> None:
    # 4-byte and 8-byte floats both read back
    data = struct.pack("<f", 1.5) + bytes([0x0E, 4])
    assert decode_flexbuffer(data, NAME) == 1.5
    data = struct.pack("<d", 0.1) + bytes([0x0F, 8])
    assert decode_flexbuffer(data, NAME) == 0.1
    with pytest.raises(FormatError):
        decode_flexbuffer(bytes([1, 0x0C, 1]), NAME)  # 1-byte float
