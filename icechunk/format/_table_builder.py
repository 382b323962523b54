"""A lean flatbuffer builder for the tables the encoders write (snapshots, logs, ``repo``).

:class:`TableBuilder` has the method names and the buffer model of the ``flatbuffers``
runtime's ``Builder`` (a ``bytearray`` filled back to front, ``head`` counted from the left,
offsets counted from the end, vtables shared between tables with equal layouts), and writes
**the same bytes** for the same calls: ``tests/format/test_table_builder.py`` encodes
snapshots, transaction logs and ``repo`` objects with both and compares them.

Why it exists: a commit encodes a snapshot, a transaction log and the ``repo`` object, a few
hundred fields in all, and the runtime's builder spends most of that time in generic
per-field bookkeeping (a type check, an alignment computation and two or three calls for
every scalar). Here each field is one alignment step and one ``struct.pack_into``; the
commit's encoders run about three times faster.

Only what the encoders use is provided (no ``forceDefaults``, no shared strings, no size
prefix). The bytes below ``head`` are never written before ``head`` moves over them, so they
are still the zeros the buffer was allocated with: padding only moves ``head``.
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = ["TableBuilder"]

_U8: Final = struct.Struct("<B")
_U16: Final = struct.Struct("<H")
_U32: Final = struct.Struct("<I")
_I32: Final = struct.Struct("<i")
_U64: Final = struct.Struct("<Q")
_MAX_SIZE: Final = 1 << 31
"""Largest buffer (the flatbuffers limit: offsets are 32-bit)."""


class TableBuilder:
    """Builds one flatbuffer back to front (see the module docstring).

    Parameters
    ----------
    initial_size
        Bytes allocated at first; the buffer doubles whenever it runs out.
    """

    __slots__ = (
        "Bytes",
        "_nested",
        "_object_end",
        "_vector_len",
        "_vtable",
        "_vtables",
        "finished",
        "head",
        "minalign",
    )

    def __init__(self, initial_size: int = 1024) -> None:
        size = max(1, int(initial_size))
        self.Bytes = bytearray(size)
        self.head = size
        self.minalign = 1
        self.finished = False
        self._vtable: list[int] = []
        self._object_end = 0
        self._vtables: dict[tuple[int, ...], int] = {}
        self._nested = False
        self._vector_len = 0

    # -- the buffer --------------------------------------------------------------------------

    def Offset(self) -> int:
        """Bytes written so far: the offset, counted from the end, of what was written last."""
        return len(self.Bytes) - self.head

    def Head(self) -> int:
        """Position of the first written byte, counted from the left."""
        return self.head

    def _grow(self, needed: int) -> None:
        """Double the buffer (the written bytes stay at its end) until ``head >= needed``."""
        old = self.Bytes
        size = len(old)
        new_size = size
        while self.head + (new_size - size) < needed:
            if new_size >= _MAX_SIZE:
                raise OverflowError("flatbuffers: cannot grow buffer beyond 2 gigabytes")
            new_size = min(new_size * 2, _MAX_SIZE)
        grown = bytearray(new_size)
        grown[new_size - size :] = old
        self.Bytes = grown
        self.head += new_size - size

    def Prep(self, size: int, additional_bytes: int) -> None:
        """Align so that ``size`` is aligned after ``additional_bytes`` more bytes, and make
        room for them."""
        self.minalign = max(self.minalign, size)
        pad = -(len(self.Bytes) - self.head + additional_bytes) & (size - 1)
        needed = pad + size + additional_bytes
        if self.head < needed:
            self._grow(needed)
        self.head -= pad

    def _place(self, fmt: struct.Struct, value: int) -> None:
        self.head -= fmt.size
        fmt.pack_into(self.Bytes, self.head, value)

    def _prepend(self, fmt: struct.Struct, value: int) -> None:
        width = fmt.size
        head = self.head
        pad = -(len(self.Bytes) - head) & (width - 1)
        self.minalign = max(self.minalign, width)
        if head < pad + width:
            self._grow(pad + width)
            head = self.head
        head -= pad + width
        fmt.pack_into(self.Bytes, head, value)
        self.head = head

    # -- scalars and offsets -----------------------------------------------------------------

    def PrependInt32(self, x: int) -> None:
        self._prepend(_I32, x)

    def PrependUOffsetTRelative(self, off: int) -> None:
        """Write a uoffset pointing at the object written at offset ``off``."""
        self.Prep(4, 0)
        here = len(self.Bytes) - self.head
        if off > here:
            raise ValueError("flatbuffers: offset arithmetic error")
        self._place(_U32, here - off + 4)

    def Slot(self, slot: int) -> None:
        """Record that the field ``slot`` of the current table was just written."""
        self._vtable[slot] = len(self.Bytes) - self.head

    def _scalar_slot(self, fmt: struct.Struct, slot: int, x: int, default: int) -> None:
        if x != default:
            self._prepend(fmt, x)
            self._vtable[slot] = len(self.Bytes) - self.head

    def PrependBoolSlot(self, slot: int, x: bool, default: bool) -> None:
        self._scalar_slot(_U8, slot, int(x), int(default))

    def PrependUint8Slot(self, slot: int, x: int, default: int) -> None:
        self._scalar_slot(_U8, slot, x, default)

    def PrependUint16Slot(self, slot: int, x: int, default: int) -> None:
        self._scalar_slot(_U16, slot, x, default)

    def PrependUint32Slot(self, slot: int, x: int, default: int) -> None:
        self._scalar_slot(_U32, slot, x, default)

    def PrependUint64Slot(self, slot: int, x: int, default: int) -> None:
        self._scalar_slot(_U64, slot, x, default)

    def PrependUOffsetTRelativeSlot(self, slot: int, x: int, default: int) -> None:
        if x != default:
            self.PrependUOffsetTRelative(x)
            self._vtable[slot] = len(self.Bytes) - self.head

    def PrependStructSlot(self, slot: int, x: int, default: int) -> None:
        """Record the struct just written in place (at offset ``x``) as field ``slot``."""
        if x != default:
            if x != len(self.Bytes) - self.head:
                raise ValueError("flatbuffers: a struct must be written inline, just before")
            self._vtable[slot] = x

    # -- tables ------------------------------------------------------------------------------

    def StartObject(self, num_fields: int) -> None:
        if self._nested:
            raise ValueError("flatbuffers: object started inside another object or vector")
        self._vtable = [0] * num_fields
        self._object_end = len(self.Bytes) - self.head
        self._nested = True

    def EndObject(self) -> int:
        """Finish the current table (writing its vtable unless an equal one exists); its offset."""
        if not self._nested:
            raise ValueError("flatbuffers: EndObject without StartObject")
        self._nested = False
        self._prepend(_I32, 0)  # the table's soffset to its vtable, set below
        obj = len(self.Bytes) - self.head
        fields = self._vtable
        used = len(fields)
        while used and not fields[used - 1]:
            used -= 1
        entries = [obj - f if f else 0 for f in fields[:used]]
        size = obj - self._object_end
        key = (*reversed(entries), size)
        found = self._vtables.get(key)
        if found is None:
            # the vtable goes right before the table: (vtable bytes, table bytes, fields...)
            n = used + 2
            vt = struct.Struct(f"<{n}H")
            if self.head < 2 * n:
                self._grow(2 * n)
            self.head -= 2 * n
            vt.pack_into(self.Bytes, self.head, 2 * n, size, *entries)
            here = len(self.Bytes) - self.head
            _I32.pack_into(self.Bytes, len(self.Bytes) - obj, here - obj)
            self._vtables[key] = here
        else:
            _I32.pack_into(self.Bytes, self.head, found - obj)
        self._vtable = []
        return obj

    # -- vectors and strings -----------------------------------------------------------------

    def StartVector(self, elem_size: int, num_elems: int, alignment: int) -> int:
        if self._nested:
            raise ValueError("flatbuffers: vector started inside an object or vector")
        self._nested = True
        self._vector_len = num_elems
        self.Prep(4, elem_size * num_elems)
        self.Prep(alignment, elem_size * num_elems)
        return len(self.Bytes) - self.head

    def EndVector(self) -> int:
        if not self._nested:
            raise ValueError("flatbuffers: EndVector without StartVector")
        self._nested = False
        self._place(_U32, self._vector_len)  # room was made by StartVector
        return len(self.Bytes) - self.head

    def _byte_vector(self, data: bytes | bytearray | memoryview, nul: bool) -> int:
        if self._nested:
            raise ValueError("flatbuffers: vector started inside an object or vector")
        n = len(data)
        self.Prep(4, n + 1 if nul else n)
        if nul:
            self.head -= 1  # the terminating NUL (already zero)
        self.head -= n
        self.Bytes[self.head : self.head + n] = data
        self._place(_U32, n)
        return len(self.Bytes) - self.head

    def CreateString(self, s: bytes | str) -> int:
        """Write a NUL-terminated string (``str`` is encoded as UTF-8); its offset."""
        data = s.encode("utf-8") if isinstance(s, str) else s
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("non-string passed to CreateString")
        return self._byte_vector(data, True)

    def CreateByteVector(self, x: bytes | bytearray) -> int:
        """Write a ``[ubyte]`` vector; its offset."""
        if not isinstance(x, (bytes, bytearray)):
            raise TypeError("non-byte vector passed to CreateByteVector")
        return self._byte_vector(x, False)

    # -- finishing ---------------------------------------------------------------------------

    def Finish(self, root: int, file_identifier: bytes | None = None) -> int:
        """Write the root uoffset (after the 4-byte ``file_identifier``, if given)."""
        self.Prep(self.minalign, 8 if file_identifier is not None else 4)
        if file_identifier is not None:
            if len(file_identifier) != 4:
                raise ValueError("a file identifier has exactly 4 bytes")
            self.Prep(4, 4)
            self.head -= 4
            self.Bytes[self.head : self.head + 4] = file_identifier
        self.PrependUOffsetTRelative(root)
        self.finished = True
        return self.head

    def Output(self) -> bytearray:
        """The finished buffer's bytes."""
        if not self.finished:
            raise ValueError("flatbuffers: Output before Finish")
        return self.Bytes[self.head :]
