"""A small, bounds-checked flatbuffer reader, plus helpers for building with ``flatbuffers``.

Reading never trusts the input: every offset is checked against the buffer length before it is
followed, vector lengths are checked against the bytes that remain, and every table or vector
visit is charged to a budget of ``len(buffer) // 4`` (each reference occupies at least four bytes
of a well-formed, tree-shaped buffer). Corrupt input therefore raises :class:`FormatError` in time
and memory proportional to its size; it never crashes, hangs or allocates hugely.

Two reading styles share the checks:

* :class:`Table` reads one table field by field (snapshots, repo info, small things);
* :class:`TableColumns` reads a whole vector of tables at once with numpy, one column per field
  (manifest chunk refs, transaction-log chunk lists), fast when millions of tables share a
  layout and still correct when they do not.

Building uses :class:`~icechunk.format._table_builder.TableBuilder`, which writes the same bytes
as the ``flatbuffers`` runtime's ``Builder`` in a fraction of its time; :func:`insert_block` lets
a caller splice in a position-independent block built with numpy (see
:mod:`icechunk.format.transaction_log`; :mod:`icechunk.format.manifest` lays out its whole
buffer itself).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import zstandard

from icechunk.errors import ErrorKind, FormatError, InvalidInputError
from icechunk.format._table_builder import TableBuilder

__all__ = [
    "FILE_IDENTIFIER",
    "Buffer",
    "Table",
    "TableColumns",
    "add_struct_slot",
    "check_id",
    "create_bytes",
    "create_offset_vector",
    "create_raw_vector",
    "create_string",
    "decoding",
    "finish",
    "gather",
    "insert_block",
    "new_builder",
]

FILE_IDENTIFIER: Final = b"Ichk"

type Int64Array = npt.NDArray[np.int64]

_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_U64 = struct.Struct("<Q")
_SCALARS: Final = {"u8": _U8, "u16": _U16, "u32": _U32, "i32": _I32, "u64": _U64, "bool": _U8}


@contextmanager
def decoding(name: str, what: str) -> Iterator[None]:
    """Turn any low-level failure while decoding object ``name`` into a :class:`FormatError`.

    Decoders check offsets explicitly; this is the safety net for whatever slips through
    (a struct error, a bad UTF-8 sequence, numpy refusing a shape ...).
    """
    try:
        yield
    except FormatError:
        raise
    except (
        ArithmeticError,
        IndexError,
        KeyError,
        RecursionError,
        TypeError,
        ValueError,
        struct.error,
        zstandard.ZstdError,
    ) as e:
        raise FormatError(f"corrupt {what} `{name}`: {type(e).__name__}: {e}") from None


def check_id(raw: object, size: int, what: str) -> bytes:
    """Return ``raw`` as bytes if it is a ``size``-byte id, else raise InvalidInputError."""
    if not isinstance(raw, (bytes, bytearray, memoryview)) or len(raw) != size:
        raise InvalidInputError(
            f"invalid {what}: expected {size} bytes, got {raw!r}", ErrorKind.INVALID_ARGUMENT
        )
    return bytes(raw)


class Buffer:
    """One flatbuffer being read, with its name for error messages and a visit budget.

    Parameters
    ----------
    data
        The flatbuffer bytes (the decompressed payload of an object).
    name
        The object key, e.g. ``snapshots/ABC...``.
    what
        The kind of object (``snapshot``, ``manifest`` ...), for error messages.
    """

    __slots__ = ("budget", "data", "name", "np", "size", "what")

    def __init__(self, data: bytes, name: str, what: str) -> None:
        self.data = data
        self.size = len(data)
        self.name = name
        self.what = what
        self.budget = self.size // 4 + 16
        self.np: npt.NDArray[np.uint8] = np.frombuffer(data, dtype=np.uint8)

    def error(self, detail: str) -> FormatError:
        """A :class:`FormatError` naming this object."""
        return FormatError(f"corrupt {self.what} `{self.name}`: {detail}")

    def charge(self, n: int) -> None:
        """Account for ``n`` table or vector visits; fail when the budget is exhausted."""
        self.budget -= n
        if self.budget < 0:
            raise self.error("too many tables for the buffer size (shared or cyclic offsets)")

    def check(self, pos: int, size: int) -> None:
        """Fail unless ``[pos, pos + size)`` lies inside the buffer."""
        if pos < 0 or size < 0 or pos + size > self.size:
            raise self.error(f"offset {pos} (+{size}) is outside the {self.size}-byte buffer")

    def read(self, kind: str, pos: int) -> int:
        """The little-endian scalar ``kind`` (``u8``, ``u16``, ``u32``, ``i32``, ``u64``)."""
        s = _SCALARS[kind]
        self.check(pos, s.size)
        value: int = s.unpack_from(self.data, pos)[0]
        return value

    def deref(self, pos: int) -> int:
        """Follow the uoffset stored at ``pos``; the target must be inside the buffer."""
        target = pos + self.read("u32", pos)
        self.check(target, 4)
        return target

    def table_at(self, pos: int) -> Table:
        """The table starting at ``pos`` (its vtable is checked here)."""
        return Table(self, pos)

    def root(self) -> Table:
        """The root table, after checking the ``Ichk`` file identifier."""
        if self.size < 8:
            raise self.error(f"{self.size} bytes is too short for a flatbuffer")
        if self.data[4:8] != FILE_IDENTIFIER:
            raise self.error("missing the `Ichk` flatbuffer file identifier")
        return self.table_at(self.deref(0))

    def vector(self, pos: int, elem_size: int) -> tuple[int, int]:
        """``(start of elements, length)`` of the vector whose length prefix is at ``pos``."""
        n = self.read("u32", pos)
        if n * elem_size > self.size - pos - 4:
            raise self.error(f"vector of {n} elements at {pos} runs past the end of the buffer")
        self.charge(1)
        return pos + 4, n

    def string_at(self, pos: int) -> str:
        """The string whose length prefix is at ``pos``."""
        start, n = self.vector(pos, 1)
        try:
            return self.data[start : start + n].decode("utf-8")
        except UnicodeDecodeError:
            raise self.error(f"string at {pos} is not valid UTF-8") from None

    def bytes_at(self, pos: int) -> bytes:
        """The ``[ubyte]`` vector whose length prefix is at ``pos``."""
        start, n = self.vector(pos, 1)
        return self.data[start : start + n]


class Table:
    """One flatbuffer table; fields are addressed by slot number (schema field order)."""

    __slots__ = ("buf", "nslots", "pos", "tsize", "vt")

    def __init__(self, buf: Buffer, pos: int) -> None:
        buf.charge(1)
        vt = pos - buf.read("i32", pos)
        buf.check(vt, 4)
        vsize = buf.read("u16", vt)
        tsize = buf.read("u16", vt + 2)
        if vsize < 4 or vsize % 2:
            raise buf.error(f"invalid vtable size {vsize} for the table at {pos}")
        buf.check(vt, vsize)
        if tsize < 4:
            raise buf.error(f"invalid table size {tsize} for the table at {pos}")
        buf.check(pos, tsize)
        self.buf = buf
        self.pos = pos
        self.vt = vt
        self.tsize = tsize
        self.nslots = (vsize - 4) // 2

    def offset(self, slot: int, size: int) -> int:
        """Absolute position of field ``slot`` holding ``size`` bytes, or 0 when absent."""
        if slot >= self.nslots:
            return 0
        fo = self.buf.read("u16", self.vt + 4 + 2 * slot)
        if fo == 0:
            return 0
        if fo + size > self.tsize:
            raise self.buf.error(f"field {slot} of the table at {self.pos} overruns the table")
        return self.pos + fo

    def has(self, slot: int) -> bool:
        """Whether field ``slot`` is present."""
        return self.offset(slot, 0) != 0

    def unknown_fields(self, known_slots: int) -> bool:
        """Whether the table sets any field beyond the first ``known_slots`` slots."""
        return any(
            self.buf.read("u16", self.vt + 4 + 2 * s) for s in range(known_slots, self.nslots)
        )

    def scalar(self, slot: int, kind: str, default: int = 0) -> int:
        """A scalar field (``u8``, ``u16``, ``u32``, ``i32``, ``u64``, ``bool``)."""
        pos = self.offset(slot, _SCALARS[kind].size)
        return self.buf.read(kind, pos) if pos else default

    def struct(self, slot: int, size: int) -> bytes | None:
        """The raw bytes of an inline struct field, or ``None``."""
        pos = self.offset(slot, size)
        return self.buf.data[pos : pos + size] if pos else None

    def child(self, slot: int, field: str, required: bool = False) -> int:
        """Position an offset field points to (0 when absent and not required)."""
        return self._child(slot, field, required)

    def _child(self, slot: int, field: str, required: bool) -> int:
        pos = self.offset(slot, 4)
        if not pos:
            if required:
                raise self.buf.error(f"missing required field `{field}`")
            return 0
        return self.buf.deref(pos)

    def struct_req(self, slot: int, size: int, field: str) -> bytes:
        """Like :meth:`struct` for a required field."""
        raw = self.struct(slot, size)
        if raw is None:
            raise self.buf.error(f"missing required field `{field}`")
        return raw

    def table(self, slot: int, field: str) -> Table | None:
        """An optional sub-table field."""
        pos = self._child(slot, field, False)
        return self.buf.table_at(pos) if pos else None

    def table_req(self, slot: int, field: str) -> Table:
        """A required sub-table field."""
        return self.buf.table_at(self._child(slot, field, True))

    def string(self, slot: int, field: str) -> str | None:
        """An optional string field."""
        pos = self._child(slot, field, False)
        return self.buf.string_at(pos) if pos else None

    def string_req(self, slot: int, field: str) -> str:
        """A required string field."""
        return self.buf.string_at(self._child(slot, field, True))

    def blob(self, slot: int, field: str) -> bytes | None:
        """An optional ``[ubyte]`` field."""
        pos = self._child(slot, field, False)
        return self.buf.bytes_at(pos) if pos else None

    def blob_req(self, slot: int, field: str) -> bytes:
        """A required ``[ubyte]`` field."""
        return self.buf.bytes_at(self._child(slot, field, True))

    def vector(
        self, slot: int, elem_size: int, field: str, required: bool = False
    ) -> tuple[int, int] | None:
        """``(start, length)`` of a vector field, or ``None`` when absent and not required."""
        pos = self._child(slot, field, required)
        return self.buf.vector(pos, elem_size) if pos else None

    def structs(
        self, slot: int, size: int, field: str, required: bool = False
    ) -> list[bytes] | None:
        """The elements of a vector of ``size``-byte structs."""
        vec = self.vector(slot, size, field, required)
        if vec is None:
            return None
        start, n = vec
        data = self.buf.data
        return [data[start + i * size : start + (i + 1) * size] for i in range(n)]

    def scalars(
        self, slot: int, dtype: str, field: str, required: bool = False
    ) -> list[int] | None:
        """The elements of a vector of scalars of numpy ``dtype`` (e.g. ``<u4``)."""
        dt = np.dtype(dtype)
        vec = self.vector(slot, dt.itemsize, field, required)
        if vec is None:
            return None
        start, n = vec
        values: list[int] = np.frombuffer(self.buf.data, dt, n, start).tolist()
        return values

    def tables(self, slot: int, field: str, required: bool = False) -> list[Table] | None:
        """The elements of a vector of tables."""
        vec = self.vector(slot, 4, field, required)
        if vec is None:
            return None
        start, n = vec
        return [self.buf.table_at(self.buf.deref(start + 4 * i)) for i in range(n)]

    def tables_req(self, slot: int, field: str) -> list[Table]:
        """The elements of a required vector of tables."""
        out = self.tables(slot, field, required=True)
        return out if out is not None else []

    def strings(self, slot: int, field: str, required: bool = False) -> list[str] | None:
        """The elements of a vector of strings."""
        vec = self.vector(slot, 4, field, required)
        if vec is None:
            return None
        start, n = vec
        return [self.buf.string_at(self.buf.deref(start + 4 * i)) for i in range(n)]


# ---------------------------------------------------------------------------------------------
# vectorised reading


def gather(buf: Buffer, pos: Int64Array, dtype: str) -> npt.NDArray[Any]:
    """The little-endian values of numpy ``dtype`` stored at each position of ``pos``.

    Raises
    ------
    FormatError
        A position lies (partly) outside the buffer.
    """
    dt = np.dtype(dtype)
    size = dt.itemsize
    if pos.size == 0:
        return np.zeros(0, dtype=dt)
    lo = int(pos.min())
    hi = int(pos.max())
    if lo < 0 or hi + size > buf.size:
        bad = lo if lo < 0 else hi
        raise buf.error(f"offset {bad} (+{size}) is outside the {buf.size}-byte buffer")
    u8 = buf.np
    if size == 1:
        return u8[pos].view(dt)
    if not (pos & (size - 1)).any():
        aligned = u8[: buf.size - buf.size % size].view(dt)
        return aligned[pos // size]
    idx = pos[:, None] + np.arange(size, dtype=np.int64)
    return np.ascontiguousarray(u8[idx]).view(dt).reshape(-1)


def gather_rows(buf: Buffer, pos: Int64Array, width: int, dtype: str) -> npt.NDArray[Any]:
    """A ``(len(pos), width)`` array: ``width`` consecutive ``dtype`` values at each position."""
    size = np.dtype(dtype).itemsize
    n = pos.size
    if n == 0 or width == 0:
        return np.zeros((n, width), dtype=dtype)
    if size == 1 and width % 4 == 0 and not (pos & 3).any():
        # e.g. 12-byte ids at 4-aligned positions: move them as 32-bit words
        words = gather_rows(buf, pos, width // 4, "<u4")
        return np.ascontiguousarray(words).view(np.uint8).reshape(n, width).view(dtype)
    flat = (pos[:, None] + size * np.arange(width, dtype=np.int64)).reshape(-1)
    return gather(buf, flat, dtype).reshape(n, width)


class TableColumns:
    """A vector of tables read column-wise with numpy.

    Parameters
    ----------
    buf
        The buffer.
    vec_pos
        Position of the vector's length prefix.
    field
        The vector's field name, for error messages.
    """

    __slots__ = ("buf", "field", "n", "pos", "tsize", "uniform", "vsize", "vt")

    def __init__(self, buf: Buffer, vec_pos: int, field: str) -> None:
        start, n = buf.vector(vec_pos, 4)
        buf.charge(n)
        self.buf = buf
        self.field = field
        self.n = n
        slots = np.arange(n, dtype=np.int64) * 4 + start
        self.pos: Int64Array = slots + gather(buf, slots, "<u4").astype(np.int64)
        self.vt: Int64Array = self.pos - gather(buf, self.pos, "<i4").astype(np.int64)
        self.vsize = gather(buf, self.vt, "<u2").astype(np.int64)
        self.tsize = gather(buf, self.vt + 2, "<u2").astype(np.int64)
        if n:
            if (self.vsize < 4).any() or (self.vsize & 1).any():
                raise buf.error(f"invalid vtable size in `{field}`")
            if int((self.vt + self.vsize).max()) > buf.size:
                raise buf.error(f"a vtable in `{field}` runs past the end of the buffer")
            if (self.tsize < 4).any() or int((self.pos + self.tsize).max()) > buf.size:
                raise buf.error(f"a table in `{field}` runs past the end of the buffer")
        self.uniform = bool(n) and bool((self.vt == self.vt[0]).all())

    def field_offsets(self, slot: int, size: int) -> Int64Array:
        """Per table, the absolute position of field ``slot`` (``size`` bytes), or 0 if absent."""
        buf = self.buf
        if self.n == 0:
            return np.zeros(0, dtype=np.int64)
        entry = 4 + 2 * slot
        if self.uniform:
            vt0 = int(self.vt[0])
            fo0 = buf.read("u16", vt0 + entry) if entry < int(self.vsize[0]) else 0
            if fo0 and fo0 + size > int(self.tsize[0]):
                raise buf.error(f"a field of `{self.field}` overruns its table")
            return self.pos + fo0 if fo0 else np.zeros(self.n, dtype=np.int64)
        has = entry < self.vsize
        fo = np.zeros(self.n, dtype=np.int64)
        if has.any():
            fo[has] = gather(buf, self.vt[has] + entry, "<u2")
        if ((fo != 0) & (fo + size > self.tsize)).any():
            raise buf.error(f"a field of `{self.field}` overruns its table")
        return np.where(fo != 0, self.pos + fo, 0)

    def scalar(self, slot: int, dtype: str, default: int = 0) -> npt.NDArray[Any]:
        """Column of a scalar field (absent fields read as ``default``)."""
        dt = np.dtype(dtype)
        at = self.field_offsets(slot, dt.itemsize)
        out = np.full(self.n, default, dtype=dt)
        present = at != 0
        if present.all():
            return gather(self.buf, at, dtype)
        if present.any():
            out[present] = gather(self.buf, at[present], dtype)
        return out

    def struct(self, slot: int, size: int) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
        """``(n, size)`` raw bytes of a struct field (zeros where absent) and the presence mask."""
        at = self.field_offsets(slot, size)
        present = at != 0
        out = np.zeros((self.n, size), dtype=np.uint8)
        if present.any():
            out[present] = gather_rows(self.buf, at[present], size, "u1")
        return out, present

    def children(self, slot: int) -> Int64Array:
        """Per table, the position a uoffset field points to, or -1 when absent."""
        at = self.field_offsets(slot, 4)
        present = at != 0
        out = np.full(self.n, -1, dtype=np.int64)
        if present.any():
            sel = at[present]
            target = sel + gather(self.buf, sel, "<u4").astype(np.int64)
            if int(target.max()) + 4 > self.buf.size:
                raise self.buf.error(f"an offset in `{self.field}` points outside the buffer")
            out[present] = target
        return out

    def u32_vectors(self, slot: int, field: str) -> tuple[Int64Array, Int64Array]:
        """``(starts, lengths)`` of a required ``[uint32]`` field of every table."""
        child = self.children(slot)
        if (child < 0).any():
            raise self.buf.error(f"missing required field `{field}`")
        lengths = gather(self.buf, child, "<u4").astype(np.int64)
        if self.n and int((child + 4 + 4 * lengths).max()) > self.buf.size:
            raise self.buf.error(f"a `{field}` vector runs past the end of the buffer")
        self.buf.charge(self.n)
        return child + 4, lengths


# ---------------------------------------------------------------------------------------------
# building


def new_builder(size_hint: int = 1024) -> TableBuilder:
    """A fresh builder with room for about ``size_hint`` bytes (it grows as needed)."""
    return TableBuilder(max(1024, size_hint))


def create_string(b: Any, s: str) -> int:
    """Write a string; return its offset."""
    off: int = b.CreateString(s.encode("utf-8"))
    return off


def create_bytes(b: Any, data: bytes) -> int:
    """Write a ``[ubyte]`` vector; return its offset."""
    off: int = b.CreateByteVector(bytes(data))
    return off


def create_raw_vector(b: Any, raw: bytes, elem_size: int, n: int, alignment: int) -> int:
    """Write a vector of ``n`` elements given as their concatenated little-endian bytes."""
    if len(raw) != elem_size * n:
        raise ValueError("raw vector bytes do not match the element count")
    b.StartVector(elem_size, n, alignment)
    b.head = b.head - len(raw)
    b.Bytes[b.head : b.head + len(raw)] = raw
    off: int = b.EndVector()
    return off


def create_offset_vector(b: Any, offsets: Sequence[int]) -> int:
    """Write a vector of uoffsets to already-written objects."""
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    out: int = b.EndVector()
    return out


def add_struct_slot(b: Any, slot: int, raw: bytes, alignment: int = 1) -> None:
    """Inside ``StartObject``/``EndObject``: store the struct ``raw`` inline in ``slot``."""
    b.Prep(alignment, len(raw))
    b.head = b.head - len(raw)
    b.Bytes[b.head : b.head + len(raw)] = raw
    b.PrependStructSlot(slot, b.Offset(), 0)


def insert_block(
    b: Any, block: bytes | bytearray | memoryview | npt.NDArray[np.uint8], alignment: int = 8
) -> int:
    """Splice a pre-built, position-independent block in; return the offset of its start.

    The block's internal offsets must be relative, and it must only need its start aligned to
    ``alignment`` (a power of two, at most 8). An object ``r`` bytes into the block then has the
    builder offset ``returned - r``.
    """
    data = memoryview(block).cast("B")
    size = data.nbytes
    b.Prep(alignment, size)
    b.head = b.head - size
    b.Bytes[b.head : b.head + size] = data
    off: int = b.Offset()
    return off


def finish(b: Any, root: int) -> bytes:
    """Finish the buffer with the ``Ichk`` identifier; return its bytes."""
    b.Finish(root, file_identifier=FILE_IDENTIFIER)
    return bytes(b.Output())
