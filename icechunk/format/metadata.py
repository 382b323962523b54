"""JSON values inside metadata items: MessagePack in spec-1 objects, FlexBuffers in spec 2.

Snapshot metadata, snapshot-info metadata and repository metadata store one JSON value per item
(``MetadataItem.value``). Real Icechunk serialises a ``serde_json::Value`` there with
``rmp_serde`` (spec 1) or ``flexbuffers`` (spec 2); both round-trip with the encoders here for
null, booleans, integers (signed 64-bit, and unsigned up to 2**64 - 1), finite floats, strings,
lists and string-keyed maps.

Decoding uses ``msgpack`` (whose C unpacker bounds lengths by the input size and nesting depth)
and a FlexBuffers reader of our own that checks every offset and charges each visited value to a
budget proportional to the input size, so a corrupt value cannot hang or exhaust memory.
"""

from __future__ import annotations

import math
import struct
from typing import Any, Final

import msgpack
from flatbuffers import flexbuffers

from icechunk.errors import ErrorKind, FormatError, InvalidInputError
from icechunk.format.flatbuf import Table, create_bytes, create_offset_vector, create_string

__all__ = [
    "build_metadata_items",
    "read_metadata_items",
    "decode_flexbuffer",
    "decode_json_value",
    "decode_msgpack",
    "encode_flexbuffer",
    "encode_json_value",
    "encode_msgpack",
]

type JSON = Any

MAX_DEPTH: Final = 100
"""Deepest nesting of lists and maps accepted, when writing and reading."""


def _invalid(detail: str) -> InvalidInputError:
    return InvalidInputError(f"invalid metadata value: {detail}", ErrorKind.INVALID_METADATA)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid(f"{text!r} is not valid Unicode text (lone surrogate)") from None


def _check_json(value: JSON, depth: int = 0) -> None:
    """Raise :class:`InvalidInputError` unless ``value`` is a JSON value we can encode."""
    if depth > MAX_DEPTH:
        raise _invalid(f"nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        _check_text(value)
        return
    if isinstance(value, int):
        if not -(2**63) <= value < 2**64:
            raise _invalid(f"integer {value} does not fit in 64 bits")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _invalid(f"{value} is not a JSON number")
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_json(item, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _invalid(f"map key {key!r} is not a string")
            _check_text(key)
            _check_json(item, depth + 1)
        return
    raise _invalid(f"{type(value).__name__} is not a JSON type")


def _sorted_maps(value: JSON) -> JSON:
    """``value`` with every map's keys in UTF-8 byte order (deterministic output)."""
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: kv[0].encode("utf-8"))
        return {k: _sorted_maps(v) for k, v in items}
    if isinstance(value, (list, tuple)):
        return [_sorted_maps(v) for v in value]
    return value


def encode_msgpack(value: JSON) -> bytes:
    """MessagePack of the JSON ``value`` (spec 1).

    Raises
    ------
    InvalidInputError
        ``value`` is not JSON-compatible.
    """
    _check_json(value)
    out: bytes = msgpack.packb(_sorted_maps(value), use_bin_type=True)
    return out


def decode_msgpack(data: bytes, name: str) -> JSON:
    """The JSON value in MessagePack ``data``; ``name`` is used in error messages.

    Raises
    ------
    FormatError
        ``data`` is not a single MessagePack value holding JSON-compatible types.
    """
    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except (ValueError, TypeError, ArithmeticError, msgpack.UnpackException) as e:
        raise FormatError(
            f"corrupt metadata value in `{name}`: invalid MessagePack ({e})"
        ) from None
    try:
        _check_json(value)
    except InvalidInputError as e:
        raise FormatError(f"corrupt metadata value in `{name}`: {e.message}") from None
    return value


def _flex_add(fbb: Any, value: JSON) -> None:
    if value is None:
        fbb.Null()
    elif isinstance(value, bool):
        fbb.Bool(value)
    elif isinstance(value, int):
        if value >= 2**63:
            fbb.UInt(value)
        else:
            fbb.Int(value)
    elif isinstance(value, float):
        fbb.Float(value, byte_width=8)
    elif isinstance(value, str):
        fbb.String(value)
    elif isinstance(value, (list, tuple)):
        with fbb.Vector():
            for item in value:
                _flex_add(fbb, item)
    else:
        with fbb.Map():
            for key, item in sorted(value.items(), key=lambda kv: kv[0].encode("utf-8")):
                if "\x00" in key:
                    raise _invalid(f"map key {key!r} contains a NUL character")
                fbb.Key(key.encode("utf-8"))
                _flex_add(fbb, item)


def encode_flexbuffer(value: JSON) -> bytes:
    """FlexBuffers of the JSON ``value`` (spec 2).

    Raises
    ------
    InvalidInputError
        ``value`` is not JSON-compatible.
    """
    _check_json(value)
    fbb = flexbuffers.Builder()
    _flex_add(fbb, value)
    return bytes(fbb.Finish())


# FlexBuffers value types (the upper six bits of a packed type byte)
_NULL, _INT, _UINT, _FLOAT, _KEY, _STRING = 0, 1, 2, 3, 4, 5
_INDIRECT_INT, _INDIRECT_UINT, _INDIRECT_FLOAT, _MAP, _VECTOR = 6, 7, 8, 9, 10
_VECTOR_INT, _VECTOR_UINT, _VECTOR_FLOAT, _VECTOR_KEY, _VECTOR_STRING = 11, 12, 13, 14, 15
_FIXED_FIRST, _FIXED_LAST = 16, 24  # VECTOR_INT2 ... VECTOR_FLOAT4
_BLOB, _BOOL, _VECTOR_BOOL = 25, 26, 36
_TYPED_ELEMENT: Final = {
    _VECTOR_INT: _INT,
    _VECTOR_UINT: _UINT,
    _VECTOR_FLOAT: _FLOAT,
    _VECTOR_KEY: _KEY,
    _VECTOR_STRING: _STRING,
    _VECTOR_BOOL: _BOOL,
}
_FLOAT_FORMATS: Final = {4: struct.Struct("<f"), 8: struct.Struct("<d")}


class _FlexReader:
    """Bounds-checked FlexBuffers decoding into JSON values."""

    __slots__ = ("budget", "data", "name", "size")

    def __init__(self, data: bytes, name: str) -> None:
        self.data = data
        self.size = len(data)
        self.name = name
        self.budget = 4 * self.size + 64

    def error(self, detail: str) -> FormatError:
        return FormatError(
            f"corrupt metadata value in `{self.name}`: invalid FlexBuffer ({detail})"
        )

    def check(self, pos: int, size: int) -> None:
        if pos < 0 or size < 0 or pos + size > self.size:
            raise self.error(f"offset {pos} (+{size}) outside the {self.size}-byte buffer")

    def uint(self, pos: int, width: int) -> int:
        self.check(pos, width)
        return int.from_bytes(self.data[pos : pos + width], "little")

    def sint(self, pos: int, width: int) -> int:
        self.check(pos, width)
        return int.from_bytes(self.data[pos : pos + width], "little", signed=True)

    def float(self, pos: int, width: int) -> float:
        fmt = _FLOAT_FORMATS.get(width)
        if fmt is None:
            raise self.error(f"{width}-byte float")
        self.check(pos, width)
        value: float = fmt.unpack_from(self.data, pos)[0]
        return value

    def target(self, pos: int, width: int) -> int:
        """Follow the (backwards) offset stored at ``pos``."""
        off = self.uint(pos, width)
        if off > pos:
            raise self.error(f"invalid offset {off} at {pos}")
        return pos - off

    def key(self, pos: int) -> str:
        end = self.data.find(b"\x00", pos)
        if end < 0:
            raise self.error("unterminated key")
        try:
            return self.data[pos:end].decode("utf-8")
        except UnicodeDecodeError:
            raise self.error("key is not valid UTF-8") from None

    def sized(self, pos: int, width: int, elem_size: int) -> int:
        """The element count stored just before ``pos``, checked against the buffer."""
        n = self.uint(pos - width, width)
        self.check(pos, n * elem_size)
        return n

    def root(self) -> JSON:
        if self.size < 3:
            raise self.error("too short")
        width = self.data[-1]
        packed = self.data[-2]
        if width not in (1, 2, 4, 8):
            raise self.error(f"root byte width {width}")
        return self.value(self.size - 2 - width, width, packed, 0)

    def scalar(self, pos: int, width: int, kind: int) -> JSON:
        if kind == _INT:
            return self.sint(pos, width)
        if kind == _UINT:
            return self.uint(pos, width)
        if kind == _FLOAT:
            return self.float(pos, width)
        return self.uint(pos, width) != 0  # _BOOL

    def value(self, pos: int, parent_width: int, packed: int, depth: int) -> JSON:
        self.budget -= 1
        if self.budget < 0:
            raise self.error("too many values for the buffer size")
        if depth > MAX_DEPTH:
            raise self.error(f"nested deeper than {MAX_DEPTH} levels")
        kind = packed >> 2
        width = 1 << (packed & 3)
        if kind == _NULL:
            return None
        if kind in (_INT, _UINT, _FLOAT, _BOOL):
            return self.scalar(pos, parent_width, kind)
        at = self.target(pos, parent_width)
        if kind in (_INDIRECT_INT, _INDIRECT_UINT, _INDIRECT_FLOAT):
            return self.scalar(at, width, kind - (_INDIRECT_INT - _INT))
        if kind == _KEY:
            return self.key(at)
        if kind == _STRING:
            n = self.sized(at, width, 1)
            try:
                return self.data[at : at + n].decode("utf-8")
            except UnicodeDecodeError:
                raise self.error("string is not valid UTF-8") from None
        if kind == _VECTOR:
            n = self.sized(at, width, width + 1)
            types = self.data[at + n * width : at + n * width + n]
            return [self.value(at + i * width, width, types[i], depth + 1) for i in range(n)]
        if kind == _MAP:
            return self.map(at, width, depth)
        if kind in _TYPED_ELEMENT or _FIXED_FIRST <= kind <= _FIXED_LAST:
            if kind in _TYPED_ELEMENT:
                elem = _TYPED_ELEMENT[kind]
                n = self.sized(at, width, width)
            else:
                elem = _INT + (kind - _FIXED_FIRST) % 3
                n = (kind - _FIXED_FIRST) // 3 + 2
                self.check(at, n * width)
            packed_elem = (elem << 2) | (packed & 3)
            return [self.value(at + i * width, width, packed_elem, depth + 1) for i in range(n)]
        if kind == _BLOB:
            raise self.error("binary blob is not a JSON value")
        raise self.error(f"unknown value type {kind}")

    def map(self, at: int, width: int, depth: int) -> dict[str, JSON]:
        n = self.sized(at, width, width + 1)
        keys_at = self.target(at - 3 * width, width)
        keys_width = self.uint(at - 2 * width, width)
        if keys_width not in (1, 2, 4, 8):
            raise self.error(f"map keys byte width {keys_width}")
        if self.sized(keys_at, keys_width, keys_width) != n:
            raise self.error("map keys and values differ in count")
        types = self.data[at + n * width : at + n * width + n]
        out: dict[str, JSON] = {}
        for i in range(n):
            self.budget -= 1
            key = self.key(self.target(keys_at + i * keys_width, keys_width))
            out[key] = self.value(at + i * width, width, types[i], depth + 1)
        return out


def decode_flexbuffer(data: bytes, name: str) -> JSON:
    """The JSON value in FlexBuffers ``data``; ``name`` is used in error messages.

    Raises
    ------
    FormatError
        ``data`` is not a valid FlexBuffer of JSON-compatible types.
    """
    return _FlexReader(bytes(data), name).root()


def encode_json_value(value: JSON, spec_version: int) -> bytes:
    """A metadata item value for an object of ``spec_version``."""
    return encode_msgpack(value) if spec_version == 1 else encode_flexbuffer(value)


def decode_json_value(data: bytes, spec_version: int, name: str) -> JSON:
    """Inverse of :func:`encode_json_value`."""
    return decode_msgpack(data, name) if spec_version == 1 else decode_flexbuffer(data, name)


def build_metadata_items(b: Any, metadata: dict[str, JSON], spec_version: int) -> int:
    """Write ``[MetadataItem]`` (sorted by name bytes) with a flatbuffers builder.

    Raises
    ------
    InvalidInputError
        A key is not a string or a value is not JSON-compatible.
    """
    if not isinstance(metadata, dict):
        raise _invalid(f"expected a dict, got {type(metadata).__name__}")
    for key in metadata:
        if not isinstance(key, str):
            raise _invalid(f"metadata key {key!r} is not a string")
    items = []
    for key in sorted(metadata, key=lambda k: k.encode("utf-8")):
        value = create_bytes(b, encode_json_value(metadata[key], spec_version))
        name = create_string(b, key)
        b.StartObject(2)
        b.PrependUOffsetTRelativeSlot(0, name, 0)
        b.PrependUOffsetTRelativeSlot(1, value, 0)
        items.append(b.EndObject())
    return create_offset_vector(b, items)


def read_metadata_items(items: list[Table] | None, spec_version: int, name: str) -> dict[str, JSON]:
    """Decode ``[MetadataItem]`` tables into a dict (an absent vector gives ``{}``)."""
    out: dict[str, JSON] = {}
    for item in items or ():
        key = item.string_req(0, "MetadataItem.name")
        raw = item.blob_req(1, "MetadataItem.value")
        out[key] = decode_json_value(raw, spec_version, name)
    return out
