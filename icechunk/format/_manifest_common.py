"""What the manifest encoder and decoder share: ChunkRef slots, layout codes, ref checks.

See :mod:`icechunk.format.manifest` for the format and the public names.
"""

from __future__ import annotations

import struct
from typing import Final

import numpy as np
import numpy.typing as npt

from icechunk.errors import ErrorKind, InvalidInputError
from icechunk.format.model import (
    ChunkKind,
    ChunkRefs,
)

_INDEX, _INLINE, _OFFSET, _LENGTH, _CHUNK_ID = 0, 1, 2, 3, 4
_LOCATION, _ETAG, _LAST_MODIFIED, _COMPRESSED_LOCATION = 5, 6, 7, 8

# bits of a ref's layout code (_COMPRESSED: the location goes to slot 8 as zstd bytes)
_NATIVE, _INLINE_BIT, _VIRTUAL, _HAS_OFFSET, _HAS_ETAG, _HAS_MODIFIED = 1, 2, 4, 8, 16, 32
_COMPRESSED = 64
_NUM_CODES: Final = 128
_MAX_LOCATION_SIZE: Final = 1 << 20
_PACK_U32 = struct.Struct("<I").pack_into


def _align(n: int, a: int) -> int:
    return (n + a - 1) & ~(a - 1)


class _Layout:
    """Field positions of the ChunkRef table for one layout code."""

    __slots__ = ("chunk_id", "etag", "inline", "location", "modified", "size", "vtable")

    def __init__(self, code: int) -> None:
        slots = [0] * 9
        slots[_INDEX] = 4
        location_slot = _COMPRESSED_LOCATION if code & _COMPRESSED else _LOCATION
        pos = 8
        if code & (_NATIVE | _VIRTUAL):
            slots[_LENGTH] = pos
            pos += 8
            if code & _HAS_OFFSET:
                slots[_OFFSET] = pos
                pos += 8
        for bit, slot in ((_INLINE_BIT, _INLINE), (_VIRTUAL, location_slot), (_HAS_ETAG, _ETAG)):
            if code & bit:
                slots[slot] = pos
                pos += 4
        if code & _HAS_MODIFIED:
            slots[_LAST_MODIFIED] = pos
            pos += 4
        if code & _NATIVE:
            slots[_CHUNK_ID] = pos
            pos += 12
        self.size = _align(pos, 8)
        self.inline = slots[_INLINE]
        self.location = slots[location_slot]
        self.etag = slots[_ETAG]
        self.modified = slots[_LAST_MODIFIED]
        self.chunk_id = slots[_CHUNK_ID]
        while slots and slots[-1] == 0:
            slots.pop()
        self.vtable = struct.pack(f"<HH{len(slots)}H", 4 + 2 * len(slots), self.size, *slots)


_LAYOUTS: Final = {code: _Layout(code) for code in range(_NUM_CODES)}


def _invalid(detail: str) -> InvalidInputError:
    return InvalidInputError(f"invalid chunk refs: {detail}", ErrorKind.INVALID_ARGUMENT)


def _take(refs: ChunkRefs, order: npt.NDArray[np.intp]) -> ChunkRefs:
    pick = order.tolist()
    modified = refs.checksum_last_modified
    return ChunkRefs(
        coords=refs.coords[order],
        kind=refs.kind[order],
        chunk_id=refs.chunk_id[order],
        offset=refs.offset[order],
        length=refs.length[order],
        inline=[refs.inline[i] for i in pick] if refs.inline else [],
        location=[refs.location[i] for i in pick] if refs.location else [],
        checksum_etag=[refs.checksum_etag[i] for i in pick] if refs.checksum_etag else [],
        checksum_last_modified=None if modified is None else modified[order],
    )


def ascending_rows(coords: npt.NDArray[np.uint32]) -> bool:
    """Whether the rows of ``coords`` are strictly increasing (lexicographically)."""
    a, b = coords[:-1], coords[1:]
    less = np.zeros(len(a), dtype=bool)
    equal = np.ones(len(a), dtype=bool)
    for k in range(coords.shape[1]):
        less |= equal & (a[:, k] < b[:, k])
        equal &= a[:, k] == b[:, k]
    return bool(less.all())


def _normalized(refs: ChunkRefs) -> ChunkRefs:
    """``refs`` with checked column shapes, sorted by coordinates; duplicates are rejected."""
    n = len(refs)
    coords = np.asarray(refs.coords)
    if coords.ndim != 2 or coords.shape[0] != n:
        raise _invalid(f"coords must have shape (n, ndim), got {coords.shape}")
    if coords.size and (coords.min() < 0 or coords.max() > 0xFFFFFFFF):
        raise _invalid("chunk coordinates must fit in uint32")
    columns: list[tuple[str, npt.NDArray[np.generic], tuple[int, ...]]] = [
        ("kind", refs.kind, (n,)),
        ("chunk_id", refs.chunk_id, (n, 12)),
        ("offset", refs.offset, (n,)),
        ("length", refs.length, (n,)),
    ]
    for label, col, shape in columns:
        if np.shape(col) != shape:
            raise _invalid(f"{label} must have shape {shape}, got {np.shape(col)}")
    for label, values in (
        ("inline", refs.inline),
        ("location", refs.location),
        ("checksum_etag", refs.checksum_etag),
    ):
        if values and len(values) != n:
            raise _invalid(f"{label} must be empty or hold one entry per ref")
    modified = refs.checksum_last_modified
    if modified is not None and np.shape(modified) != (n,):
        raise _invalid("checksum_last_modified must hold one entry per ref")
    refs = ChunkRefs(
        coords=coords.astype(np.uint32, copy=False),
        kind=np.asarray(refs.kind, dtype=np.uint8),
        chunk_id=np.ascontiguousarray(refs.chunk_id, dtype=np.uint8),
        offset=np.asarray(refs.offset, dtype=np.uint64),
        length=np.asarray(refs.length, dtype=np.uint64),
        inline=refs.inline,
        location=refs.location,
        checksum_etag=refs.checksum_etag,
        checksum_last_modified=None if modified is None else np.asarray(modified, np.uint32),
    )
    if n < 2 or ascending_rows(refs.coords):
        return refs
    order = np.lexsort(refs.coords.T[::-1]) if refs.coords.shape[1] else np.arange(n)
    refs = _take(refs, order)
    if not ascending_rows(refs.coords):
        raise _invalid("two refs have the same chunk coordinates")
    return refs


def _codes(refs: ChunkRefs) -> npt.NDArray[np.uint8]:
    """The layout code of every ref."""
    kind = refs.kind
    native = kind == ChunkKind.NATIVE
    virtual = kind == ChunkKind.VIRTUAL
    inline = kind == ChunkKind.INLINE
    if not (native | virtual | inline).all():
        raise _invalid("unknown chunk kind")
    code = native * np.uint8(_NATIVE) | inline * np.uint8(_INLINE_BIT)
    code |= virtual * np.uint8(_VIRTUAL)
    code |= ((native | virtual) & (refs.offset != 0)) * np.uint8(_HAS_OFFSET)
    if virtual.any():
        if not refs.location:
            raise _invalid("virtual refs need locations")
        etags = refs.checksum_etag
        if etags:
            has_etag = np.fromiter((e is not None for e in etags), dtype=bool, count=len(etags))
            code |= (virtual & has_etag) * np.uint8(_HAS_ETAG)
        modified = refs.checksum_last_modified
        if modified is not None:
            code |= (virtual & (modified != 0)) * np.uint8(_HAS_MODIFIED)
    if inline.any() and not refs.inline:
        raise _invalid("inline refs need their bytes")
    out: npt.NDArray[np.uint8] = code.astype(np.uint8)
    return out
