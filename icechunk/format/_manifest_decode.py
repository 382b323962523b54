"""Decoding chunk manifests: column-wise reads of the ChunkRef tables, and :class:`ManifestView`.

See :mod:`icechunk.format.manifest` for the layout; the public names are re-exported there.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import zstandard

from icechunk.format._manifest_common import (
    _CHUNK_ID,
    _COMPRESSED_LOCATION,
    _ETAG,
    _INDEX,
    _INLINE,
    _LAST_MODIFIED,
    _LENGTH,
    _LOCATION,
    _MAX_LOCATION_SIZE,
    _OFFSET,
)
from icechunk.format.flatbuf import (
    Buffer,
    Table,
    TableColumns,
    decoding,
    gather,
    gather_rows,
)
from icechunk.format.header import decode_object, decompress
from icechunk.format.model import (
    ArrayManifest,
    ChunkKind,
    ChunkRefs,
    FileType,
    Manifest,
)


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
