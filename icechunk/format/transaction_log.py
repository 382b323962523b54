"""Transaction logs (``transactions/<snapshot id>``, file type 4), spec 1 and spec 2.

Flatbuffer slots::

    TransactionLog      0 id  1 new_groups  2 new_arrays  3 deleted_groups  4 deleted_arrays
                        5 updated_arrays  6 updated_groups  7 updated_chunks  8 moved_nodes (v2)
    ArrayUpdatedChunks  0 node_id  1 chunks
    ChunkIndices        0 coords
    MoveOperation       0 from  1 to  2 node_id  3 node_type (0 group, 1 array)

The id lists are written sorted (and de-duplicated), ``updated_chunks`` sorted by node id with
each array's coordinates sorted lexicographically, moves sorted by their ``to`` path compared
segment-wise. Spec 2 always writes ``moved_nodes`` (possibly empty). Chunk lists, which can hold
millions of coordinates, are built and read with numpy.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from icechunk.errors import ErrorKind, InvalidInputError
from icechunk.format.flatbuf import (
    Buffer,
    Table,
    TableColumns,
    add_struct_slot,
    check_id,
    create_offset_vector,
    create_raw_vector,
    create_string,
    decoding,
    finish,
    gather_rows,
    insert_block,
    new_builder,
)
from icechunk.format.header import decode_object, encode_object
from icechunk.format.manifest import ascending_rows
from icechunk.format.model import FileType, MoveOperation, TransactionLog

__all__ = ["decode_transaction_log", "encode_transaction_log"]

_ID_LISTS: Final = (
    "new_groups",
    "new_arrays",
    "deleted_groups",
    "deleted_arrays",
    "updated_arrays",
    "updated_groups",
)
_CHUNK_INDICES_VTABLE: Final = struct.pack("<HHH", 6, 8, 4)

type ChunkList = Sequence[tuple[int, ...]] | npt.NDArray[np.integer[Any]]
"""One array's updated chunk coordinates: tuples, or an ``(n, ndim)`` integer array."""


def _coords_of(node_id: bytes, chunks: ChunkList) -> npt.NDArray[np.uint32]:
    """``chunks`` as an ``(n, ndim)`` uint32 array, checked (not sorted)."""
    if isinstance(chunks, np.ndarray):
        if chunks.ndim != 2 or (chunks.size and chunks.dtype.kind not in "iu"):
            raise InvalidInputError(
                f"chunk coordinates of node {node_id.hex()} must be a 2-d integer array, not "
                f"{chunks.dtype} with shape {chunks.shape}",
                ErrorKind.INVALID_ARGUMENT,
            )
        if chunks.dtype == np.uint32:
            same: npt.NDArray[np.uint32] = chunks.astype(np.uint32, copy=False)
            return same
        if chunks.size and (int(chunks.min()) < 0 or int(chunks.max()) > 0xFFFFFFFF):
            raise InvalidInputError(
                "chunk coordinates must fit in uint32", ErrorKind.INVALID_CHUNK_INDEX
            )
        return chunks.astype(np.uint32)
    n = len(chunks)
    ndim = len(chunks[0]) if n else 0
    lengths = np.fromiter(map(len, chunks), dtype=np.int64, count=n)
    if (lengths != ndim).any():
        raise InvalidInputError(
            f"chunk coordinates of node {node_id.hex()} differ in dimensionality",
            ErrorKind.INVALID_ARGUMENT,
        )
    try:
        flat = np.fromiter(itertools.chain.from_iterable(chunks), dtype=np.int64, count=n * ndim)
    except (OverflowError, TypeError, ValueError):
        raise InvalidInputError(
            "chunk coordinates must be integers that fit in uint32", ErrorKind.INVALID_CHUNK_INDEX
        ) from None
    if flat.size and (flat.min() < 0 or flat.max() > 0xFFFFFFFF):
        raise InvalidInputError(
            "chunk coordinates must fit in uint32", ErrorKind.INVALID_CHUNK_INDEX
        )
    return flat.astype(np.uint32).reshape(n, ndim)


def _sorted_coords(node_id: bytes, chunks: ChunkList) -> npt.NDArray[np.uint32]:
    """The coordinates as a sorted, de-duplicated ``(n, ndim)`` array."""
    coords = _coords_of(node_id, chunks)
    n, ndim = coords.shape
    if n < 2 or ascending_rows(coords):
        return coords
    if ndim == 0:
        return coords[:1]
    if ndim == 1:
        return np.unique(coords[:, 0]).reshape(-1, 1)
    if ndim == 2:
        key = (coords[:, 0].astype(np.uint64) << np.uint64(32)) | coords[:, 1]
    else:
        # big-endian rows compare as byte strings in coordinate order
        key = np.ascontiguousarray(coords, dtype=">u4").view(f"S{4 * ndim}").reshape(n)
    _, first = np.unique(key, return_index=True)
    unique: npt.NDArray[np.uint32] = coords[first]
    return unique


def _chunks_block(coords: npt.NDArray[np.uint32]) -> tuple[npt.NDArray[np.uint8], int]:
    """A ``[ChunkIndices]`` vector and its tables as one block; returns (block, vector pos)."""
    n, ndim = coords.shape
    vec = 8  # the 6-byte vtable, padded
    first = vec + 4 + 4 * n
    record = 12 + 4 * ndim
    size = first + n * record
    out = np.zeros(size, dtype=np.uint8)
    out[:6] = np.frombuffer(_CHUNK_INDICES_VTABLE, dtype=np.uint8)
    w32 = out.view("<u4")
    i = np.arange(n, dtype=np.int64)
    starts = first + i * record
    w32[vec // 4] = n
    w32[vec // 4 + 1 : vec // 4 + 1 + n] = starts - (vec + 4 + 4 * i)
    q = starts // 4
    out.view("<i4")[q] = starts  # the vtable sits at block offset 0
    w32[q + 1] = 4
    w32[q + 2] = ndim
    for k in range(ndim):
        w32[q + 3 + k] = coords[:, k]
    return out, vec


def _build_updated_chunks(b: Any, node_id: bytes, chunks: ChunkList) -> int:
    block, vec = _chunks_block(_sorted_coords(node_id, chunks))
    chunks_vec = insert_block(b, block, 4) - vec
    b.StartObject(2)
    b.PrependUOffsetTRelativeSlot(1, chunks_vec, 0)
    add_struct_slot(b, 0, node_id)
    return int(b.EndObject())


def _segments(path: str) -> list[bytes]:
    return [s.encode("utf-8") for s in path.split("/")]


def _build_move(b: Any, move: MoveOperation) -> int:
    src = create_string(b, move.from_path)
    dst = create_string(b, move.to_path)
    b.StartObject(4)
    b.PrependUOffsetTRelativeSlot(0, src, 0)
    b.PrependUOffsetTRelativeSlot(1, dst, 0)
    add_struct_slot(b, 2, check_id(move.node_id, 8, "node id"))
    b.PrependUint8Slot(3, 1 if move.is_array else 0, 0)
    return int(b.EndObject())


def encode_transaction_log(
    t: TransactionLog,
    spec_version: int,
    *,
    chunk_coords: Mapping[bytes, ChunkList] | None = None,
) -> bytes:
    """The complete bytes of the transaction-log object for ``t`` in ``spec_version``.

    ``chunk_coords``, if given, replaces ``t.updated_chunks``: per array node id its updated
    chunk coordinates, e.g. as an ``(n, ndim)`` integer array (any order, duplicates allowed),
    so that a commit of millions of chunks never builds a tuple per chunk.

    Raises
    ------
    InvalidInputError
        Unsupported ``spec_version``, ids of the wrong size, or chunk coordinates of one array
        that differ in dimensionality or do not fit in uint32.
    """
    if spec_version not in (1, 2):
        raise InvalidInputError(
            f"cannot write spec version {spec_version!r}: supported versions are 1 and 2",
            ErrorKind.UNSUPPORTED_SPEC_VERSION,
        )
    chunks = t.updated_chunks if chunk_coords is None else chunk_coords
    total = sum(len(c) for c in chunks.values())
    b = new_builder(4096 + 24 * total)
    id_lists = []
    for field in _ID_LISTS:
        ids = sorted({check_id(x, 8, "node id") for x in getattr(t, field)})
        id_lists.append(create_raw_vector(b, b"".join(ids), 8, len(ids), 1))
    updated = [
        _build_updated_chunks(b, node_id, chunks[node_id])
        for node_id in sorted(chunks, key=lambda x: check_id(x, 8, "node id"))
    ]
    updated_vec = create_offset_vector(b, updated)
    moves_vec = 0
    if spec_version == 2 or t.moved_nodes:
        moves = sorted(t.moved_nodes, key=lambda m: _segments(m.to_path))
        moves_vec = create_offset_vector(b, [_build_move(b, m) for m in moves])
    b.StartObject(10)
    for slot, vec in enumerate(id_lists, start=1):
        b.PrependUOffsetTRelativeSlot(slot, vec, 0)
    b.PrependUOffsetTRelativeSlot(7, updated_vec, 0)
    if moves_vec:
        b.PrependUOffsetTRelativeSlot(8, moves_vec, 0)
    add_struct_slot(b, 0, check_id(t.id, 12, "snapshot id"))
    root = b.EndObject()
    return encode_object(finish(b, root), FileType.TRANSACTION_LOG, spec_version)


def _read_chunks(buf: Buffer, vec_pos: int) -> list[tuple[int, ...]]:
    cols = TableColumns(buf, vec_pos, "ArrayUpdatedChunks.chunks")
    starts, lengths = cols.u32_vectors(0, "ChunkIndices.coords")
    if cols.n == 0:
        return []
    ndim = int(lengths[0])
    if (lengths == ndim).all():
        rows = gather_rows(buf, starts, ndim, "<u4")
        if ndim == 0:
            return [()] * cols.n
        columns = [rows[:, k].tolist() for k in range(ndim)]
        return list(zip(*columns, strict=True))
    out = []
    for s, n in zip(starts.tolist(), lengths.tolist(), strict=True):
        out.append(tuple(np.frombuffer(buf.data, "<u4", n, s).tolist()))
    return out


def _read_move(buf: Buffer, t: Table) -> MoveOperation:
    node_type = t.scalar(3, "u8")
    if node_type not in (0, 1):
        raise buf.error(f"move operation with unknown node type {node_type}")
    return MoveOperation(
        from_path=t.string_req(0, "MoveOperation.from"),
        to_path=t.string_req(1, "MoveOperation.to"),
        node_id=t.struct_req(2, 8, "MoveOperation.node_id"),
        is_array=node_type == 1,
    )


def decode_transaction_log(data: bytes, name: str) -> TransactionLog:
    """Decode the transaction-log object ``data`` stored at key ``name``.

    Raises
    ------
    FormatError
        The object is corrupt, truncated, of another kind or of an unsupported spec version;
        the message names ``name``.
    """
    spec, payload = decode_object(data, name, FileType.TRANSACTION_LOG)
    with decoding(name, "transaction log"):
        buf = Buffer(payload, name, "transaction log")
        root = buf.root()
        log = TransactionLog(id=root.struct_req(0, 12, "TransactionLog.id"), spec_version=spec)
        for slot, field in enumerate(_ID_LISTS, start=1):
            setattr(log, field, root.structs(slot, 8, f"TransactionLog.{field}", required=True))
        for t in root.tables_req(7, "TransactionLog.updated_chunks"):
            node_id = t.struct_req(0, 8, "ArrayUpdatedChunks.node_id")
            vec = t.child(1, "ArrayUpdatedChunks.chunks", required=True)
            log.updated_chunks[node_id] = _read_chunks(buf, vec)
        moves = root.tables(8, "TransactionLog.moved_nodes") or []
        log.moved_nodes = [_read_move(buf, m) for m in moves]
        return log
