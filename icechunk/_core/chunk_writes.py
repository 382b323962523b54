"""One array's staged chunk writes, kept as packed records: what a session wrote and will commit.

A session stages every chunk it writes (``store.set``, ``set_virtual_ref``, deletions) in a
:class:`ChunkWrites` per array. Each write appends one fixed-size record (coordinates, kind,
chunk id, offset, length: ``4 * ndim + 29`` bytes) to a single ``bytearray`` log, with one
``dict`` from coordinates to the row of their latest write (built only when needed) and a
row-aligned list of the objects some rows carry (inline bytes, virtual payloads); references staged in bulk
(``set_virtual_refs``, ``set_chunk_refs``) stay in a block of numpy columns under the log. No
payload object is made per write: at commit the log is viewed as a numpy structured array and
becomes the manifest's columns with a few numpy calls; folding a fork's writes into a session
copies one buffer; dropping a committed change set frees a few buffers, not one object per
chunk. The functions over any mapping of staged changes (a :class:`ChunkWrites` or a plain
``dict``) are in :mod:`icechunk._core.staged_changes`.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import (
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    MutableMapping,
    Sequence,
)
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from icechunk._core.chunk_refs import (
    RefIndex,
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

__all__ = ["ChunkWrites"]

Coords = tuple[int, ...]

_DELETED: Final = 0
"""Kind code of a staged deletion in the log (not a :class:`ChunkKind`)."""
_NATIVE: Final = int(ChunkKind.NATIVE)
_INLINE: Final = int(ChunkKind.INLINE)
_VIRTUAL: Final = int(ChunkKind.VIRTUAL)
_NO_ID: Final = bytes(12)
_UNKNOWN: Final = -1
"""``_dead`` of a log whose rows were appended without the index: some may be dead."""


class _Layout:
    """The record layout of an ``ndim``-dimensional log: a struct for one row, a numpy
    structured dtype for all of them (little-endian, packed)."""

    __slots__ = ("dtype", "iter_unpack", "ndim", "pack", "size", "unpack_from")

    def __init__(self, ndim: int) -> None:
        record = struct.Struct(f"<{ndim}IB12sQQ")
        self.ndim = ndim
        self.size = record.size
        self.pack = record.pack
        self.unpack_from = record.unpack_from
        self.iter_unpack = record.iter_unpack
        c = 4 * ndim
        self.dtype = np.dtype(
            {
                "names": ["coords", "kind", "id", "offset", "length"],
                "formats": [("<u4", (ndim,)), "u1", ("u1", (12,)), "<u8", "<u8"],
                "offsets": [0, c, c + 1, c + 13, c + 21],
                "itemsize": record.size,
            }
        )


_LAYOUTS: dict[int, _Layout] = {}
_SMALL_LOG: Final = 64
"""Up to this many rows, the coordinates of a log are read with ``struct``, not numpy."""


def _layout(ndim: int) -> _Layout:
    layout = _LAYOUTS.get(ndim)
    if layout is None:
        layout = _LAYOUTS[ndim] = _Layout(ndim)
    return layout


class ChunkWrites(MutableMapping[Coords, ChunkPayload | None]):
    """One array's staged chunk writes: a log of packed records over bulk writes.

    A mapping from chunk coordinates to a payload (``None`` records a deletion). Single writes
    (:meth:`set_native`, :meth:`set_inline`, item assignment) are appended to the log; a later
    write of the same coordinates supersedes the earlier row, which stays behind as a dead row
    until :meth:`compact` (pickling and copying compact). References staged in bulk
    (:meth:`add_refs`) stay in numpy columns. Single writes made later shadow bulk ones at the
    same coordinates; a later bulk write replaces earlier writes of either kind.

    Reading an entry builds its payload object; nothing else does.
    """

    __slots__ = ("_bulk", "_bulk_index", "_dead", "_extra", "_layout", "_log", "_n", "_rows")

    def __init__(
        self,
        single: Mapping[Coords, ChunkPayload | None] | None = None,
        bulk: ChunkRefs | None = None,
    ) -> None:
        self._rows: dict[Coords, int] | None = None
        """Coordinates -> row of their latest single write; ``None`` while not built. Writes
        append to the log without building it (no tuple kept per chunk): while it is not
        built, ``_dead`` is 0 (row ``i`` holds the ``i``-th entry) or ``_UNKNOWN``."""
        self._log = bytearray()
        """One packed record per row (see :class:`_Layout`)."""
        self._n = 0
        """Rows in the log (dead ones included)."""
        self._extra: list[object] = []
        """Per row: the bytes of an inline write, the payload of a virtual one, else
        ``None``; empty while no row has an object (native writes and deletions only)."""
        self._layout: _Layout | None = None
        """Set by the first single write: fixes the dimensionality."""
        self._dead = 0
        """Rows superseded by later writes (or ``_UNKNOWN``, see ``_rows``)."""
        self._bulk = bulk if bulk is not None and len(bulk) else None
        self._bulk_index = RefIndex(self._bulk) if self._bulk is not None else None
        if single:
            for coords, payload in single.items():
                self[coords] = payload

    # -- the log --------------------------------------------------------------------------

    @property
    def _index(self) -> dict[Coords, int]:
        """Coordinates -> row of their latest single write (built on first use)."""
        rows = self._rows
        if rows is None:
            rows = self._rows = dict(zip(self._log_keys(), range(self._n), strict=True))
            if self._dead == _UNKNOWN:
                self._dead = self._n - len(rows)
        return rows

    def _log_keys(self) -> Iterable[Coords]:
        """The coordinates of every row of the log, in order, as tuples."""
        n, layout = self._n, self._layout
        if n == 0 or layout is None:
            return ()
        if layout.ndim == 0:
            return itertools.repeat((), n)
        if n <= _SMALL_LOG:  # (a fork's few writes: no numpy call per fork in a merge)
            ndim = layout.ndim
            return [record[:ndim] for record in layout.iter_unpack(self._log)]
        coords = np.frombuffer(self._log, dtype=layout.dtype, count=n)["coords"]
        keys = coords[:, 0].tolist() if layout.ndim == 1 else coords.tolist()
        del coords  # (releases the log's buffer)
        return zip(keys) if layout.ndim == 1 else map(tuple, keys)

    @property
    def _ndim(self) -> int:
        return -1 if self._layout is None else self._layout.ndim

    def _fix_ndim(self, ndim: int) -> _Layout:
        if self._layout is not None:
            raise ValueError(
                f"chunk coordinates of {ndim} dimensions, but this array's staged writes "
                f"have {self._layout.ndim}"
            )
        self._layout = _layout(ndim)
        return self._layout

    def _row(
        self,
        coords: Coords,
        kind: int,
        chunk_id: bytes,
        offset: int,
        length: int,
        obj: object = None,
    ) -> None:
        layout = self._layout
        if layout is None or len(coords) != layout.ndim:
            layout = self._fix_ndim(len(coords))
        if len(chunk_id) != 12:
            raise ValueError("native chunk ids must be 12 bytes")
        row = self._n
        index = self._rows
        if index is None:
            if row:
                self._dead = _UNKNOWN  # (checked when the index or a compact log is needed)
        else:
            before = len(index)
            index[coords] = row
            if len(index) == before:
                self._dead += 1
        self._log += layout.pack(*coords, kind, chunk_id, offset, length)
        self._n = row + 1
        extra = self._extra
        if extra or obj is not None:
            if len(extra) < row:
                extra.extend(itertools.repeat(None, row - len(extra)))
            extra.append(obj)

    def set_native(self, coords: Coords, chunk_id: bytes, length: int, offset: int = 0) -> None:
        """Stage ``coords`` as ``chunks/<chunk_id>`` bytes ``[offset, offset + length)``."""
        self._row(coords, _NATIVE, chunk_id, offset, length)

    def set_inline(self, coords: Coords, data: bytes) -> None:
        """Stage ``coords`` as inline bytes ``data``."""
        self._row(coords, _INLINE, _NO_ID, 0, len(data), data)

    def __setitem__(self, coords: Coords, payload: ChunkPayload | None) -> None:
        kind = type(payload)
        if kind is NativePayload:
            assert isinstance(payload, NativePayload)
            self._row(coords, _NATIVE, payload.chunk_id, payload.offset, payload.length)
        elif kind is InlinePayload:
            assert isinstance(payload, InlinePayload)
            self.set_inline(coords, payload.data)
        elif kind is VirtualPayload:
            assert isinstance(payload, VirtualPayload)
            self._row(coords, _VIRTUAL, _NO_ID, payload.offset, payload.length, payload)
        elif payload is None:
            self._row(coords, _DELETED, _NO_ID, 0, 0)
        else:
            raise TypeError(f"not a chunk payload: {payload!r}")

    def _payload(self, row: int) -> ChunkPayload | None:
        layout = self._layout
        assert layout is not None
        *_, kind, chunk_id, offset, length = layout.unpack_from(self._log, row * layout.size)
        if kind == _NATIVE:
            return NativePayload(chunk_id, offset, length)
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
        if self._layout is not None and self._layout.ndim != ndim:
            raise ValueError(
                f"the staged writes have {self._layout.ndim} dimensions, the array has {ndim}"
            )

    def _records(self) -> npt.NDArray[np.void]:
        """A copy of the log as a structured array (a view would pin the ``bytearray``)."""
        layout = self._layout or _layout(0)
        return np.frombuffer(bytes(self._log), dtype=layout.dtype, count=self._n)

    def compact(self) -> None:
        """Drop the rows superseded by later writes (the log then has one row per entry, in
        the order of the entries)."""
        if self._dead == _UNKNOWN:
            if self._n > _SMALL_LOG and _distinct(self._log_coords()):
                self._dead = 0
                return
            self._index  # noqa: B018  (builds the index, which counts the dead rows)
        if not self._dead:
            return
        rows = np.fromiter(self._index.values(), dtype=np.intp, count=len(self._index))
        self._log = bytearray(self._records()[rows].tobytes())
        if self._extra:
            self._extra = pick(self._extra, rows)
        self._n = len(rows)
        self._rows = dict(zip(self._index, range(len(rows)), strict=True))
        self._dead = 0

    def _log_coords(self) -> npt.NDArray[np.uint32]:
        """The ``(n, ndim)`` coordinates of every row of the log (dead ones included)."""
        layout = self._layout or _layout(0)
        view = np.frombuffer(self._log, dtype=layout.dtype, count=self._n)
        coords = np.array(view["coords"]).reshape(self._n, layout.ndim)
        del view  # (a live view would pin the log's buffer)
        return coords

    def _objects(self) -> Iterable[object]:
        """One slot per row: its object, or ``None``."""
        extra = self._extra
        return extra if len(extra) == self._n else itertools.repeat(None, self._n)

    def _append_log(self, others: Sequence[ChunkWrites]) -> None:
        """Append the rows of compact ``others`` (of this layout) to this log."""
        self._log += bytearray().join([other._log for other in others])
        extra = self._extra
        n = self._n
        # (one plain loop: a merge appends hundreds of forks' logs, and a generator or a
        # method call per fork costs more than the appends themselves)
        for other in others:
            theirs = other._extra
            if theirs and len(theirs) == other._n:  # (else all its slots are None: padded)
                if len(extra) < n:
                    extra.extend(itertools.repeat(None, n - len(extra)))
                extra += theirs
            n += other._n
        if extra and len(extra) < n:
            extra.extend(itertools.repeat(None, n - len(extra)))
        self._n = n

    def _append_one(self, other: ChunkWrites) -> None:
        """:meth:`_append_log` of one log (a merge folds hundreds, one by one)."""
        self._log += other._log
        extra = self._extra
        if extra or other._extra:
            if len(extra) < self._n:
                extra.extend(itertools.repeat(None, self._n - len(extra)))
            extra.extend(other._objects())
        self._n += other._n

    def _log_columns(self, ndim: int) -> tuple[npt.NDArray[np.uint32], ChunkRefs]:
        """``(coords of the single writes, refs of those that are not deletions)``."""
        self._check_ndim(ndim)
        self.compact()
        n = self._n
        rec = self._records()
        coords = np.ascontiguousarray(rec["coords"]).reshape(n, ndim)
        kind = np.ascontiguousarray(rec["kind"])
        ids = np.ascontiguousarray(rec["id"])
        offset = np.ascontiguousarray(rec["offset"])
        length = np.ascontiguousarray(rec["length"])
        del rec
        extra: list[Any] = list(self._objects()) if self._extra else []
        written_coords = coords
        written = np.flatnonzero(kind != _DELETED)
        if len(written) < n:
            written_coords, kind, ids = coords[written], kind[written], ids[written]
            offset, length = offset[written], length[written]
            if extra:
                extra = pick(extra, written)
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
        single = np.ascontiguousarray(self._records()["coords"]).reshape(self._n, ndim)
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
            if self._dead == _UNKNOWN:
                self.compact()  # (a sort finds any overwrite; the index is built only then)
            return self._n if self._rows is None else len(self._rows)
        shadowed = sum(1 for k in self._index if self._find(k) is not None)
        return len(self._index) + len(self._bulk) - shadowed

    def __bool__(self) -> bool:
        return bool(self._n if self._rows is None else self._rows) or self._bulk is not None

    def items(self) -> ItemsView[Coords, ChunkPayload | None]:
        return _Items(self)

    # -- copies, pickling, folding in -----------------------------------------------------

    def copy(self) -> ChunkWrites:
        """An independent copy (compacted; the immutable bulk columns are shared)."""
        self.compact()
        out = ChunkWrites.__new__(ChunkWrites)
        out._rows = None if self._rows is None else dict(self._rows)
        out._log = bytearray(self._log)
        out._n = self._n
        out._extra = list(self._extra)
        out._layout = self._layout
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
                bytes(self._log),
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
        if other._layout is not self._layout:
            if self._layout is not None:
                raise ValueError(
                    f"cannot fold {other._ndim}-dimensional chunk writes into "
                    f"{self._ndim}-dimensional ones"
                )
            self._layout = other._layout
        # other's log is compact: its entries are its rows 0..n-1, in order
        index = self._index
        before = len(index)
        base = self._n
        index.update(zip(theirs, range(base, base + len(theirs)), strict=False))  # same length
        self._dead += before + len(theirs) - len(index)
        self._append_one(other)

    @staticmethod
    def join(
        parts: Sequence[ChunkWrites], avoid: Iterable[Mapping[Coords, object] | None] = ()
    ) -> ChunkWrites | None:
        """The single writes of all ``parts`` in one log, if no two parts write the same
        coordinates, none staged bulk writes and none writes coordinates that one of the
        mappings in ``avoid`` holds; else ``None``. Nothing is changed.

        The columnar fold of many forks' writes (a distributed write): one join of the logs
        and one sort of all the coordinates involved, instead of a dictionary update per fork.
        """
        layout = None
        for part in parts:
            if part._bulk is not None:
                return None
            if part._layout is not None:
                if layout is None:
                    layout = part._layout
                elif part._layout is not layout:
                    return None
            if part._dead:
                part.compact()
        out = ChunkWrites()
        if layout is None:
            return out  # (nothing written: nothing to overlap)
        out._layout = layout
        out._append_log(parts)
        out._rows = None
        ndim = layout.ndim
        every = [out.coords(ndim)]
        for side in avoid:
            if side:
                coords = _coords_of(side, ndim)
                if coords is None:
                    return None
                every.append(coords)
        return out if _distinct(np.concatenate(every) if len(every) > 1 else every[0]) else None

    def absorb_disjoint(self, other: ChunkWrites) -> None:
        """Append ``other``'s writes, which the caller knows share no coordinates with these
        and staged nothing in bulk (see :meth:`join`)."""
        assert other._bulk is None
        if not other._n:
            return
        if self._layout is None:
            self._layout = other._layout
        elif other._layout is not self._layout:
            raise ValueError(
                f"cannot fold {other._ndim}-dimensional chunk writes into "
                f"{self._ndim}-dimensional ones"
            )
        other.compact()
        self.compact()
        self._append_one(other)
        self._rows = None  # (the log is compact; the index is rebuilt if needed)


def _coords_of(side: Mapping[Coords, object], ndim: int) -> npt.NDArray[np.uint32] | None:
    """The ``(n, ndim)`` coordinates of a mapping's entries; ``None`` if some have another
    dimensionality."""
    if isinstance(side, ChunkWrites):
        bulk = side._bulk
        if side._ndim not in (-1, ndim) or (bulk is not None and bulk.coords.shape[1] != ndim):
            return None
        return side.coords(ndim)
    keys = list(side)
    if any(len(k) != ndim for k in keys):
        return None
    return _coords_array(keys, ndim)


def _distinct(coords: npt.NDArray[np.uint32]) -> bool:
    """Whether no two rows of ``coords`` are equal."""
    if len(coords) < 2:
        return True
    keys = _match_keys(coords)
    if keys.dtype.kind == "u" and bool(np.greater(keys[1:], keys[:-1]).all()):
        return True  # (written in order: no sort)
    keys = np.sort(keys)
    return not bool((keys[1:] == keys[:-1]).any())


def _restore(ndim: int, log: bytes, extra: list[object], bulk: ChunkRefs | None) -> ChunkWrites:
    """Rebuild a pickled :class:`ChunkWrites` (its log is compact: one row per entry)."""
    out = ChunkWrites(bulk=bulk)
    out._extra = extra
    if ndim >= 0:
        out._layout = _layout(ndim)
        out._n = len(log) // out._layout.size
        out._log = bytearray(log)
        out._rows = None  # (built if the fork is read or written again)
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
