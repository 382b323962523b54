"""Snapshot objects (``snapshots/<id>``, file type 1), spec 1 and spec 2.

Flatbuffer slots (schema field order; a union takes two slots)::

    Snapshot          0 id  1 parent_id (spec 1)  2 nodes  3 flushed_at  4 message  5 metadata
                      6 manifest_files (structs; empty in spec 2)  7 manifest_files_v2 (spec 2)
    NodeSnapshot      0 id  1 path  2 user_data  3 node_data_type  4 node_data  5 extra
    ArrayNodeData     0 shape (structs; empty in spec 2)  1 dimension_names  2 manifests
                      3 shape_v2 (spec 2)
    ManifestRef       0 object_id  1 extents
    DimensionShapeV2  0 array_length  1 num_chunks
    DimensionName     0 name
    ManifestFileInfoV2  0 id  1 size_bytes  2 num_chunk_refs

The encoder sorts defensively: nodes by the UTF-8 bytes of their path, metadata items by name,
manifest files by id.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from icechunk.errors import ErrorKind, InvalidInputError
from icechunk.format.flatbuf import (
    Buffer,
    Table,
    add_struct_slot,
    check_id,
    create_bytes,
    create_offset_vector,
    create_raw_vector,
    create_string,
    decoding,
    finish,
    new_builder,
)
from icechunk.format.header import decode_object, encode_object
from icechunk.format.metadata import build_metadata_items, read_metadata_items
from icechunk.format.model import (
    ArrayData,
    DimensionShape,
    FileType,
    ManifestFileInfo,
    ManifestRef,
    NodeSnapshot,
    Snapshot,
)

__all__ = ["decode_snapshot", "encode_snapshot"]

_ARRAY: Final = 1
_GROUP: Final = 2
_MANIFEST_FILE_INFO = struct.Struct("<12s4xQI4x")  # 32 bytes, alignment 8
_DIMENSION_SHAPE = struct.Struct("<QQ")  # 16 bytes, alignment 8
_CHUNK_INDEX_RANGE = struct.Struct("<II")  # 8 bytes, alignment 4


def _v1_chunk_length(dim: DimensionShape) -> int:
    """The spec-1 ``chunk_length``: the recorded one, else ceil(length / num_chunks) like 2.x."""
    if dim.chunk_length is not None:
        return dim.chunk_length
    if dim.num_chunks <= 0:
        return max(1, dim.array_length)
    return max(1, -(-dim.array_length // dim.num_chunks))


def _build_manifest_ref(b: Any, ref: ManifestRef) -> int:
    raw = b"".join(_CHUNK_INDEX_RANGE.pack(lo, hi) for lo, hi in ref.extents)
    extents = create_raw_vector(b, raw, 8, len(ref.extents), 4)
    b.StartObject(2)
    add_struct_slot(b, 0, check_id(ref.object_id, 12, "manifest id"))
    b.PrependUOffsetTRelativeSlot(1, extents, 0)
    return int(b.EndObject())


def _build_array(b: Any, array: ArrayData, spec: int) -> int:
    for d in array.shape:
        if not (0 <= d.array_length < 2**64 and 0 <= d.num_chunks < 2**32):
            raise InvalidInputError(
                f"array dimension of length {d.array_length} with {d.num_chunks} chunks does "
                "not fit the format (at most 2**32 - 1 chunks per dimension): use larger chunks",
                ErrorKind.INVALID_METADATA,
            )
    if spec == 1:
        raw = b"".join(
            _DIMENSION_SHAPE.pack(d.array_length, _v1_chunk_length(d)) for d in array.shape
        )
        shape = create_raw_vector(b, raw, 16, len(array.shape), 8)
        shape_v2 = 0
    else:
        shape = create_raw_vector(b, b"", 16, 0, 8)
        dims = []
        for d in array.shape:
            b.StartObject(2)
            b.PrependUint64Slot(0, d.array_length, 0)
            b.PrependUint32Slot(1, d.num_chunks, 0)
            dims.append(b.EndObject())
        shape_v2 = create_offset_vector(b, dims)
    names = 0
    if array.dimension_names is not None:
        entries = []
        for dim_name in array.dimension_names:
            text = create_string(b, dim_name) if dim_name is not None else 0
            b.StartObject(1)
            if text:
                b.PrependUOffsetTRelativeSlot(0, text, 0)
            entries.append(b.EndObject())
        names = create_offset_vector(b, entries)
    manifests = create_offset_vector(b, [_build_manifest_ref(b, m) for m in array.manifests])
    b.StartObject(4)
    b.PrependUOffsetTRelativeSlot(0, shape, 0)
    if names:
        b.PrependUOffsetTRelativeSlot(1, names, 0)
    b.PrependUOffsetTRelativeSlot(2, manifests, 0)
    if shape_v2:
        b.PrependUOffsetTRelativeSlot(3, shape_v2, 0)
    return int(b.EndObject())


def _build_node(b: Any, node: NodeSnapshot, spec: int) -> int:
    if not node.path.startswith("/"):
        raise InvalidInputError(
            f"invalid node path {node.path!r}: must be absolute", ErrorKind.INVALID_ARGUMENT
        )
    path = create_string(b, node.path)
    user_data = create_bytes(b, node.user_data)
    if node.array is None:
        b.StartObject(0)
        data, data_type = b.EndObject(), _GROUP
    else:
        data, data_type = _build_array(b, node.array, spec), _ARRAY
    b.StartObject(6)
    add_struct_slot(b, 0, check_id(node.id, 8, "node id"))
    b.PrependUOffsetTRelativeSlot(1, path, 0)
    b.PrependUOffsetTRelativeSlot(2, user_data, 0)
    b.PrependUOffsetTRelativeSlot(4, data, 0)
    b.PrependUint8Slot(3, data_type, 0)
    return int(b.EndObject())


def _build_manifest_files(b: Any, files: list[ManifestFileInfo], spec: int) -> tuple[int, int]:
    """``(manifest_files, manifest_files_v2)`` offsets; the second is 0 in spec 1."""
    files = sorted(files, key=lambda f: f.id)
    if spec == 1:
        raw = b"".join(
            _MANIFEST_FILE_INFO.pack(
                check_id(f.id, 12, "manifest id"), f.size_bytes, f.num_chunk_refs
            )
            for f in files
        )
        return create_raw_vector(b, raw, 32, len(files), 8), 0
    tables = []
    for f in files:
        b.StartObject(4)
        b.PrependUint64Slot(1, f.size_bytes, 0)
        b.PrependUint32Slot(2, f.num_chunk_refs, 0)
        add_struct_slot(b, 0, check_id(f.id, 12, "manifest id"))
        tables.append(b.EndObject())
    v2 = create_offset_vector(b, tables)
    return create_raw_vector(b, b"", 32, 0, 8), v2


def encode_snapshot(s: Snapshot, spec_version: int) -> bytes:
    """The complete bytes of the snapshot object for ``s`` in ``spec_version`` (1 or 2).

    Spec 1 writes ``parent_id``, the struct ``shape`` (``chunk_length`` defaulting to
    ceil(length / num_chunks)) and struct ``manifest_files``; spec 2 omits ``parent_id`` and
    writes ``shape_v2`` and ``manifest_files_v2``, with the spec-1 vectors present but empty.
    Metadata values are MessagePack (spec 1) or FlexBuffers (spec 2).

    Raises
    ------
    InvalidInputError
        Unsupported ``spec_version``, ids of the wrong size, non-absolute paths or metadata
        values that are not JSON.
    """
    spec = _check_spec(spec_version)
    nodes = sorted(s.nodes, key=lambda n: n.path.encode("utf-8"))
    b = new_builder(4096 + sum(len(n.user_data) + 256 for n in nodes))
    node_offsets = [_build_node(b, n, spec) for n in nodes]
    nodes_vec = create_offset_vector(b, node_offsets)
    message = create_string(b, s.message)
    metadata = build_metadata_items(b, s.metadata, spec)
    files, files_v2 = _build_manifest_files(b, s.manifest_files, spec)
    b.StartObject(9)
    b.PrependUint64Slot(3, s.flushed_at, 0)
    add_struct_slot(b, 0, check_id(s.id, 12, "snapshot id"))
    if spec == 1 and s.parent_id is not None:
        add_struct_slot(b, 1, check_id(s.parent_id, 12, "parent snapshot id"))
    b.PrependUOffsetTRelativeSlot(2, nodes_vec, 0)
    b.PrependUOffsetTRelativeSlot(4, message, 0)
    b.PrependUOffsetTRelativeSlot(5, metadata, 0)
    b.PrependUOffsetTRelativeSlot(6, files, 0)
    if files_v2:
        b.PrependUOffsetTRelativeSlot(7, files_v2, 0)
    root = b.EndObject()
    return encode_object(finish(b, root), FileType.SNAPSHOT, spec)


def _check_spec(spec_version: int) -> int:
    if spec_version not in (1, 2):
        raise InvalidInputError(
            f"cannot write spec version {spec_version!r}: supported versions are 1 and 2",
            ErrorKind.UNSUPPORTED_SPEC_VERSION,
        )
    return spec_version


def _read_shape(buf: Buffer, t: Table) -> tuple[DimensionShape, ...]:
    v1 = t.structs(0, 16, "ArrayNodeData.shape", required=True) or []
    v2 = t.tables(3, "ArrayNodeData.shape_v2")
    if v2 is not None and len(v2) >= len(v1):
        lengths = [_DIMENSION_SHAPE.unpack(raw)[1] for raw in v1] if len(v1) == len(v2) else None
        return tuple(
            DimensionShape(d.scalar(0, "u64"), d.scalar(1, "u32"), lengths[i] if lengths else None)
            for i, d in enumerate(v2)
        )
    dims = []
    for raw in v1:
        length, chunk = _DIMENSION_SHAPE.unpack(raw)
        if chunk == 0 and length != 0:
            raise buf.error(f"array dimension of length {length} has chunk length 0")
        dims.append(DimensionShape(length, -(-length // chunk) if chunk else 0, chunk))
    return tuple(dims)


def _read_manifest_ref(t: Table) -> ManifestRef:
    extents = t.structs(1, 8, "ManifestRef.extents", required=True) or []
    return ManifestRef(
        t.struct_req(0, 12, "ManifestRef.object_id"),
        tuple(_CHUNK_INDEX_RANGE.unpack(raw) for raw in extents),
    )


def _read_node(buf: Buffer, t: Table) -> NodeSnapshot:
    node_id = t.struct_req(0, 8, "NodeSnapshot.id")
    path = t.string_req(1, "NodeSnapshot.path")
    user_data = t.blob_req(2, "NodeSnapshot.user_data")
    data_type = t.scalar(3, "u8")
    data = t.table_req(4, "NodeSnapshot.node_data")
    if data_type == _GROUP:
        return NodeSnapshot(node_id, path, user_data, None)
    if data_type != _ARRAY:
        raise buf.error(f"node `{path}` has unknown node data type {data_type}")
    names_tables = data.tables(1, "ArrayNodeData.dimension_names")
    names = None
    if names_tables is not None:
        names = tuple(n.string(0, "DimensionName.name") for n in names_tables)
    manifests = tuple(_read_manifest_ref(m) for m in data.tables_req(2, "ArrayNodeData.manifests"))
    return NodeSnapshot(
        node_id, path, user_data, ArrayData(_read_shape(buf, data), names, manifests)
    )


def _read_manifest_files(root: Table) -> list[ManifestFileInfo]:
    v2 = root.tables(7, "Snapshot.manifest_files_v2")
    if v2:
        return [
            ManifestFileInfo(
                t.struct_req(0, 12, "ManifestFileInfoV2.id"),
                t.scalar(1, "u64"),
                t.scalar(2, "u32"),
            )
            for t in v2
        ]
    out = []
    for raw in root.structs(6, 32, "Snapshot.manifest_files", required=True) or []:
        mid, size, count = _MANIFEST_FILE_INFO.unpack(raw)
        out.append(ManifestFileInfo(mid, size, count))
    return out


def decode_snapshot(data: bytes, name: str) -> Snapshot:
    """Decode the snapshot object ``data`` stored at key ``name``.

    Accepts spec-1 and spec-2 objects (decided by each object's own header byte).

    Raises
    ------
    FormatError
        The object is corrupt, truncated, of another kind or of an unsupported spec version;
        the message names ``name``.
    """
    spec, payload = decode_object(data, name, FileType.SNAPSHOT)
    with decoding(name, "snapshot"):
        buf = Buffer(payload, name, "snapshot")
        root = buf.root()
        snapshot_id = root.struct_req(0, 12, "Snapshot.id")
        parent = root.struct(1, 12)
        nodes = [_read_node(buf, t) for t in root.tables_req(2, "Snapshot.nodes")]
        return Snapshot(
            id=snapshot_id,
            parent_id=parent,
            nodes=nodes,
            flushed_at=root.scalar(3, "u64"),
            message=root.string_req(4, "Snapshot.message"),
            metadata=read_metadata_items(root.tables_req(5, "Snapshot.metadata"), spec, name),
            manifest_files=_read_manifest_files(root),
            spec_version=spec,
        )
