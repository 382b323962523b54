"""One array's staged changes as the commit and the merge read them, in whichever form.

A session's change set maps each array to its staged chunk changes: usually a
:class:`~icechunk._core.chunk_writes.ChunkWrites` log, sometimes a plain ``dict`` from
coordinates to payloads (``None``: deleted), as tests and older pickles hold. These functions
take either and read the columnar form without building a payload object per chunk where
they can: the coordinates of the changes, their reference columns, the old references with
the changes applied, and folds of one side's writes into another's.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterable, KeysView, Mapping, MutableMapping

import numpy as np
import numpy.typing as npt

from icechunk._core.chunk_refs import (
    _columns,
    _concat,
    _coords_array,
    _match_keys,
    pick,
    sort_order,
    take_refs,
)
from icechunk._core.chunk_writes import ChunkWrites, Coords
from icechunk._core.payloads import ChunkPayload
from icechunk.format.model import ChunkRefs

__all__ = ["absorb_writes", "changed_coords", "merge_refs", "single_keys", "staged_columns"]

_NONE = type(None)


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
