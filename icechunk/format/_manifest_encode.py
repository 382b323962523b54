"""Encoding chunk manifests: numpy lays out every array's ChunkRef tables as one block.

See :mod:`icechunk.format.manifest` for the layout; :func:`encode_manifest` is re-exported there.
"""

from __future__ import annotations

import itertools
import operator
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import zstandard

from icechunk.errors import ErrorKind, InvalidInputError
from icechunk.format._manifest_common import (
    _COMPRESSED,
    _HAS_ETAG,
    _HAS_MODIFIED,
    _HAS_OFFSET,
    _INLINE_BIT,
    _LAYOUTS,
    _NATIVE,
    _NUM_CODES,
    _VIRTUAL,
    _align,
    _codes,
    _invalid,
    _normalized,
)
from icechunk.format.flatbuf import (
    check_id,
)
from icechunk.format.header import encode_object
from icechunk.format.model import (
    ArrayManifest,
    ChunkKind,
    ChunkRefs,
    FileType,
    Manifest,
)


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
