"""Checking and building batches of virtual references before a session stages them.

The store's ``set_virtual_ref``, ``set_virtual_refs`` and ``set_virtual_refs_arr`` turn their
arguments into the same columns (:data:`RefColumns`: chunk coordinates, locations, offsets,
lengths, checksums); :func:`plan_virtual_refs` checks a whole batch with numpy (chunk grid,
offsets, lengths, checksum range) and each distinct location once (URL, container), and builds
the payloads. A bad reference raises before anything is staged.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from icechunk.errors import ErrorKind, InvalidInputError
from icechunk.virtual import (
    INVALID_REF,
    MAX_CHECKSUM_SECONDS,
    VirtualChunkSpec,
    find_container,
    repo_containers,
    resolve_location,
    spec_indices,
    split_checksum,
    validate_location,
)

if TYPE_CHECKING:
    from icechunk._core.objects import RepoObjects
    from icechunk.format.model import ChunkRefs

__all__ = ["RefColumns", "grid_columns", "plan_virtual_refs", "single_ref_columns", "spec_columns"]


type RefColumns = tuple[
    npt.NDArray[np.int64],
    list[str],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    list[str | None] | None,
    npt.NDArray[np.int64] | None,
]
"""``(coords, locations, offsets, lengths, etags, last_modified)`` of a batch of references."""


def _int_column(values: object, what: str) -> npt.NDArray[np.int64]:
    """``values`` as a 1-D int64 array; anything but integers is refused."""
    arr = np.asarray(values)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise InvalidInputError(
            f"{what} must be a 1-D array of integers, not {arr.dtype} with shape {arr.shape}",
            ErrorKind.INVALID_ARGUMENT,
        )
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        raise InvalidInputError(f"{what} too large", ErrorKind.INVALID_ARGUMENT)
    return arr.astype(np.int64, copy=False)


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InvalidInputError(
            f"{what} must be an integer, not {type(value).__name__}", ErrorKind.INVALID_ARGUMENT
        )
    return int(value)


def single_ref_columns(
    coords: tuple[int, ...], location: str, offset: object, length: object, checksum: object
) -> RefColumns:
    """The columns of one reference (``IcechunkStore.set_virtual_ref``)."""
    etag, seconds = split_checksum(checksum)
    return (
        np.array([coords], dtype=np.int64).reshape(1, len(coords)),
        [location],
        np.array([_int(offset, "offset")], dtype=np.int64),
        np.array([_int(length, "length")], dtype=np.int64),
        [etag],
        np.array([seconds], dtype=np.int64),
    )


def spec_columns(chunks: Sequence[VirtualChunkSpec]) -> RefColumns:
    """The columns of a list of :class:`VirtualChunkSpec` (``set_virtual_refs``).

    Each field is gathered in one pass at C speed and checked as a whole; only when that check
    fails (or for checksums) are the specs looked at one by one, to name the bad one.
    """
    if type(chunks) is not list:
        chunks = list(chunks)
    if set(map(type, chunks)) - {VirtualChunkSpec} and not all(
        isinstance(c, VirtualChunkSpec) for c in chunks
    ):
        raise InvalidInputError(
            "set_virtual_refs takes a list of VirtualChunkSpec", ErrorKind.INVALID_ARGUMENT
        )
    n = len(chunks)
    if n == 0:
        none = np.zeros(0, dtype=np.int64)
        return np.zeros((0, 0), dtype=np.int64), [], none, none, None, None
    # each field gathered in one pass at C speed; the coordinates flattened into one array
    indices = spec_indices(chunks)
    widths = set(map(len, indices))
    if len(widths) > 1:
        raise InvalidInputError(
            "every VirtualChunkSpec index must have the same number of dimensions",
            ErrorKind.INVALID_CHUNK_INDEX,
        )
    ndim = widths.pop()
    locations, offs, lens = (list(map(get, chunks)) for get in (_LOCATION, _OFFSET, _LENGTH))
    coords = _ints(list(chain.from_iterable(indices)), "chunk index").reshape(n, ndim)
    offsets = _ints(offs, "offset")
    lengths = _ints(lens, "length")
    if operator.countOf(map(_ETAG, chunks), None) == n and (
        operator.countOf(map(_UPDATED, chunks), None) == n
    ):
        etags: list[str | None] | None = None
        seconds: npt.NDArray[np.int64] | None = None
    else:
        etags = []
        secs: list[int] = []
        for c in chunks:
            tag, when = _ETAG(c), _UPDATED(c)
            if tag is not None and when is not None:
                raise InvalidInputError(
                    f"virtual reference {c.index}: give an etag or a last-updated checksum, "
                    "not both",
                    ErrorKind.INVALID_ARGUMENT,
                )
            etag, sec = split_checksum(tag if tag is not None else when)
            etags.append(etag)
            secs.append(sec)
        seconds = np.array(secs, dtype=np.int64)
    return (coords, locations, offsets, lengths, etags, seconds)


# getters of VirtualChunkSpec fields, read with ``map`` at C speed
_LOCATION = operator.attrgetter("location")
_OFFSET = operator.attrgetter("offset")
_LENGTH = operator.attrgetter("length")
_ETAG = operator.attrgetter("etag_checksum")
_UPDATED = operator.attrgetter("last_updated_at_checksum")


def _ints(values: list[object], what: str) -> npt.NDArray[np.int64]:
    """``values`` (Python or numpy integers, not bools) as int64; else the first bad one raises."""
    types = set(map(type, values))
    if all(t is not bool and issubclass(t, int | np.integer) for t in types):
        try:
            return np.array(values, dtype=np.int64).reshape(len(values))
        except OverflowError:
            pass
    for v in values:
        _int(v, what)  # names the first non-integer
    raise InvalidInputError(f"{what} does not fit in 64 bits", ErrorKind.INVALID_ARGUMENT)


def grid_columns(
    chunk_grid_shape: Sequence[int],
    locations: Sequence[str],
    offsets: object,
    lengths: object,
    arr_offset: Sequence[int] | None,
    checksum: object,
) -> RefColumns:
    """The columns of a C-ordered block of references (``set_virtual_refs_arr``).

    Empty locations are dropped; ``arr_offset`` is added to every chunk coordinate.
    """
    grid = tuple(_int(g, "chunk_grid_shape") for g in chunk_grid_shape)
    locs = list(locations)
    offs = _int_column(offsets, "offsets")
    lens = _int_column(lengths, "lengths")
    if not len(locs) == len(offs) == len(lens):
        raise InvalidInputError(
            "locations, offsets, and lengths must have the same length "
            f"({len(locs)}, {len(offs)}, {len(lens)})",
            ErrorKind.INVALID_ARGUMENT,
        )
    if any(g < 0 for g in grid) or math.prod(grid) != len(locs):
        raise InvalidInputError(
            f"chunk_grid_shape {list(grid)} holds {math.prod(grid)} chunks, but {len(locs)} "
            "locations were given",
            ErrorKind.INVALID_ARGUMENT,
        )
    origin = np.zeros(len(grid), dtype=np.int64)
    if arr_offset is not None:
        if len(arr_offset) != len(grid):
            raise InvalidInputError(
                f"arr_offset {list(arr_offset)} must have {len(grid)} dimensions",
                ErrorKind.INVALID_ARGUMENT,
            )
        origin = np.array([_int(o, "arr_offset") for o in arr_offset], dtype=np.int64)
    keep = np.fromiter((bool(loc) for loc in locs), dtype=bool, count=len(locs))
    idx = np.flatnonzero(keep)
    if len(grid):
        coords = np.stack(np.unravel_index(idx, grid), axis=1).astype(np.int64) + origin
    else:
        coords = np.zeros((len(idx), 0), dtype=np.int64)
    kept = [locs[i] for i in idx.tolist()] if len(idx) != len(locs) else locs
    etag, seconds = split_checksum(checksum)
    n = len(kept)
    return (
        coords.reshape(n, len(grid)),
        kept,
        offs[idx],
        lens[idx],
        [etag] * n if etag is not None else None,
        np.full(n, seconds, dtype=np.int64) if seconds else None,
    )


def plan_virtual_refs(
    repo: RepoObjects,
    path: str,
    grid: tuple[int, ...],
    coords: npt.NDArray[np.int64],
    locations: Sequence[str],
    offsets: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
    etags: Sequence[str | None] | None,
    last_modified: npt.NDArray[np.int64] | None,
    *,
    validate_containers: bool,
) -> tuple[ChunkRefs, list[int]]:
    """Check a batch of virtual references and build their columns; nothing is staged here.

    Parameters
    ----------
    repo
        Whose containers the locations are matched against.
    path, grid
        The array (for messages) and its number of chunks per dimension.
    coords
        ``(n, ndim)`` chunk coordinates.
    locations, offsets, lengths
        Per reference: URL, byte offset and byte length.
    etags, last_modified
        Per-reference checksums (``None``/``0`` for none), or ``None`` for no checksums.
    validate_containers
        Refuse (report) references whose location matches no container.

    Returns
    -------
    refs, failed
        The accepted references as sorted columns (no Python object per reference), ready
        for ``ChangeSet.set_chunk_refs``; where several share coordinates the last one wins.
        And the positions of references refused because no container matches their location.

    Raises
    ------
    InvalidInputError
        A coordinate outside the chunk grid, a negative offset, a zero or negative length, a
        malformed URL or checksum, or mismatched column lengths. Nothing is accepted then.
    """
    from icechunk._core.chunk_refs import empty_refs

    n = len(locations)
    ndim = len(grid)
    if coords.shape != (n, ndim) or offsets.shape != (n,) or lengths.shape != (n,):
        raise InvalidInputError(
            f"virtual references for `{path}`: locations, offsets, lengths and chunk "
            f"coordinates must have the same length ({n}, {len(offsets)}, {len(lengths)}, "
            f"{len(coords)}) and coordinates {ndim} dimensions",
            ErrorKind.INVALID_ARGUMENT,
        )
    if n == 0:
        return empty_refs(ndim), []
    bad = np.flatnonzero(((coords < 0) | (coords >= np.asarray(grid, dtype=np.int64))).any(axis=1))
    if len(bad):
        raise InvalidInputError(
            f"invalid chunk index {coords[bad[0]].tolist()} for array `{path}` with "
            f"{list(grid)} chunks per dimension ({len(bad)} virtual references outside the grid)",
            ErrorKind.INVALID_CHUNK_INDEX,
        )
    if (offsets < 0).any():
        i = int(np.flatnonzero(offsets < 0)[0])
        raise InvalidInputError(
            f"negative offset {int(offsets[i])} in the virtual reference for chunk "
            f"{coords[i].tolist()} of `{path}`",
            ErrorKind.INVALID_ARGUMENT,
        )
    if (lengths <= 0).any():
        i = int(np.flatnonzero(lengths <= 0)[0])
        raise InvalidInputError(
            f"refusing a virtual reference of length {int(lengths[i])} for chunk "
            f"{coords[i].tolist()} of `{path}`: a chunk is never empty; delete the chunk instead",
            ErrorKind.ZERO_LENGTH_CHUNK,
        )
    if (
        last_modified is not None
        and ((last_modified < 0) | (last_modified > MAX_CHECKSUM_SECONDS)).any()
    ):
        raise InvalidInputError(
            "last-modified checksums must lie between 1970 and 2106", ErrorKind.INVALID_ARGUMENT
        )
    containers = repo_containers(repo.config)
    verdict: dict[str, bool] = {}
    for location in set(locations):
        validate_location(location)
        if location.startswith("vcc://"):
            if repo.spec_version < 2:
                raise InvalidInputError(
                    f"`vcc://` virtual chunk locations need a spec version 2 repository: "
                    f"{location}",
                    INVALID_REF,
                )
            resolve_location(containers, location)  # the named container must exist
        verdict[location] = not validate_containers or (
            find_container(containers, location) is not None
        )
    if all(verdict.values()):
        failed: list[int] = []
        keep = np.arange(n)
    else:
        ok = np.fromiter(map(verdict.__getitem__, locations), dtype=bool, count=n)
        failed = np.flatnonzero(~ok).tolist()
        keep = np.flatnonzero(ok)
    return _virtual_columns(coords, locations, offsets, lengths, etags, last_modified, keep), failed


def _virtual_columns(
    coords: npt.NDArray[np.int64],
    locations: Sequence[str],
    offsets: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
    etags: Sequence[str | None] | None,
    last_modified: npt.NDArray[np.int64] | None,
    keep: npt.NDArray[np.intp],
) -> ChunkRefs:
    """Sorted columns of the (checked) references at positions ``keep``; last one wins."""
    from icechunk._core.chunk_refs import coord_keys, pick
    from icechunk.format.model import ChunkKind, ChunkRefs

    ndim = coords.shape[1]
    rows = coords[keep].astype(np.uint32)
    if ndim == 0:
        keys: npt.NDArray[Any] = np.zeros(len(keep), dtype=np.uint8)
    elif ndim == 1:
        keys = rows[:, 0]
    elif ndim == 2:
        keys = (rows[:, 0].astype(np.uint64) << np.uint64(32)) | rows[:, 1]
    else:
        keys = coord_keys(rows)
    if len(keys) > 1 and not bool((keys[1:] > keys[:-1]).all()):
        order = np.argsort(keys, kind="stable")  # equal keys keep their input order
        ordered = keys[order]
        last = np.r_[ordered[1:] != ordered[:-1], True]  # the last of each run of equal keys
        keep = keep[order[last]]
        rows = rows[order[last]]
    n = len(keep)
    every = n == len(locations)
    return ChunkRefs(
        coords=rows,
        kind=np.full(n, ChunkKind.VIRTUAL, dtype=np.uint8),
        chunk_id=np.zeros((n, 12), dtype=np.uint8),
        offset=offsets[keep].astype(np.uint64),
        length=lengths[keep].astype(np.uint64),
        location=list(locations) if every and _is_identity(keep) else pick(locations, keep),
        checksum_etag=[] if etags is None else pick(etags, keep),
        checksum_last_modified=(
            np.zeros(n, dtype=np.uint32)
            if last_modified is None
            else last_modified[keep].astype(np.uint32)
        ),
    )


def _is_identity(idx: npt.NDArray[np.intp]) -> bool:
    return bool((idx == np.arange(len(idx))).all())
