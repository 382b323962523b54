"""One array's staged chunk writes, kept in columns: what a session wrote and will commit.

A session stages every chunk it writes (``store.set``, ``set_virtual_ref``, deletions) in a
:class:`ChunkWrites` per array. Writes are appended to a columnar log (coordinates, kind, chunk
id, offset, length: a few dozen bytes each, in ``array``/``bytearray`` buffers), with one
``dict`` from coordinates to the row of their latest write; references staged in bulk
(``set_virtual_refs``, ``set_chunk_refs``) stay in a block of numpy columns under the log. No
payload object is made per write: at commit the log becomes the manifest's columns with a few
numpy calls, and dropping a committed change set frees a few buffers instead of one object per
chunk.
"""

from __future__ import annotations

import itertools
import operator
from array import array
from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, MutableMapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from icechunk._core.chunk_refs import (
    RefIndex,
    _columns,
    _concat,
    _coords_array,
    _match_keys,
    _without,
    payload_at,
    pick,
    sort_order,
    spread,
    take_refs,
)
from icechunk._core.payloads import ChunkPayload, InlinePayload, NativePayload, VirtualPayload
from icechunk.format.model import ChunkKind, ChunkRefs

__all__ = [
    "ChunkWrites",
    "absorb_writes",
    "changed_coords",
    "merge_refs",
    "single_keys",
    "staged_columns",
]

Coords = tuple[int, ...]

_DELETED: Final = 0
"""Kind code of a staged deletion in the log (not a :class:`ChunkKind`)."""
_NATIVE: Final = int(ChunkKind.NATIVE)
_INLINE: Final = int(ChunkKind.INLINE)
_VIRTUAL: Final = int(ChunkKind.VIRTUAL)
_NO_ID: Final = bytes(12)
_NONE: Final = type(None)

assert array("I").itemsize == 4 and array("Q").itemsize == 8


class ChunkWrites(MutableMapping[Coords, ChunkPayload | None]):
    """One array's staged chunk writes: a columnar log of single writes over bulk writes.

    A mapping from chunk coordinates to a payload (``None`` records a deletion). Single writes
    (:meth:`set_native`, :meth:`set_inline`, item assignment) are appended to the log; a later
    write of the same coordinates supersedes the earlier row, which stays behind as a dead row
    until :meth:`compact` (pickling and copying compact). References staged in bulk
    (:meth:`add_refs`) stay in numpy columns. Single writes made later shadow bulk ones at the
    same coordinates; a later bulk write replaces earlier writes of either kind.

    Reading an entry builds its payload object; nothing else does.
    """

    __slots__ = (
        "_bulk",
        "_bulk_index",
        "_coords",
        "_dead",
        "_extra",
        "_ids",
        "_index",
        "_kind",
        "_length",
        "_ndim",
        "_offset",
    )

    def __init__(
        self,
        single: Mapping[Coords, ChunkPayload | None] | None = None,
        bulk: ChunkRefs | None = None,
    ) -> None:
        self._index: dict[Coords, int] = {}
        """Coordinates -> row of their latest single write."""
        self._coords = array("I")
        self._kind = bytearray()
        self._ids = bytearray()
        self._offset = array("Q")
        self._length = array("Q")
        self._extra: list[object] = []
        """Per row: the bytes of an inline write, the payload of a virtual one, else None."""
        self._ndim = -1
        self._dead = 0
        self._bulk = bulk if bulk is not None and len(bulk) else None
        self._bulk_index = RefIndex(self._bulk) if self._bulk is not None else None
        if single:
            for coords, payload in single.items():
                self[coords] = payload

    # -- the log --------------------------------------------------------------------------

    def _row(
        self, coords: Coords, kind: int, chunk_id: bytes, offset: int, length: int, extra: object
    ) -> None:
        ndim = len(coords)
        if ndim != self._ndim:
            if self._ndim >= 0:
                raise ValueError(
                    f"chunk coordinates {list(coords)} have {ndim} dimensions, but this "
                    f"array's staged writes have {self._ndim}"
                )
            self._ndim = ndim
        if len(chunk_id) != 12:
            raise ValueError("native chunk ids must be 12 bytes")
        index = self._index
        before = len(index)
        index[coords] = len(self._kind)
        if len(index) == before:
            self._dead += 1
        self._coords.extend(coords)
        self._kind.append(kind)
        self._ids += chunk_id
        self._offset.append(offset)
        self._length.append(length)
        self._extra.append(extra)

    def set_native(self, coords: Coords, chunk_id: bytes, length: int, offset: int = 0) -> None:
        """Stage ``coords`` as ``chunks/<chunk_id>`` bytes ``[offset, offset + length)``."""
        self._row(coords, _NATIVE, chunk_id, offset, length, None)

    def set_inline(self, coords: Coords, data: bytes) -> None:
        """Stage ``coords`` as inline bytes ``data``."""
        self._row(coords, _INLINE, _NO_ID, 0, len(data), data)

    def __setitem__(self, coords: Coords, payload: ChunkPayload | None) -> None:
        kind = type(payload)
        if kind is NativePayload:
            assert isinstance(payload, NativePayload)
            self._row(coords, _NATIVE, payload.chunk_id, payload.offset, payload.length, None)
        elif kind is InlinePayload:
            assert isinstance(payload, InlinePayload)
            self._row(coords, _INLINE, _NO_ID, 0, len(payload.data), payload.data)
        elif kind is VirtualPayload:
            assert isinstance(payload, VirtualPayload)
            self._row(coords, _VIRTUAL, _NO_ID, payload.offset, payload.length, payload)
        elif payload is None:
            self._row(coords, _DELETED, _NO_ID, 0, 0, None)
        else:
            raise TypeError(f"not a chunk payload: {payload!r}")

    def _payload(self, row: int) -> ChunkPayload | None:
        kind = self._kind[row]
        if kind == _NATIVE:
            return NativePayload(
                bytes(self._ids[12 * row : 12 * row + 12]), self._offset[row], self._length[row]
            )
        if kind == _INLINE:
            data = self._extra[row]
            assert isinstance(data, bytes)
            return InlinePayload(data)
        if kind == _VIRTUAL:
            payload = self._extra[row]
            assert isinstance(payload, VirtualPayload)
            return payload
        return None

    def _check_ndim(self, ndim: int) -> None:
        if self._ndim >= 0 and self._ndim != ndim:
            raise ValueError(
                f"the staged writes have {self._ndim} dimensions, the array has {ndim}"
            )

    def compact(self) -> None:
        """Drop the rows superseded by later writes (the log then has one row per entry, in
        the order of the entries)."""
        if not self._dead:
            return
        rows = np.fromiter(self._index.values(), dtype=np.intp, count=len(self._index))
        ndim, n = max(self._ndim, 0), len(self._kind)
        coords = np.frombuffer(self._coords, dtype=np.uint32).reshape(n, ndim)[rows]
        kind = np.frombuffer(self._kind, dtype=np.uint8)[rows]
        ids = np.frombuffer(self._ids, dtype=np.uint8).reshape(n, 12)[rows]
        offset = np.frombuffer(self._offset, dtype=np.uint64)[rows]
        length = np.frombuffer(self._length, dtype=np.uint64)[rows]
        self._coords = array("I", coords.tobytes())
        self._kind = bytearray(kind.tobytes())
        self._ids = bytearray(ids.tobytes())
        self._offset = array("Q", offset.tobytes())
        self._length = array("Q", length.tobytes())
        self._extra = pick(self._extra, rows)
        self._index = dict(zip(self._index, range(len(rows)), strict=True))
        self._dead = 0

    def _log_columns(self, ndim: int) -> tuple[npt.NDArray[np.uint32], ChunkRefs]:
        """``(coords of the single writes, refs of those that are not deletions)``."""
        self._check_ndim(ndim)
        self.compact()
        n = len(self._kind)
        coords = np.frombuffer(self._coords, dtype=np.uint32).reshape(n, ndim).copy()
        kind = np.frombuffer(self._kind, dtype=np.uint8).copy()
        ids = np.frombuffer(self._ids, dtype=np.uint8).reshape(n, 12).copy()
        offset = np.frombuffer(self._offset, dtype=np.uint64).copy()
        length = np.frombuffer(self._length, dtype=np.uint64).copy()
        extra: list[Any] = list(self._extra)
        written_coords = coords
        written = np.flatnonzero(kind != _DELETED)
        if len(written) < n:
            written_coords, kind, ids = coords[written], kind[written], ids[written]
            offset, length, extra = offset[written], length[written], pick(extra, written)
        refs = ChunkRefs(
            coords=written_coords, kind=kind, chunk_id=ids, offset=offset, length=length
        )
        m = len(kind)
        inline = np.flatnonzero(kind == _INLINE)
        if len(inline):
            refs.inline = extra if len(inline) == m else spread(pick(extra, inline), inline, m)
        virtual = np.flatnonzero(kind == _VIRTUAL)
        if len(virtual):
            vir: list[VirtualPayload] = pick(extra, virtual)
            refs.location = spread([p.location for p in vir], virtual, m)
            etags: list[Any] = [p.checksum_etag for p in vir]
            refs.checksum_etag = spread(etags, virtual, m)
            modified = np.zeros(m, dtype=np.uint32)
            modified[virtual] = [p.checksum_last_modified for p in vir]
            refs.checksum_last_modified = modified
        return coords, refs

    # -- bulk -----------------------------------------------------------------------------

    @property
    def staged_in_bulk(self) -> int:
        """How many references sit in the bulk block (shadowed ones included)."""
        return 0 if self._bulk is None else len(self._bulk)

    def add_refs(self, refs: ChunkRefs) -> None:
        """Stage ``refs`` (unique coordinates, already validated), replacing earlier writes."""
        order = sort_order(refs.coords)
        if order is not None:
            refs = take_refs(refs, order)
        if self._index:
            keys = list(self._index)
            ndim = refs.coords.shape[1]
            hit = np.isin(_match_keys(_coords_array(keys, ndim)), _match_keys(refs.coords))
            index = self._index
            for i in np.flatnonzero(hit).tolist():
                del index[keys[i]]
                self._dead += 1
        if self._bulk is not None:
            ndim = refs.coords.shape[1]
            old = _without(self._bulk, refs.coords)
            refs = _concat([old, refs], ndim)
            order = sort_order(refs.coords)
            if order is not None:
                refs = take_refs(refs, order)
        self._bulk = refs if len(refs) else None
        self._bulk_index = RefIndex(refs) if self._bulk is not None else None

    def columns(self, ndim: int) -> tuple[npt.NDArray[np.uint32], ChunkRefs]:
        """``(coords of every staged entry, refs of the written ones)``, both unsorted."""
        coords, new = self._log_columns(ndim)
        bulk = self._bulk
        if bulk is None:
            return coords, new
        bulk = _without(bulk, coords)
        return np.concatenate([coords, bulk.coords]), _concat([new, bulk], ndim)

    def coords(self, ndim: int) -> npt.NDArray[np.uint32]:
        """The ``(n, ndim)`` coordinates of every staged entry (unsorted), without tuples."""
        self._check_ndim(ndim)
        self.compact()
        single = np.frombuffer(self._coords, dtype=np.uint32).reshape(len(self._kind), ndim)
        single = single.copy()
        if self._bulk is None:
            return single
        return np.concatenate([single, _without(self._bulk, single).coords])

    def single_keys(self) -> KeysView[Coords] | None:
        """The coordinates of every entry, as a keys view, if none is a bulk write."""
        return self._index.keys() if self._bulk is None else None

    # -- mapping --------------------------------------------------------------------------

    def _find(self, coords: Coords) -> int | None:
        return None if self._bulk_index is None else self._bulk_index.find(coords)

    def __getitem__(self, coords: Coords) -> ChunkPayload | None:
        row = self._index.get(coords)
        if row is not None:
            return self._payload(row)
        i = self._find(coords)
        if i is None:
            raise KeyError(coords)
        assert self._bulk is not None
        return payload_at(self._bulk, i)

    def __contains__(self, coords: object) -> bool:
        if coords in self._index:
            return True
        return isinstance(coords, tuple) and self._find(coords) is not None

    def __delitem__(self, coords: Coords) -> None:
        found = self._index.pop(coords, None) is not None
        if found:
            self._dead += 1
        i = self._find(coords)
        if i is not None:
            assert self._bulk is not None
            keep = np.ones(len(self._bulk), dtype=bool)
            keep[i] = False
            bulk = take_refs(self._bulk, np.flatnonzero(keep))
            self._bulk = bulk if len(bulk) else None
            self._bulk_index = RefIndex(bulk) if self._bulk is not None else None
            found = True
        if not found:
            raise KeyError(coords)

    def _bulk_keys(self) -> Iterator[Coords]:
        if self._bulk is None:
            return iter(())
        single = self._index
        keys = map(tuple, self._bulk.coords.tolist())
        return (k for k in keys if k not in single) if single else keys

    def __iter__(self) -> Iterator[Coords]:
        if self._bulk is None:
            return iter(self._index)
        return itertools.chain(self._index, self._bulk_keys())

    def __len__(self) -> int:
        if self._bulk is None:
            return len(self._index)
        shadowed = sum(1 for k in self._index if self._find(k) is not None)
        return len(self._index) + len(self._bulk) - shadowed

    def __bool__(self) -> bool:
        return bool(self._index) or self._bulk is not None

    def items(self) -> ItemsView[Coords, ChunkPayload | None]:
        return _Items(self)

    # -- copies, pickling, folding in -----------------------------------------------------

    def copy(self) -> ChunkWrites:
        """An independent copy (compacted; the immutable bulk columns are shared)."""
        self.compact()
        out = ChunkWrites.__new__(ChunkWrites)
        out._index = dict(self._index)
        out._coords = array("I", self._coords)
        out._kind = bytearray(self._kind)
        out._ids = bytearray(self._ids)
        out._offset = array("Q", self._offset)
        out._length = array("Q", self._length)
        out._extra = list(self._extra)
        out._ndim = self._ndim
        out._dead = 0
        out._bulk = self._bulk
        out._bulk_index = self._bulk_index
        return out

    def __reduce__(self) -> tuple[object, ...]:
        self.compact()
        return (
            _restore,
            (
                self._ndim,
                bytes(self._coords),
                bytes(self._kind),
                bytes(self._ids),
                bytes(self._offset),
                bytes(self._length),
                self._extra,
                self._bulk,
            ),
        )

    def absorb(self, other: Mapping[Coords, ChunkPayload | None]) -> None:
        """Apply ``other``'s writes over these (``other`` wins), keeping bulk writes columnar."""
        if type(other) is not ChunkWrites:
            for coords, payload in other.items():
                self[coords] = payload
            return
        if other._bulk is not None:
            self.add_refs(other._bulk)
        theirs = other._index
        if not theirs:
            return
        if other._dead:
            other.compact()
            theirs = other._index
        if other._ndim != self._ndim:
            if self._ndim >= 0:
                raise ValueError(
                    f"cannot fold {other._ndim}-dimensional chunk writes into "
                    f"{self._ndim}-dimensional ones"
                )
            self._ndim = other._ndim
        index = self._index
        before = len(index)
        base = len(self._kind)
        index.update(zip(theirs, range(base, base + len(theirs)), strict=False))  # same length
        self._dead += before + len(theirs) - len(index)
        self._coords += other._coords
        self._kind += other._kind
        self._ids += other._ids
        self._offset += other._offset
        self._length += other._length
        self._extra += other._extra


def _restore(
    ndim: int,
    coords: bytes,
    kind: bytes,
    ids: bytes,
    offset: bytes,
    length: bytes,
    extra: list[object],
    bulk: ChunkRefs | None,
) -> ChunkWrites:
    """Rebuild a pickled :class:`ChunkWrites` (its log is compact: one row per entry)."""
    out = ChunkWrites(bulk=bulk)
    out._ndim = ndim
    out._coords = array("I", coords)
    out._kind = bytearray(kind)
    out._ids = bytearray(ids)
    out._offset = array("Q", offset)
    out._length = array("Q", length)
    out._extra = extra
    n = len(kind)
    flat = out._coords
    if n == 0:
        keys: Iterable[Coords] = ()
    elif ndim == 1:
        keys = zip(flat)
    elif ndim == 0:
        keys = itertools.repeat((), n)
    else:
        keys = map(tuple, np.frombuffer(coords, dtype=np.uint32).reshape(n, ndim).tolist())
    out._index = dict(zip(keys, range(n), strict=True))
    return out


class _Items(ItemsView[Coords, ChunkPayload | None]):
    """Items of a :class:`ChunkWrites`, iterating bulk rows without per-row searches."""

    _mapping: ChunkWrites

    def __iter__(self) -> Iterator[tuple[Coords, ChunkPayload | None]]:
        writes = self._mapping
        payload = writes._payload
        for coords, row in writes._index.items():
            yield coords, payload(row)
        bulk = writes._bulk
        if bulk is None:
            return
        single = writes._index
        for i, key in enumerate(map(tuple, bulk.coords.tolist())):
            if key not in single:
                yield key, payload_at(bulk, i)


def single_keys(writes: Mapping[Coords, ChunkPayload | None]) -> KeysView[Coords] | None:
    """The coordinates of one array's staged changes as a keys view, if none is a bulk write."""
    if isinstance(writes, ChunkWrites):
        return writes.single_keys()
    return writes.keys() if isinstance(writes, dict) else None


def changed_coords(
    changes: Mapping[Coords, ChunkPayload | None], ndim: int
) -> npt.NDArray[np.uint32]:
    """The ``(n, ndim)`` coordinates of every change (write or deletion), unsorted.

    Prefer this to ``np.array(list(changes))``: staged writes are not turned into tuples.
    """
    if isinstance(changes, ChunkWrites):
        return changes.coords(ndim)
    return _coords_array(list(changes), ndim)


def staged_columns(
    changes: Mapping[Coords, ChunkPayload | None], ndim: int
) -> tuple[npt.NDArray[np.uint32], ChunkRefs]:
    """``(coords of every change, refs of the writes)`` of one array's staged changes, unsorted.

    Deletions appear in the coordinates only. Nothing is turned into a payload object.
    """
    if isinstance(changes, ChunkWrites):
        return changes.columns(ndim)
    return _changed(changes, ndim)


def absorb_writes(
    target: MutableMapping[Coords, ChunkPayload | None] | None,
    other: Mapping[Coords, ChunkPayload | None],
) -> MutableMapping[Coords, ChunkPayload | None]:
    """``target`` (``None``: nothing) with ``other``'s writes applied over it; may return a
    new mapping. ``other`` is not changed, nor shared with the result."""
    if target is None:
        target = ChunkWrites()
    elif not isinstance(target, ChunkWrites) and isinstance(other, ChunkWrites):
        target = ChunkWrites(target)
    if isinstance(target, ChunkWrites):
        target.absorb(other)
    else:
        target.update(other)
    return target


def merge_refs(
    old: Iterable[ChunkRefs],
    changes: Mapping[Coords, ChunkPayload | None],
    ndim: int,
    bounds: tuple[int, ...] | None = None,
    *,
    coords: npt.NDArray[np.uint32] | None = None,
) -> ChunkRefs:
    """Old references with ``changes`` applied (``None`` deletes), sorted.

    ``bounds`` (number of chunks per dimension) drops references outside the chunk grid, as a
    shrinking resize requires. ``coords``, if given, must be :func:`changed_coords` of
    ``changes`` (same rows, same order): it saves building them again from a plain mapping.
    """
    base = _concat(list(old), ndim)
    if isinstance(changes, ChunkWrites):
        coords, new = changes.columns(ndim)
    else:
        coords, new = _changed(changes, ndim, coords)
    if len(coords) and len(base):
        keep = ~np.isin(_match_keys(base.coords), _match_keys(coords))
        if not keep.all():
            base = take_refs(base, np.flatnonzero(keep))
    merged = _concat([base, new], ndim)
    if bounds is not None and len(merged) and ndim:
        inside = np.all(merged.coords < np.array(bounds, dtype=np.uint64), axis=1)
        if not inside.all():
            merged = take_refs(merged, np.flatnonzero(inside))
    order = sort_order(merged.coords)
    return merged if order is None else take_refs(merged, order)


def _changed(
    changes: Mapping[Coords, ChunkPayload | None],
    ndim: int,
    coords: npt.NDArray[np.uint32] | None = None,
) -> tuple[npt.NDArray[np.uint32], ChunkRefs]:
    """``(coords of every change, refs of the writes)`` of a plain mapping of changes."""
    values = list(changes.values())
    if coords is None or coords.shape != (len(values), ndim):
        coords = _coords_array(list(changes), ndim)
    types = list(map(type, values))
    if not types.count(_NONE):  # no deletions: the usual case, checked at C speed
        new = _columns(coords, values, ndim, types)  # type: ignore[arg-type]
        return coords, new
    present = np.fromiter(
        map(operator.is_not, values, itertools.repeat(None)), dtype=bool, count=len(values)
    )
    written = np.flatnonzero(present)
    if len(written) == len(values):
        new = _columns(coords, values, ndim)  # type: ignore[arg-type]
    else:
        new = _columns(coords[written], pick(values, written), ndim)  # type: ignore[arg-type]
    return coords, new
