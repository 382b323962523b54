"""Moving chunks inside an array's grid: ``Session.reindex_array`` and ``Session.shift_array``.

Semantics of the real Icechunk 2.3 (checked against it):

* ``reindex_array(path, forward, backward=None)`` visits every existing chunk in coordinate
  order; ``forward(coords)`` (a list of ints) gives the new position, or ``None`` to leave the
  chunk where it is. The chunk's reference is written at the new position (a later chunk mapped
  to the same position wins). Without ``backward`` nothing else changes: a moved chunk's old
  position keeps its reference. With ``backward``, every existing position ``p`` whose
  ``backward(p)`` is ``None`` or names a position without a chunk is cleared (unless a chunk was
  moved there).
* ``shift_array(path, offset)`` is ``reindex_array`` with ``forward = c + offset`` and
  ``backward = c - offset`` (``None`` outside the grid): chunks shifted out are dropped and
  vacated positions cleared.

Only chunk references move; no chunk data is read or written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from icechunk.errors import ErrorKind, IcechunkError, InvalidInputError

if TYPE_CHECKING:
    from icechunk.change_set import ChunkPayload

__all__ = ["plan_reindex", "shift_functions"]

type Coords = tuple[int, ...]
type Mapper = Callable[[list[int]], Iterable[int] | None]


def _call(fn: Mapper, coords: Coords) -> Coords | None:
    """``fn(coords)`` as a tuple of non-negative ints, or ``None``.

    A Python error inside ``fn`` (or a result that is not a sequence of non-negative integers)
    is reported as the real Icechunk does: ``IcechunkError`` of kind ``unknown``.
    """
    try:
        out = fn(list(coords))
        if out is None:
            return None
        if isinstance(out, str | bytes):
            raise TypeError(f"Can't extract `{type(out).__name__}` to `Vec`")
        result = []
        for x in out:
            if isinstance(x, bool) or not isinstance(x, int):
                raise TypeError(f"'{type(x).__name__}' object cannot be interpreted as an integer")
            if x < 0:
                raise OverflowError("number too small to fit in target type")
            result.append(x)
        return tuple(result)
    except Exception as e:
        raise IcechunkError(
            f"session error: unknown error: {type(e).__name__}: {e}", ErrorKind.UNKNOWN
        ) from e


def plan_reindex(
    path: str,
    num_chunks: Coords,
    payloads: Mapping[Coords, ChunkPayload | None],
    forward: Mapper,
    backward: Mapper | None,
) -> dict[Coords, ChunkPayload | None]:
    """The chunk writes (``None``: clear) that reindex the array whose existing chunks are
    ``payloads``; nothing is staged by this function.

    Raises
    ------
    InvalidInputError
        ``forward`` maps a chunk outside the grid ``num_chunks`` (``invalid-chunk-index``).
    """
    given: tuple[object, object] = (forward, backward)
    if not callable(given[0]) or (given[1] is not None and not callable(given[1])):
        raise TypeError("reindex_array: `forward` and `backward` must be callables")
    writes: dict[Coords, ChunkPayload | None] = {}
    for coords in sorted(payloads):
        target = _call(forward, coords)
        if target is None:
            continue
        if len(target) != len(num_chunks) or any(
            t >= n for t, n in zip(target, num_chunks, strict=False)
        ):
            raise InvalidInputError(
                f"session error: invalid chunk index: coordinates ChunkIndices({list(target)}) "
                f"are not valid for array at {path}",
                ErrorKind.INVALID_CHUNK_INDEX,
            )
        writes[target] = payloads[coords]
    if backward is not None:
        for coords in sorted(payloads):
            if coords in writes:
                continue
            source = _call(backward, coords)
            if source is None or payloads.get(source) is None:
                writes[coords] = None
    return writes


def shift_functions(offset: list[int], num_chunks: Coords, path: str) -> tuple[Mapper, Mapper]:
    """The ``forward`` and ``backward`` functions of a shift by ``offset`` chunks.

    Raises
    ------
    InvalidInputError
        ``offset`` does not have one entry per dimension of the array.
    """
    if len(offset) != len(num_chunks):
        raise InvalidInputError(
            f"cannot shift `{path}` by {offset}: the offset needs one entry per dimension "
            f"({len(num_chunks)})",
            ErrorKind.INVALID_ARGUMENT,
        )

    def move(coords: list[int], sign: int) -> list[int] | None:
        out = [c + sign * o for c, o in zip(coords, offset, strict=True)]
        if any(x < 0 or x >= n for x, n in zip(out, num_chunks, strict=True)):
            return None
        return out

    return (lambda c: move(c, 1)), (lambda c: move(c, -1))
