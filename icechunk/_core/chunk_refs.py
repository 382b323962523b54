"""Columnar operations on chunk references: lookup, building from payloads, selecting, joining.

Chunk coordinates are compared lexicographically. To search and sort them with numpy, each row of
``uint32`` coordinates is viewed as one big-endian byte string: byte order then equals
coordinate order.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from icechunk._core.payloads import (
    ChunkPayload,
    InlinePayload,
    NativePayload,
    VirtualPayload,
)
from icechunk.format.model import ChunkKind, ChunkRefs

_CHUNK_ID = operator.attrgetter("chunk_id")
_OFFSET = operator.attrgetter("offset")
_LENGTH = operator.attrgetter("length")
_DATA = operator.attrgetter("data")
_LOCATION = operator.attrgetter("location")
_ETAG = operator.attrgetter("checksum_etag")
_MODIFIED = operator.attrgetter("checksum_last_modified")

__all__ = [
    "RefIndex",
    "coord_keys",
    "empty_refs",
    "payload_at",
    "pick",
    "refs_from_payloads",
    "rows_in",
    "sort_order",
    "spread",
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


_KIND_OF: Final = {
    NativePayload: ChunkKind.NATIVE,
    InlinePayload: ChunkKind.INLINE,
    VirtualPayload: ChunkKind.VIRTUAL,
}


def pick[T](values: Sequence[T], idx: npt.NDArray[np.intp]) -> list[T]:
    """``[values[i] for i in idx]``, at C speed."""
    if len(idx) == 0:
        return []
    if len(idx) == 1:
        return [values[int(idx[0])]]
    return list(operator.itemgetter(*idx.tolist())(values))


def spread[T](values: Sequence[T], idx: npt.NDArray[np.intp], n: int) -> list[T | None]:
    """A list of ``n`` entries: ``values`` at positions ``idx``, ``None`` elsewhere."""
    if len(idx) == n:
        return list(values)
    out = np.full(n, None, dtype=object)
    objects = np.empty(len(values), dtype=object)
    objects[:] = values  # (assigning bytes of equal size directly would split them)
    out[idx] = objects
    spread_: list[T | None] = out.tolist()
    return spread_


def sort_order(coords: npt.NDArray[np.uint32]) -> npt.NDArray[np.intp] | None:
    """The stable order that sorts the rows of ``coords``, or ``None`` if they already are."""
    n, ndim = coords.shape
    if n < 2 or ndim == 0:
        return None
    if ndim == 1:
        col = coords[:, 0]
        if bool((col[1:] >= col[:-1]).all()):
            return None
        return np.argsort(col, kind="stable")
    if ndim == 2:
        key = (coords[:, 0].astype(np.uint64) << np.uint64(32)) | coords[:, 1]
        if bool((key[1:] >= key[:-1]).all()):
            return None
        return np.argsort(key, kind="stable")
    keys = coord_keys(coords)
    if bool((keys[1:] >= keys[:-1]).all()):
        return None
    return np.argsort(keys, kind="stable")


_NONE: Final = type(None)


def _columns(
    coords: npt.NDArray[np.uint32],
    payloads: Sequence[ChunkPayload],
    ndim: int,
    types: list[type] | None = None,
) -> ChunkRefs:
    """Unsorted columnar refs of ``payloads`` (none ``None``; ``types`` theirs) at ``coords``."""
    n = len(payloads)
    if types is None:
        types = list(map(type, payloads))
    only = types[0] if n and types.count(types[0]) == n else None
    if only is not None and only in _KIND_OF:  # the usual case: one kind of payload
        kind = np.full(n, _KIND_OF[only], dtype=np.uint8)
    else:
        try:
            kind = np.fromiter(map(_KIND_OF.__getitem__, types), np.uint8, count=n)
        except KeyError:
            bad = next(p for p in payloads if type(p) not in _KIND_OF)
            raise TypeError(f"not a chunk payload: {bad!r}") from None
    chunk_id = np.zeros((n, 12), dtype=np.uint8)
    offset = np.zeros(n, dtype=np.uint64)
    length = np.zeros(n, dtype=np.uint64)
    refs = ChunkRefs(coords=coords, kind=kind, chunk_id=chunk_id, offset=offset, length=length)
    native = np.flatnonzero(kind == ChunkKind.NATIVE)
    if len(native):
        nat: list[NativePayload] = (
            list(payloads) if len(native) == n else pick(payloads, native)  # type: ignore[arg-type]
        )
        ids = b"".join(map(_CHUNK_ID, nat))
        if len(ids) != 12 * len(nat):
            raise ValueError("native chunk ids must be 12 bytes")
        chunk_id[native] = np.frombuffer(ids, dtype=np.uint8).reshape(-1, 12)
        offset[native] = np.fromiter(map(_OFFSET, nat), np.uint64, count=len(nat))
        length[native] = np.fromiter(map(_LENGTH, nat), np.uint64, count=len(nat))
    inline = np.flatnonzero(kind == ChunkKind.INLINE)
    if len(inline):
        data = list(map(_DATA, payloads if len(inline) == n else pick(payloads, inline)))
        length[inline] = np.fromiter(map(len, data), np.uint64, count=len(data))
        refs.inline = spread(data, inline, n)
    virtual = np.flatnonzero(kind == ChunkKind.VIRTUAL)
    if len(virtual):
        vir: list[VirtualPayload] = (
            list(payloads) if len(virtual) == n else pick(payloads, virtual)  # type: ignore[arg-type]
        )
        offset[virtual] = np.fromiter(map(_OFFSET, vir), np.uint64, count=len(vir))
        length[virtual] = np.fromiter(map(_LENGTH, vir), np.uint64, count=len(vir))
        refs.location = spread(list(map(_LOCATION, vir)), virtual, n)
        refs.checksum_etag = spread(list(map(_ETAG, vir)), virtual, n)
        modified = np.zeros(n, dtype=np.uint32)
        modified[virtual] = np.fromiter(map(_MODIFIED, vir), np.uint32, count=len(vir))
        refs.checksum_last_modified = modified
    return refs


def _coords_array(keys: Sequence[tuple[int, ...]], ndim: int) -> npt.NDArray[np.uint32]:
    n = len(keys)
    flat = np.fromiter(itertools.chain.from_iterable(keys), dtype=np.uint32, count=n * ndim)
    return flat.reshape(n, ndim)


def refs_from_payloads(
    items: Sequence[tuple[tuple[int, ...], ChunkPayload]], ndim: int
) -> ChunkRefs:
    """Build sorted columnar refs from ``(coords, payload)`` pairs (coords unique)."""
    if not items:
        return empty_refs(ndim)
    coords = _coords_array([c for c, _ in items], ndim)
    refs = _columns(coords, [p for _, p in items], ndim)
    order = sort_order(coords)
    return refs if order is None else take_refs(refs, order)


def take_refs(refs: ChunkRefs, idx: npt.NDArray[np.intp]) -> ChunkRefs:
    """The references at positions ``idx``, in that order."""
    return ChunkRefs(
        coords=refs.coords[idx],
        kind=refs.kind[idx],
        chunk_id=refs.chunk_id[idx],
        offset=refs.offset[idx],
        length=refs.length[idx],
        inline=pick(refs.inline, idx) if refs.inline else [],
        location=pick(refs.location, idx) if refs.location else [],
        checksum_etag=pick(refs.checksum_etag, idx) if refs.checksum_etag else [],
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


def _match_keys(coords: npt.NDArray[np.uint32]) -> npt.NDArray[np.generic]:
    """One comparable key per row (numbers up to two dimensions, byte strings beyond)."""
    n, ndim = coords.shape
    if ndim == 0:
        return np.zeros(n, dtype=np.uint64)
    if ndim == 1:
        return coords[:, 0].astype(np.uint64)
    if ndim == 2:
        return (coords[:, 0].astype(np.uint64) << np.uint64(32)) | coords[:, 1]
    return coord_keys(coords)


def _without(refs: ChunkRefs, coords: npt.NDArray[np.uint32]) -> ChunkRefs:
    """``refs`` minus the references at any of ``coords``."""
    if not len(refs) or not len(coords):
        return refs
    keep = ~np.isin(_match_keys(refs.coords), _match_keys(coords))
    return refs if keep.all() else take_refs(refs, np.flatnonzero(keep))


def rows_in(coords: npt.NDArray[np.uint32], other: npt.NDArray[np.uint32]) -> npt.NDArray[np.bool_]:
    """Per row of ``coords``, whether ``other`` (same number of columns) has that row."""
    if not len(coords) or not len(other):
        return np.zeros(len(coords), dtype=bool)
    found: npt.NDArray[np.bool_] = np.isin(_match_keys(coords), _match_keys(other))
    return found
