"""Chunk manifests (``manifests/<id>``, file type 2), spec 1 and spec 2, vectorised with numpy.

Flatbuffer slots::

    Manifest       0 id  1 arrays  2 location_dictionary (v2)  3 compression_algorithm (v2,
                   default 1)  4 extra
    ArrayManifest  0 node_id  1 refs  2 extra
    ChunkRef       0 index  1 inline  2 offset  3 length  4 chunk_id  5 location
                   6 checksum_etag  7 checksum_last_modified  8 compressed_location (v2)  9 extra

Encoding. Each array's refs vector and ChunkRef tables are laid out by numpy as one
position-independent block; the few outer tables are written around the blocks front to back
(see ``_assemble``), so no per-ref builder call and no extra copy is needed. Every ref gets a table whose layout depends only on which fields it has (its *code*),
so all refs of one code share one vtable and fixed field positions; fixed-size fields are
scattered with numpy, and only variable-length children (inline bytes, URLs, etags) are copied
one by one. A record is::

    table (8-aligned): soffset, index uoffset, [length u64, offset u64], [uoffsets of inline /
                       location / etag], [last_modified u32], [chunk_id 12 bytes], padding
    index vector:      u32 ndim, ndim x u32
    variable children: inline bytes / location string / etag string, each 4-aligned

A native ref of a 2-d array is therefore 48 bytes. Offsets equal to 0 are omitted, as real
Icechunk does.

Virtual locations. Spec 2 writes ``compression_algorithm = 0`` explicitly and plain ``location``
strings, unless :class:`LocationCompression` says to compress: then a zstd dictionary trained
on a sample of the manifest's locations goes to ``location_dictionary``, every virtual ref gets
its URL as one zstd frame (made with that dictionary) in ``compressed_location`` instead of
``location``, and ``compression_algorithm`` is omitted (its schema default, 1, means zstd with
a dictionary), as the real Icechunk writes it.

Decoding reads all ChunkRef tables of an array column-wise with
:class:`~icechunk.format.flatbuf.TableColumns`, whatever their vtables; dictionary-compressed
virtual locations are decompressed with the manifest's zstd dictionary.
:class:`ManifestView` opens a manifest without decoding its refs and finds single refs by
binary search (refs are sorted by coordinates), for reads that need only a few chunks.
"""

from __future__ import annotations

import itertools
import operator
import random
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import zstandard

from icechunk.errors import ErrorKind, InvalidInputError
from icechunk.format.flatbuf import (
    Buffer,
    Table,
    TableColumns,
    check_id,
    decoding,
    gather,
    gather_rows,
)
from icechunk.format.header import decode_object, decompress, encode_object
from icechunk.format.model import (
    ArrayManifest,
    ChunkKind,
    ChunkRefs,
    FileType,
    Manifest,
)

__all__ = [
    "LocationCompression",
    "ManifestView",
    "ascending_rows",
    "checked_refs",
    "decode_manifest",
    "encode_manifest",
]

# ChunkRef slots
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


def checked_refs(refs: ChunkRefs) -> ChunkRefs:
    """``refs`` validated as :func:`encode_manifest` would, sorted by coordinates.

    Raises
    ------
    InvalidInputError
        Inconsistent column shapes, coordinates outside ``uint32``, two refs with the same
        coordinates, an unknown kind, inline refs without bytes or virtual refs without a
        location (or with a non-string etag).
    """
    refs = _normalized(refs)
    _check_children(refs, _codes(refs))
    return refs


def _check_children(refs: ChunkRefs, codes: npt.NDArray[np.uint8]) -> None:
    """Refuse what :func:`_children` would: inline refs without bytes, virtual refs without a
    location or with a non-string etag; checks types only, without encoding anything."""
    inline = np.flatnonzero(codes & np.uint8(_INLINE_BIT))
    if len(inline) and not set(map(type, _pick(refs.inline, inline))) <= {bytes}:
        _children(refs, codes)  # names the bad ref (or accepts bytearray / memoryview)
        return
    virtual = np.flatnonzero(codes & np.uint8(_VIRTUAL))
    if not len(virtual):
        return
    tagged = virtual[(codes[virtual] & np.uint8(_HAS_ETAG)) != 0]
    if set(map(type, _pick(refs.location, virtual))) != {str} or (
        len(tagged) and set(map(type, _pick(refs.checksum_etag, tagged))) != {str}
    ):
        _children(refs, codes)  # raises, naming the bad ref


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


class _Children:
    """One kind of variable-length child (inline bytes, location or etag) of some refs.

    ``refs[k]`` gets the child ``blob[begin[k] : begin[k] + stored[k]]`` (strings end with a
    NUL, counted in ``stored`` but not in the length prefix), ``size[k]`` bytes with prefix and
    padding, placed ``skip[k]`` bytes after the ref's index vector, its uoffset in field
    ``field``.
    """

    __slots__ = ("blob", "field", "nul", "refs", "size", "skip", "stored")

    def __init__(self, refs: npt.NDArray[np.intp], parts: list[bytes], field: str, nul: bool):
        self.refs = refs
        self.field = field
        self.nul = nul
        lengths = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
        self.stored = lengths + 1 if nul else lengths
        self.blob = np.frombuffer(
            b"\x00".join(parts) + b"\x00" if nul else b"".join(parts), dtype=np.uint8
        )
        self.size = (self.stored + 7) & ~3  # 4-byte prefix, then padded to 4
        self.skip = np.zeros(len(parts), dtype=np.int64)


def _pick[T](values: list[T], idx: npt.NDArray[np.intp]) -> list[T]:
    """``[values[i] for i in idx]``, at C speed."""
    if len(idx) == len(values):
        return values
    if len(idx) == 0:
        return []
    if len(idx) == 1:
        return [values[int(idx[0])]]
    return list(operator.itemgetter(*idx.tolist())(values))


def _encoded(values: list[str | None], idx: npt.NDArray[np.intp], what: str) -> list[bytes]:
    """The UTF-8 bytes of ``values`` at ``idx``; all must be strings."""
    picked = _pick(values, idx)
    try:
        # many refs usually share a few locations: encode each distinct string once
        distinct = dict.fromkeys(picked)
        if len(distinct) * 4 < len(picked):
            encoded = {v: v.encode("utf-8") for v in distinct}  # type: ignore[union-attr]
            return list(map(encoded.__getitem__, picked))
        return [v.encode("utf-8") for v in picked]  # type: ignore[union-attr]
    except (AttributeError, TypeError):
        bad = next(int(i) for i, v in zip(idx, picked, strict=True) if not isinstance(v, str))
        raise _invalid(f"virtual ref {bad} has no {what}") from None


type _Compress = Callable[[list[bytes]], list[bytes]]
"""Maps UTF-8 locations to their compressed frames (one each, in order)."""


def _children(
    refs: ChunkRefs, codes: npt.NDArray[np.uint8], compress: _Compress | None = None
) -> list[_Children]:
    """The variable-length children of the refs: inline bytes, locations and etags."""
    out: list[_Children] = []
    inline = np.flatnonzero(codes & np.uint8(_INLINE_BIT))
    if len(inline):
        data = _pick(refs.inline, inline)
        if set(map(type, data)) != {bytes}:
            for i, d in zip(inline.tolist(), data, strict=True):
                if not isinstance(d, (bytes, bytearray, memoryview)):
                    raise _invalid(f"inline ref {i} has no bytes")
            data = [bytes(d) for d in data]  # type: ignore[arg-type]
        out.append(_Children(inline, data, "inline", nul=False))  # type: ignore[arg-type]
    virtual = np.flatnonzero(codes & np.uint8(_VIRTUAL))
    if len(virtual):
        urls = _encoded(refs.location, virtual, "location")
        if compress is None:
            loc = _Children(virtual, urls, "location", True)
        else:
            loc = _Children(virtual, compress(urls), "location", False)
        out.append(loc)
        with_etag = (codes[virtual] & np.uint8(_HAS_ETAG)) != 0
        if with_etag.any():
            tagged = virtual[with_etag]
            etag = _Children(tagged, _encoded(refs.checksum_etag, tagged, "etag"), "etag", True)
            etag.skip = loc.size[with_etag]
            out.append(etag)
    return out


def _refs_block(
    refs: ChunkRefs, compress: _Compress | None = None
) -> tuple[npt.NDArray[np.uint8], int]:
    """The refs vector and its ChunkRef tables as one block; returns (block, vector position).

    The block must start 8-aligned; all its offsets are relative to positions inside it. With
    ``compress``, virtual locations are stored compressed (``compressed_location``).
    """
    n, ndim = refs.coords.shape
    codes = _codes(refs)
    if compress is not None:
        codes |= ((codes & np.uint8(_VIRTUAL)) != 0) * np.uint8(_COMPRESSED)
    present = np.flatnonzero(np.bincount(codes, minlength=_NUM_CODES)).tolist()
    # vtables first, then the uoffset vector, then the records
    vt_pos = np.zeros(_NUM_CODES, dtype=np.int64)
    pos = 0
    for code in present:
        vt_pos[code] = pos
        pos += len(_LAYOUTS[code].vtable)
    vec = _align(pos, 4)
    first = _align(vec + 4 + 4 * n, 8)
    table_size = np.zeros(_NUM_CODES, dtype=np.int64)
    for code in present:
        table_size[code] = _LAYOUTS[code].size
    tsize = table_size[codes]
    record = tsize + 4 + 4 * ndim
    children = _children(refs, codes, compress)
    for child in children:
        record[child.refs] += child.size
    record = (record + 7) & ~7
    starts = np.empty(n, dtype=np.int64)
    if n:
        starts[0] = first
        np.cumsum(record[:-1], out=starts[1:])
        starts[1:] += first
    size = first + int(record.sum())
    out = np.zeros(size, dtype=np.uint8)
    for code in present:
        vt = _LAYOUTS[code].vtable
        out[vt_pos[code] : vt_pos[code] + len(vt)] = np.frombuffer(vt, dtype=np.uint8)
    w32 = out.view("<u4")
    w32[vec // 4] = n
    w32[vec // 4 + 1 : vec // 4 + 1 + n] = starts - (vec + 4 + 4 * np.arange(n, dtype=np.int64))
    q = starts // 4
    out.view("<i4")[q] = starts - vt_pos[codes]
    w32[q + 1] = tsize - 4
    index_at = (starts + tsize) // 4
    w32[index_at] = ndim
    for k in range(ndim):
        w32[index_at + 1 + k] = refs.coords[:, k]
    w64 = out.view("<u8")
    sized = (codes & np.uint8(_NATIVE | _VIRTUAL)) != 0
    w64[starts[sized] // 8 + 1] = refs.length[sized]
    with_offset = (codes & np.uint8(_HAS_OFFSET)) != 0
    w64[starts[with_offset] // 8 + 2] = refs.offset[with_offset]
    _write_fixed(refs, codes, starts, w32)
    for child in children:
        _write_children(child, codes, starts, tsize, ndim, out)
    return out, vec


def _field_pos(codes: npt.NDArray[np.uint8], attr: str) -> npt.NDArray[np.int64]:
    """Per ref, the in-table position of the layout field ``attr``."""
    return _FIELD_POS[attr][codes]


_FIELD_POS: Final = {
    attr: np.array([getattr(_LAYOUTS[c], attr) for c in range(_NUM_CODES)], dtype=np.int64)
    for attr in ("chunk_id", "etag", "inline", "location", "modified")
}


def _write_fixed(
    refs: ChunkRefs,
    codes: npt.NDArray[np.uint8],
    starts: npt.NDArray[np.int64],
    w32: npt.NDArray[np.uint32],
) -> None:
    native = (codes & np.uint8(_NATIVE)) != 0
    if native.any():
        ids = np.ascontiguousarray(refs.chunk_id[native]).view("<u4")
        at = (starts[native] + _field_pos(codes[native], "chunk_id")) // 4
        for k in range(3):
            w32[at + k] = ids[:, k]
    modified = (codes & np.uint8(_HAS_MODIFIED)) != 0
    if modified.any():
        assert refs.checksum_last_modified is not None
        at = (starts[modified] + _field_pos(codes[modified], "modified")) // 4
        w32[at] = refs.checksum_last_modified[modified]


def _write_children(
    child: _Children,
    codes: npt.NDArray[np.uint8],
    starts: npt.NDArray[np.int64],
    tsize: npt.NDArray[np.int64],
    ndim: int,
    out: npt.NDArray[np.uint8],
) -> None:
    """Scatter one kind of children into their records: uoffset, length prefix, bytes."""
    i = child.refs
    at = starts[i] + tsize[i] + 4 + 4 * ndim + child.skip
    field_at = starts[i] + _field_pos(codes[i], child.field)
    w32 = out.view("<u4")
    w32[field_at // 4] = at - field_at
    w32[at // 4] = child.stored - 1 if child.nul else child.stored
    if int(child.stored.sum()):
        _scatter(out, at + 4, child.stored, child.blob)


_SCATTER_BATCH: Final = 1 << 14
"""Pieces copied per batch by the index-array fallback of :func:`_scatter` (bounds memory)."""


def _scatter(
    out: npt.NDArray[np.uint8],
    dest: npt.NDArray[np.int64],
    sizes: npt.NDArray[np.int64],
    blob: npt.NDArray[np.uint8],
) -> None:
    """Copy the consecutive pieces of ``blob`` (``sizes`` bytes each) to ``out[dest[k]:]``.

    Pieces usually come in long runs of equal size at equal distance (refs of one layout,
    one location): each such run is one strided copy, with no per-byte index array. Otherwise
    pieces are copied in batches through index arrays of bounded size.
    """
    n = len(sizes)
    first = np.zeros(n, dtype=np.int64)
    np.cumsum(sizes[:-1], out=first[1:])
    # a run continues at k while the size and the distance from the previous piece stay equal
    step = np.diff(dest)
    brk = np.zeros(n, dtype=bool)
    brk[0] = True
    brk[1:] = sizes[1:] != sizes[:-1]
    brk[2:] |= step[1:] != step[:-1]
    runs = np.flatnonzero(brk)
    if len(runs) * 16 <= n:
        bounds = [*runs.tolist(), n]
        for a, b in itertools.pairwise(bounds):
            size = int(sizes[a])
            stride = int(step[a]) if b - a > 1 else size
            target = np.lib.stride_tricks.as_strided(
                out[int(dest[a]) :], shape=(b - a, size), strides=(stride, 1), writeable=True
            )
            target[...] = blob[int(first[a]) : int(first[a]) + (b - a) * size].reshape(b - a, size)
        return
    for a in range(0, n, _SCATTER_BATCH):
        b = min(n, a + _SCATTER_BATCH)
        lo, hi = int(first[a]), int(first[b - 1] + sizes[b - 1])
        idx = np.repeat(dest[a:b] - first[a:b], sizes[a:b]) + np.arange(lo, hi, dtype=np.int64)
        out[idx] = blob[lo:hi]


@dataclass(frozen=True, slots=True)
class LocationCompression:
    """When and how spec-2 manifests store virtual chunk locations dictionary-compressed.

    Attributes
    ----------
    min_num_chunks
        Compress only manifests with at least this many virtual refs (all arrays together).
    max_training_samples
        Train the dictionary on a uniform random sample of at most this many locations.
    max_dictionary_size
        Largest dictionary, in bytes.
    level
        zstd level of the location frames.
    """

    min_num_chunks: int = 1000
    max_training_samples: int = 100
    max_dictionary_size: int = 2048
    level: int = 3


def _train_dictionary(
    urls: list[str], config: LocationCompression, seed: bytes
) -> zstandard.ZstdCompressionDict | None:
    """A zstd dictionary for ``urls``, or ``None`` when they are unsuitable for training."""
    k = config.max_training_samples
    sample = urls if len(urls) <= k else random.Random(seed).sample(urls, k)
    parts = [u.encode("utf-8") for u in sample]
    if not parts or sum(len(p) < 8 for p in parts) >= len(parts) / 2:
        return None  # zstd trains nothing useful from mostly tiny samples
    total = sum(map(len, parts))
    if total < config.max_dictionary_size:  # training wants at least a dictionary's worth
        parts = parts * (config.max_dictionary_size // total + 2)
    try:
        samples: list[bytes | bytearray | memoryview] = list(parts)
        return zstandard.train_dictionary(config.max_dictionary_size, samples)
    except zstandard.ZstdError:
        return None


def _location_compressor(
    refs: list[ChunkRefs], config: LocationCompression | None, seed: bytes
) -> tuple[_Compress, bytes] | None:
    """``(compress, dictionary bytes)`` if ``config`` says to compress these refs' locations."""
    if config is None:
        return None
    virtual = [np.flatnonzero(r.kind == ChunkKind.VIRTUAL) for r in refs]
    if sum(map(len, virtual)) < max(config.min_num_chunks, 1):
        return None
    urls: list[str] = []
    for r, idx in zip(refs, virtual, strict=True):
        picked = _pick(r.location, idx) if r.location else []
        urls.extend(u for u in picked if isinstance(u, str))
    dictionary = _train_dictionary(urls, config, seed)
    if dictionary is None:
        return None
    cctx = zstandard.ZstdCompressor(level=config.level, dict_data=dictionary)
    done: dict[bytes, bytes] = {}

    def compress(parts: list[bytes]) -> list[bytes]:
        out = []
        for part in parts:
            frame = done.get(part)
            if frame is None:
                frame = done[part] = cctx.compress(part)
            out.append(frame)
        return out

    return compress, dictionary.as_bytes()


def encode_manifest(
    m: Manifest, spec_version: int, location_compression: LocationCompression | None = None
) -> bytes:
    """The complete bytes of the manifest object for ``m`` in ``spec_version`` (1 or 2).

    Arrays are written sorted by node id and each array's refs sorted by chunk coordinates
    (both sorted here if the record is not). Virtual locations are written uncompressed,
    except in spec 2 when ``location_compression`` is given and the manifest has at least its
    ``min_num_chunks`` virtual refs (and a dictionary can be trained from their locations).

    Raises
    ------
    InvalidInputError
        Unsupported ``spec_version``, ids of the wrong size, two arrays with one node id,
        two refs with the same coordinates, or inconsistent ref columns.
    """
    if spec_version not in (1, 2):
        raise InvalidInputError(
            f"cannot write spec version {spec_version!r}: supported versions are 1 and 2",
            ErrorKind.UNSUPPORTED_SPEC_VERSION,
        )
    arrays = sorted(m.arrays, key=lambda a: check_id(a.node_id, 8, "node id"))
    for a, b_ in itertools.pairwise(arrays):
        if a.node_id == b_.node_id:
            raise _invalid("two arrays of one manifest have the same node id")
    manifest_id = check_id(m.id, 12, "manifest id")
    refs = [_normalized(a.refs) for a in arrays]
    compressor = (
        _location_compressor(refs, location_compression, manifest_id) if spec_version >= 2 else None
    )
    compress, dictionary = (None, None) if compressor is None else compressor
    blocks = [_refs_block(r, compress) for r in refs]
    payload = _assemble(manifest_id, arrays, blocks, spec_version, dictionary)
    return encode_object(payload, FileType.MANIFEST, spec_version)


# The outer tables, laid out front to back (every offset points forwards):
#   0  root uoffset   4  "Ichk"   8  Manifest vtable
#   Manifest table: soffset, arrays uoffset (+4), id (+8, 12 bytes), compression_algorithm (+20)
#   arrays vector, then per array (8-aligned): ArrayManifest vtable (8 bytes), ArrayManifest
#   table (soffset, node_id at +4, refs uoffset at +12), then the array's refs block.
#   With a location dictionary (spec 2 only): its uoffset at +20 instead of
#   compression_algorithm (omitted: default 1), the dictionary vector at the end.
_MANIFEST_VTABLE: Final = {
    1: struct.pack("<4H", 8, 24, 8, 4),
    2: struct.pack("<6H", 12, 24, 8, 4, 0, 20),  # compression_algorithm = 0 written explicitly
}
_MANIFEST_VTABLE_DICTIONARY: Final = struct.pack("<5H", 10, 24, 8, 4, 20)
_ARRAY_VTABLE: Final = struct.pack("<4H", 8, 16, 4, 12)


def _assemble(
    manifest_id: bytes,
    arrays: list[ArrayManifest],
    blocks: list[tuple[npt.NDArray[np.uint8], int]],
    spec: int,
    dictionary: bytes | None = None,
) -> bytearray:
    """The manifest flatbuffer around the per-array refs blocks (and location dictionary)."""
    vtable = _MANIFEST_VTABLE[spec] if dictionary is None else _MANIFEST_VTABLE_DICTIONARY
    table = _align(8 + len(vtable), 4)
    vec = table + 24
    sections = []
    pos = _align(vec + 4 + 4 * len(arrays), 8)
    for block, _ in blocks:
        sections.append(pos)
        pos += 24 + block.size
    dict_at = pos
    if dictionary is not None:
        pos += 4 + len(dictionary)
    if pos >= 1 << 31:
        raise _invalid(
            f"the manifest would be {pos} bytes, over the 2 GiB flatbuffer limit; split it"
        )
    out = bytearray(pos)
    struct.pack_into("<I4s", out, 0, table, b"Ichk")
    out[8 : 8 + len(vtable)] = vtable
    struct.pack_into("<iI12s", out, table, table - 8, vec - (table + 4), manifest_id)
    struct.pack_into("<I", out, vec, len(arrays))
    if dictionary is not None:
        struct.pack_into("<I", out, table + 20, dict_at - (table + 20))
        struct.pack_into("<I", out, dict_at, len(dictionary))
        out[dict_at + 4 : pos] = dictionary
    for i, (a, (block, refs_vec), at) in enumerate(zip(arrays, blocks, sections, strict=True)):
        slot = vec + 4 + 4 * i
        struct.pack_into("<I", out, slot, at + 8 - slot)
        out[at : at + 8] = _ARRAY_VTABLE
        refs_at = at + 24 + refs_vec
        struct.pack_into("<i8sI", out, at + 8, 8, bytes(a.node_id), refs_at - (at + 20))
        out[at + 24 : at + 24 + block.size] = memoryview(block)
    return out


class _Locations:
    """Decompression of dictionary-compressed virtual chunk locations."""

    def __init__(self, buf: Buffer, dictionary: bytes | None) -> None:
        self.buf = buf
        self.dictionary_size = None if dictionary is None else len(dictionary)
        self.dctx = (
            zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(dictionary))
            if dictionary
            else zstandard.ZstdDecompressor()
        )

    def __call__(self, pos: int) -> str:
        return self.frame(self.buf.bytes_at(pos))

    def frame(self, frame: bytes) -> str:
        """The location compressed in ``frame`` (one zstd frame made with the dictionary)."""
        raw = decompress(frame, self.buf.name, _MAX_LOCATION_SIZE, self.dctx)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.buf.error("a compressed location is not valid UTF-8") from None

    def many(self, frames: list[bytes]) -> list[str]:
        """The locations of ``frames``; equal frames (one URL, one dictionary) decode once."""
        distinct = list(dict.fromkeys(frames))
        urls: list[str] | None = None
        try:  # fast path, in bulk: frames recording their small sizes, as both writers make
            sizes = [zstandard.get_frame_parameters(f).content_size for f in distinct]
            if all(0 < k <= _MAX_LOCATION_SIZE for k in sizes):
                raws = list(map(self.dctx.decompress, distinct))
                if list(map(len, raws)) == sizes:
                    urls = [r.decode("utf-8") for r in raws]
        except (zstandard.ZstdError, UnicodeDecodeError):
            urls = None
        if urls is None:  # the careful path, one by one, naming the fault
            urls = list(map(self.frame, distinct))
        table = dict(zip(distinct, urls, strict=True))
        return list(map(table.__getitem__, frames))


def _vectors(buf: Buffer, at: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], ...]:
    """``(starts, lengths)`` of the byte vectors whose length prefixes are at ``at``."""
    sizes = gather(buf, at, "<u4").astype(np.int64)
    if len(at) and int((at + 4 + sizes).max()) > buf.size:
        raise buf.error("a byte vector of a chunk ref runs past the end of the buffer")
    buf.charge(len(at))
    return at + 4, sizes


def _blobs(buf: Buffer, starts: npt.NDArray[np.int64], sizes: npt.NDArray[np.int64]) -> list[bytes]:
    """The bytes ``data[start : start + size]`` of each vector."""
    distinct = np.unique(sizes)
    if len(distinct) > 16:
        data = buf.data
        return [data[a : a + k] for a, k in zip(starts.tolist(), sizes.tolist(), strict=True)]
    if len(distinct) == 1:
        k = int(distinct[0])
        if k == 0:
            return [b""] * len(starts)
        rows = gather_rows(buf, starts, k, "u1")
        out: list[bytes] = np.ascontiguousarray(rows).view(f"V{k}").reshape(-1).tolist()
        return out
    parts = np.empty(len(starts), dtype=object)
    for k in distinct.tolist():
        sel = np.flatnonzero(sizes == k)
        parts[sel] = _blobs(buf, starts[sel], sizes[sel])
    spread: list[bytes] = parts.tolist()
    return spread


def _strings(buf: Buffer, starts: npt.NDArray[np.int64], sizes: npt.NDArray[np.int64]) -> list[str]:
    """The UTF-8 strings stored in the vectors."""
    data = buf.data
    try:
        return [
            data[a : a + k].decode("utf-8")
            for a, k in zip(starts.tolist(), sizes.tolist(), strict=True)
        ]
    except UnicodeDecodeError:
        raise buf.error("a string of a chunk ref is not valid UTF-8") from None


def _spread[T](values: list[T], idx: npt.NDArray[np.intp], n: int) -> list[T | None]:
    """A list of ``n`` entries: ``values`` at positions ``idx``, ``None`` elsewhere."""
    if len(idx) == n:
        return values  # type: ignore[return-value]
    out = np.full(n, None, dtype=object)
    out[idx] = _as_objects(values)
    spread: list[T | None] = out.tolist()
    return spread


def _as_objects(values: Sequence[object]) -> npt.NDArray[np.object_]:
    """``values`` as a 1-d object array (numpy would otherwise split equal-size bytes)."""
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


def _read_refs(buf: Buffer, vec_pos: int, locations: _Locations) -> ChunkRefs:
    cols = TableColumns(buf, vec_pos, "ArrayManifest.refs")
    n = cols.n
    starts, lengths = cols.u32_vectors(_INDEX, "ChunkRef.index")
    ndim = int(lengths[0]) if n else 0
    if n and (lengths != ndim).any():
        raise buf.error("the chunk refs of one array differ in dimensionality")
    coords = gather_rows(buf, starts, ndim, "<u4").astype(np.uint32, copy=False)
    chunk_id, native = cols.struct(_CHUNK_ID, 12)
    offset = cols.scalar(_OFFSET, "<u8").astype(np.uint64, copy=False)
    length = cols.scalar(_LENGTH, "<u8").astype(np.uint64, copy=False)
    inline_at = cols.children(_INLINE)
    location_at = cols.children(_LOCATION)
    compressed_at = cols.children(_COMPRESSED_LOCATION)
    virtual = ~native & ((location_at >= 0) | (compressed_at >= 0))
    inline = ~native & ~virtual & (inline_at >= 0)
    if not (native | virtual | inline).all():
        raise buf.error("a chunk ref has neither a chunk id, a location nor inline bytes")
    kind = np.where(
        native, ChunkKind.NATIVE, np.where(virtual, ChunkKind.VIRTUAL, ChunkKind.INLINE)
    )
    refs = ChunkRefs(coords, kind.astype(np.uint8), chunk_id, offset, length)
    if inline.any():
        idx = np.flatnonzero(inline)
        starts_, sizes = _vectors(buf, inline_at[idx])
        length[idx] = sizes
        offset[idx] = 0
        refs.inline = _spread(_blobs(buf, starts_, sizes), idx, n)
    if virtual.any():
        etag_at = cols.children(_ETAG)
        urls: list[str | None] = [None] * n
        plain = virtual & (compressed_at < 0)
        if plain.any():
            idx = np.flatnonzero(plain)
            strs = _strings(buf, *_vectors(buf, location_at[idx]))
            urls = _spread(strs, idx, n)
        packed = np.flatnonzero(virtual & ~plain)
        if len(packed):
            frames = _blobs(buf, *_vectors(buf, compressed_at[packed]))
            for i, url in zip(packed.tolist(), locations.many(frames), strict=True):
                urls[i] = url
        etags: list[str | None] = [None] * n
        tagged = virtual & (etag_at >= 0)
        if tagged.any():
            idx = np.flatnonzero(tagged)
            etags = _spread(_strings(buf, *_vectors(buf, etag_at[idx])), idx, n)
        refs.location = urls
        refs.checksum_etag = etags
        modified = cols.scalar(_LAST_MODIFIED, "<u4").astype(np.uint32, copy=False)
        modified[~virtual] = 0
        refs.checksum_last_modified = modified
    return refs


def decode_manifest(data: bytes, name: str) -> Manifest:
    """Decode the manifest object ``data`` stored at key ``name``.

    Accepts spec-1 and spec-2 objects, native, inline and virtual refs (plain or
    dictionary-compressed locations). For inline refs ``length`` is the inline data size.

    Raises
    ------
    FormatError
        The object is corrupt, truncated, of another kind or of an unsupported spec version;
        the message names ``name``.
    """
    return ManifestView(data, name).decode()


class ManifestView:
    """A decompressed manifest whose chunk refs are decoded on demand.

    Opening one checks the header and the outer tables only. :meth:`lookup` then finds one
    chunk ref by binary search over an array's refs (which the format keeps sorted by
    coordinates) and decodes that ref alone: serving a few chunks of a large manifest costs
    ``O(log n)`` table visits instead of decoding every ref. :meth:`decode` decodes it all.

    Parameters
    ----------
    data
        The manifest object (header and compressed flatbuffer).
    name
        Its key, for error messages.

    Raises
    ------
    FormatError
        The header, the root table or the array list is corrupt (refs are checked when read).
    """

    __slots__ = ("_arrays", "_budget", "_buf", "_locations", "id", "lookups", "spec_version")

    def __init__(self, data: bytes, name: str) -> None:
        spec, payload = decode_object(data, name, FileType.MANIFEST)
        self.spec_version = spec
        self.lookups = 0
        """How many :meth:`lookup` calls this view served (callers switch to a full decode)."""
        with decoding(name, "manifest"):
            buf = Buffer(payload, name, "manifest")
            self._budget = buf.budget
            root = buf.root()
            self.id = root.struct_req(0, 12, "Manifest.id")
            self._locations = _Locations(buf, root.blob(2, "Manifest.location_dictionary"))
            arrays: list[tuple[bytes, int]] = []
            for t in root.tables_req(1, "Manifest.arrays"):
                node_id = t.struct_req(0, 8, "ArrayManifest.node_id")
                arrays.append((node_id, t.child(1, "ArrayManifest.refs", required=True)))
        self._buf = buf
        self._arrays = arrays

    @property
    def nbytes(self) -> int:
        """Size of the decompressed flatbuffer held."""
        return self._buf.size

    def decode(self) -> Manifest:
        """The whole manifest, every ref decoded (see :func:`decode_manifest`)."""
        buf = self._buf
        buf.budget = self._budget
        with decoding(buf.name, "manifest"):
            arrays = [
                ArrayManifest(node_id, _read_refs(buf, pos, self._locations))
                for node_id, pos in self._arrays
            ]
        return Manifest(self.id, arrays, spec_version=self.spec_version)

    def location_compression(self) -> tuple[int | None, int]:
        """``(dictionary size, refs stored with a compressed location)``; the size is ``None``
        when the manifest has no location dictionary."""
        buf = self._buf
        buf.budget = self._budget
        with decoding(buf.name, "manifest"):
            compressed = sum(
                int(
                    np.count_nonzero(
                        TableColumns(buf, pos, "ArrayManifest.refs").children(_COMPRESSED_LOCATION)
                        >= 0
                    )
                )
                for _, pos in self._arrays
            )
        return self._locations.dictionary_size, compressed

    def has_array(self, node_id: bytes) -> bool:
        """Whether the manifest lists refs for the array ``node_id``."""
        return any(n == node_id for n, _ in self._arrays)

    def lookup(self, node_id: bytes, coords: tuple[int, ...]) -> ChunkRefs | None:
        """The ref of chunk ``coords`` of array ``node_id`` as a one-row :class:`ChunkRefs`.

        ``None`` when the manifest has no such array or no ref at ``coords`` (including
        coordinates of another dimensionality than the array's refs).

        Raises
        ------
        FormatError
            A ref visited by the search is corrupt.
        """
        buf = self._buf
        pos = next((p for n, p in self._arrays if n == node_id), None)
        if pos is None:
            return None
        buf.budget = self._budget  # a search visits O(log n) tables: no cycle can hide here
        with decoding(buf.name, "manifest"):
            start, n = buf.vector(pos, 4)
            target = tuple(coords)
            lo, hi = 0, n
            while lo < hi:
                mid = (lo + hi) // 2
                table = buf.table_at(buf.deref(start + 4 * mid))
                key = _ref_coords(buf, table)
                if len(key) != len(target):
                    return None  # the refs are of another dimensionality
                if key < target:
                    lo = mid + 1
                elif key > target:
                    hi = mid
                else:
                    return _read_ref(buf, table, key, self._locations)
        return None


def _ref_coords(buf: Buffer, table: Table) -> tuple[int, ...]:
    """The chunk coordinates (``ChunkRef.index``) of the ref ``table``."""
    start, k = buf.vector(table.child(_INDEX, "ChunkRef.index", required=True), 4)
    coords: tuple[int, ...] = struct.unpack_from(f"<{k}I", buf.data, start)
    return coords


def _read_ref(
    buf: Buffer, table: Table, coords: tuple[int, ...], locations: _Locations
) -> ChunkRefs:
    """One ref, decoded as :func:`_read_refs` decodes each of an array's refs."""
    chunk_id = table.struct(_CHUNK_ID, 12)
    offset = table.scalar(_OFFSET, "u64")
    length = table.scalar(_LENGTH, "u64")
    inline_at = table.child(_INLINE, "ChunkRef.inline")
    location_at = table.child(_LOCATION, "ChunkRef.location")
    compressed_at = table.child(_COMPRESSED_LOCATION, "ChunkRef.compressed_location")
    if chunk_id is not None:
        kind = ChunkKind.NATIVE
    elif location_at or compressed_at:
        kind = ChunkKind.VIRTUAL
    elif inline_at:
        kind = ChunkKind.INLINE
    else:
        raise buf.error("a chunk ref has neither a chunk id, a location nor inline bytes")
    inline = buf.bytes_at(inline_at) if kind == ChunkKind.INLINE else None
    if inline is not None:
        offset, length = 0, len(inline)
    refs = ChunkRefs(
        np.array([coords], dtype=np.uint32).reshape(1, len(coords)),
        np.array([kind], dtype=np.uint8),
        np.frombuffer(chunk_id or bytes(12), dtype=np.uint8).reshape(1, 12).copy(),
        np.array([offset], dtype=np.uint64),
        np.array([length], dtype=np.uint64),
    )
    if inline is not None:
        refs.inline = [inline]
    if kind == ChunkKind.VIRTUAL:
        refs.location = [buf.string_at(location_at) if location_at else locations(compressed_at)]
        etag_at = table.child(_ETAG, "ChunkRef.checksum_etag")
        refs.checksum_etag = [buf.string_at(etag_at) if etag_at else None]
        modified = table.scalar(_LAST_MODIFIED, "u32")
        refs.checksum_last_modified = np.array([modified], dtype=np.uint32)
    return refs
