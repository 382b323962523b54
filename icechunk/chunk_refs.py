"""Columnar operations on chunk references: lookup, building from payloads, merging.

Chunk coordinates are compared lexicographically. To search and sort them with numpy, each row of
``uint32`` coordinates is viewed as one big-endian byte string: byte order then equals
coordinate order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from icechunk.change_set import ChunkPayload, InlinePayload, NativePayload, VirtualPayload
from icechunk.format.model import ChunkKind, ChunkRefs

__all__ = [
    "RefIndex",
    "coord_keys",
    "empty_refs",
    "merge_refs",
    "payload_at",
    "refs_from_payloads",
    "take_refs",
]


def coord_keys(coords: npt.NDArray[np.uint32]) -> npt.NDArray[np.bytes_]:
    """One sortable byte-string key per row of ``coords``."""
    n, ndim = coords.shape
    if ndim == 0:
        return np.full(n, b"\x01", dtype="S1")  # the single chunk of a 0-d array
    be = np.ascontiguousarray(coords, dtype=">u4")
    return be.view(f"S{4 * ndim}").reshape(n)


def empty_refs(ndim: int) -> ChunkRefs:
    return ChunkRefs(
        coords=np.zeros((0, ndim), dtype=np.uint32),
        kind=np.zeros(0, dtype=np.uint8),
        chunk_id=np.zeros((0, 12), dtype=np.uint8),
        offset=np.zeros(0, dtype=np.uint64),
        length=np.zeros(0, dtype=np.uint64),
    )


class RefIndex:
    """Binary search over one array's sorted chunk refs."""

    __slots__ = ("_keys", "refs")

    def __init__(self, refs: ChunkRefs) -> None:
        self.refs = refs
        self._keys = coord_keys(refs.coords)

    def find(self, coords: tuple[int, ...]) -> int | None:
        """Position of ``coords`` in the refs, or ``None``."""
        if len(self.refs) == 0:
            return None
        ndim = self.refs.coords.shape[1]
        if len(coords) != ndim:
            return None
        key = coord_keys(np.array([coords], dtype=np.uint32).reshape(1, ndim))[0]
        i = int(np.searchsorted(self._keys, key))
        if i < len(self._keys) and self._keys[i] == key:
            return i
        return None


def payload_at(refs: ChunkRefs, i: int) -> ChunkPayload:
    """The payload of reference ``i``."""
    kind = int(refs.kind[i])
    if kind == ChunkKind.NATIVE:
        return NativePayload(bytes(refs.chunk_id[i]), int(refs.offset[i]), int(refs.length[i]))
    if kind == ChunkKind.INLINE:
        data = refs.inline[i]
        return InlinePayload(data if data is not None else b"")
    location = refs.location[i] if refs.location else None
    etag = refs.checksum_etag[i] if refs.checksum_etag else None
    modified = 0 if refs.checksum_last_modified is None else int(refs.checksum_last_modified[i])
    return VirtualPayload(location or "", int(refs.offset[i]), int(refs.length[i]), etag, modified)


def refs_from_payloads(
    items: Sequence[tuple[tuple[int, ...], ChunkPayload]], ndim: int
) -> ChunkRefs:
    """Build sorted columnar refs from ``(coords, payload)`` pairs (coords unique)."""
    n = len(items)
    if n == 0:
        return empty_refs(ndim)
    coords = np.array([c for c, _ in items], dtype=np.uint32).reshape(n, ndim)
    kind = np.empty(n, dtype=np.uint8)
    chunk_id = np.zeros((n, 12), dtype=np.uint8)
    offset = np.zeros(n, dtype=np.uint64)
    length = np.zeros(n, dtype=np.uint64)
    inline: list[bytes | None] = []
    location: list[str | None] = []
    etags: list[str | None] = []
    modified = np.zeros(n, dtype=np.uint32)
    ids = bytearray(12 * n)
    any_inline = any_virtual = False
    for i, (_, p) in enumerate(items):
        if isinstance(p, NativePayload):
            kind[i] = ChunkKind.NATIVE
            ids[12 * i : 12 * i + 12] = p.chunk_id
            offset[i] = p.offset
            length[i] = p.length
            inline.append(None)
            location.append(None)
            etags.append(None)
        elif isinstance(p, InlinePayload):
            kind[i] = ChunkKind.INLINE
            length[i] = len(p.data)
            inline.append(p.data)
            location.append(None)
            etags.append(None)
            any_inline = True
        else:
            kind[i] = ChunkKind.VIRTUAL
            offset[i] = p.offset
            length[i] = p.length
            inline.append(None)
            location.append(p.location)
            etags.append(p.checksum_etag)
            modified[i] = p.checksum_last_modified
            any_virtual = True
    chunk_id[:] = np.frombuffer(bytes(ids), dtype=np.uint8).reshape(n, 12)
    refs = ChunkRefs(
        coords=coords,
        kind=kind,
        chunk_id=chunk_id,
        offset=offset,
        length=length,
        inline=inline if any_inline else [],
        location=location if any_virtual else [],
        checksum_etag=etags if any_virtual else [],
        checksum_last_modified=modified if any_virtual else None,
    )
    order = np.argsort(coord_keys(coords), kind="stable")
    return take_refs(refs, order)


def take_refs(refs: ChunkRefs, idx: npt.NDArray[np.intp]) -> ChunkRefs:
    """The references at positions ``idx``, in that order."""
    pick = idx.tolist()
    return ChunkRefs(
        coords=refs.coords[idx],
        kind=refs.kind[idx],
        chunk_id=refs.chunk_id[idx],
        offset=refs.offset[idx],
        length=refs.length[idx],
        inline=[refs.inline[i] for i in pick] if refs.inline else [],
        location=[refs.location[i] for i in pick] if refs.location else [],
        checksum_etag=[refs.checksum_etag[i] for i in pick] if refs.checksum_etag else [],
        checksum_last_modified=(
            None if refs.checksum_last_modified is None else refs.checksum_last_modified[idx]
        ),
    )


def _concat(parts: list[ChunkRefs], ndim: int) -> ChunkRefs:
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty_refs(ndim)
    if len(parts) == 1:
        return parts[0]
    total = sum(len(p) for p in parts)

    def col_list(name: str) -> list[object]:
        if not any(getattr(p, name) for p in parts):
            return []
        out: list[object] = []
        for p in parts:
            values = getattr(p, name)
            out.extend(values if values else [None] * len(p))
        return out

    has_mod = any(p.checksum_last_modified is not None for p in parts)
    return ChunkRefs(
        coords=np.concatenate([p.coords for p in parts]).reshape(total, ndim),
        kind=np.concatenate([p.kind for p in parts]),
        chunk_id=np.concatenate([p.chunk_id for p in parts]),
        offset=np.concatenate([p.offset for p in parts]),
        length=np.concatenate([p.length for p in parts]),
        inline=col_list("inline"),  # type: ignore[arg-type]
        location=col_list("location"),  # type: ignore[arg-type]
        checksum_etag=col_list("checksum_etag"),  # type: ignore[arg-type]
        checksum_last_modified=(
            np.concatenate(
                [
                    p.checksum_last_modified
                    if p.checksum_last_modified is not None
                    else np.zeros(len(p), dtype=np.uint32)
                    for p in parts
                ]
            )
            if has_mod
            else None
        ),
    )


def merge_refs(
    old: Iterable[ChunkRefs],
    changes: dict[tuple[int, ...], ChunkPayload | None],
    ndim: int,
    bounds: tuple[int, ...] | None = None,
) -> ChunkRefs:
    """Old references with ``changes`` applied (``None`` deletes), sorted.

    ``bounds`` (number of chunks per dimension) drops references outside the chunk grid, as a
    shrinking resize requires.
    """
    base = _concat(list(old), ndim)
    written = [(c, p) for c, p in changes.items() if p is not None]
    new = refs_from_payloads(written, ndim)
    if changes and len(base):
        touched = coord_keys(np.array(list(changes), dtype=np.uint32).reshape(len(changes), ndim))
        keep = ~np.isin(coord_keys(base.coords), touched)
        if not keep.all():
            base = take_refs(base, np.flatnonzero(keep))
    merged = _concat([base, new], ndim)
    if bounds is not None and len(merged) and ndim:
        inside = np.all(merged.coords < np.array(bounds, dtype=np.uint64), axis=1)
        if not inside.all():
            merged = take_refs(merged, np.flatnonzero(inside))
    if len(merged) > 1:
        order = np.argsort(coord_keys(merged.coords), kind="stable")
        merged = take_refs(merged, order)
    return merged
