"""The spec-2 repository info object (``$ROOT/repo``, file type 6).

Flatbuffer slots::

    Repo          0 spec_version  1 tags  2 branches  3 deleted_tags  4 snapshots  5 status
                  6 metadata  7 latest_updates  8 repo_before_updates  9 config
                  10 enabled_feature_flags  11 disabled_feature_flags  12 extra
    Ref           0 name  1 snapshot_index
    SnapshotInfo  0 id  1 parent_offset  2 flushed_at  3 message  4 metadata
                  5 pruned_ancestor_tx_logs
    RepoStatus    0 availability  1 set_at  2 limited_availability_reason
    Update        0 update_type_type  1 update_type  2 updated_at  3 backup_path

On disk, refs point at snapshots by their index in the id-sorted ``snapshots`` vector and
parents are such indexes too (-1 for none); :class:`~icechunk.format.model.RepoInfo` uses ids
and this module converts. Decoding records whether any table sets a field this schema does not
know (or uses an unknown ops-log entry type) in ``RepoInfo.has_unknown_fields``: rewriting such
an object would silently drop data, so :func:`encode_repo_info` refuses it.
"""

from __future__ import annotations

import itertools
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

import numpy as np

from icechunk.errors import ErrorKind, FormatError, InvalidInputError
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
    insert_block,
    new_builder,
)
from icechunk.format.header import decode_object, encode_object
from icechunk.format.metadata import build_metadata_items, read_metadata_items
from icechunk.format.model import (
    FileType,
    RepoInfo,
    RepoRef,
    RepoStatus,
    SnapshotInfoRecord,
    UpdateRecord,
)

__all__ = ["UPDATE_KINDS", "decode_repo_info", "encode_repo_info"]

_SPEC: Final = 2

# Ops-log entry types in union order (type byte = position + 1) with their fields in slot
# order: "str" string, "id" ObjectId12, "u8"/"u16" integers, "bool", "status" RepoStatus.
UPDATE_KINDS: Final[tuple[tuple[str, tuple[tuple[str, str], ...]], ...]] = (
    ("RepoInitialized", ()),
    ("RepoMigrated", (("from_version", "u8"), ("to_version", "u8"))),
    ("ConfigChanged", ()),
    ("MetadataChanged", ()),
    ("TagCreated", (("name", "str"),)),
    ("TagDeleted", (("name", "str"), ("previous_snap_id", "id"))),
    ("BranchCreated", (("name", "str"),)),
    ("BranchDeleted", (("name", "str"), ("previous_snap_id", "id"))),
    ("BranchReset", (("name", "str"), ("previous_snap_id", "id"))),
    ("NewCommit", (("branch", "str"), ("new_snap_id", "id"))),
    ("CommitAmended", (("branch", "str"), ("previous_snap_id", "id"), ("new_snap_id", "id"))),
    ("NewDetachedSnapshot", (("new_snap_id", "id"),)),
    ("GCRan", ()),
    ("ExpirationRan", ()),
    ("FeatureFlagChanged", (("id", "u16"), ("new_value", "bool"), ("is_set", "bool"))),
    ("RepoStatusChanged", (("status", "status"),)),
)
_KIND_INDEX: Final = {kind: i + 1 for i, (kind, _) in enumerate(UPDATE_KINDS)}
_KNOWN_SLOTS: Final = {
    "Repo": 13,
    "Ref": 2,
    "SnapshotInfo": 6,
    "RepoStatus": 3,
    "MetadataItem": 2,
    "Update": 4,
}


def _invalid(detail: str) -> InvalidInputError:
    return InvalidInputError(f"invalid repo info: {detail}", ErrorKind.INVALID_ARGUMENT)


def _utf8(s: str) -> bytes:
    return s.encode("utf-8")


# ---------------------------------------------------------------------------------------------
# encoding


def _build_status(b: Any, status: RepoStatus) -> int:
    reason = create_string(b, status.reason) if status.reason is not None else 0
    b.StartObject(3)
    b.PrependUint64Slot(1, status.set_at, 0)
    if reason:
        b.PrependUOffsetTRelativeSlot(2, reason, 0)
    b.PrependUint8Slot(0, status.availability, 0)
    return int(b.EndObject())


def _build_update_value(b: Any, update: UpdateRecord) -> tuple[int, int]:
    """``(union type byte, table offset)`` of one ops-log entry's payload."""
    type_byte = _KIND_INDEX.get(update.kind)
    if type_byte is None:
        raise _invalid(f"unknown ops-log entry kind {update.kind!r}")
    spec = UPDATE_KINDS[type_byte - 1][1]
    values: dict[str, Any] = {}
    for field, ftype in spec:
        if field not in update.fields:
            if ftype in ("str", "id"):
                raise _invalid(f"ops-log entry {update.kind} lacks its `{field}`")
            continue
        value = update.fields[field]
        if ftype == "str":
            values[field] = create_string(b, value)
        elif ftype == "status":
            if value is not None:
                values[field] = _build_status(b, value)
        else:
            values[field] = value
    b.StartObject(len(spec))
    for slot, (field, ftype) in enumerate(spec):
        if field not in values:
            continue
        value = values[field]
        if ftype in ("str", "status"):
            b.PrependUOffsetTRelativeSlot(slot, value, 0)
        elif ftype == "id":
            add_struct_slot(b, slot, check_id(value, 12, f"{update.kind}.{field}"))
        elif ftype == "u16":
            b.PrependUint16Slot(slot, int(value), 0)
        elif ftype == "u8":
            b.PrependUint8Slot(slot, int(value), 0)
        else:
            b.PrependBoolSlot(slot, bool(value), False)
    return type_byte, int(b.EndObject())


def _build_update(b: Any, update: UpdateRecord) -> int:
    type_byte, value = _build_update_value(b, update)
    backup = create_string(b, update.backup_path) if update.backup_path is not None else 0
    b.StartObject(4)
    b.PrependUint64Slot(2, update.updated_at, 0)
    b.PrependUOffsetTRelativeSlot(1, value, 0)
    if backup:
        b.PrependUOffsetTRelativeSlot(3, backup, 0)
    b.PrependUint8Slot(0, type_byte, 0)
    return int(b.EndObject())


def _build_refs(b: Any, refs: list[RepoRef], index: dict[bytes, int], what: str) -> int:
    ordered = sorted(refs, key=lambda r: _utf8(r.name))
    for a, c in itertools.pairwise(ordered):
        if a.name == c.name:
            raise _invalid(f"two {what} are named {a.name!r}")
    tables = []
    for ref in ordered:
        position = index.get(bytes(ref.snapshot_id))
        if position is None:
            raise _invalid(
                f"{what} entry {ref.name!r} points at a snapshot missing from the snapshot list"
            )
        name = create_string(b, ref.name)
        b.StartObject(2)
        b.PrependUOffsetTRelativeSlot(0, name, 0)
        b.PrependUint32Slot(1, position, 0)
        tables.append(b.EndObject())
    return create_offset_vector(b, tables)


def _parent_index(info: SnapshotInfoRecord, index: dict[bytes, int]) -> int:
    if info.parent_id is None:
        return -1
    found = index.get(bytes(info.parent_id))
    if found is None:
        raise _invalid("a snapshot's parent is missing from the snapshot list")
    return found


def _build_snapshot_info(b: Any, info: SnapshotInfoRecord, parent: int) -> int:
    """One ``SnapshotInfo`` table; its ``parent_offset`` is always written (blocks patch it)."""
    message = create_string(b, info.message)
    metadata = build_metadata_items(b, info.metadata, _SPEC)
    pruned = 0
    if info.pruned_ancestor_tx_logs:
        ids = [check_id(x, 12, "snapshot id") for x in info.pruned_ancestor_tx_logs]
        pruned = create_raw_vector(b, b"".join(ids), 12, len(ids), 1)
    b.StartObject(6)
    b.PrependUint64Slot(2, info.flushed_at, 0)
    add_struct_slot(b, 0, bytes(info.id))
    b.PrependInt32(parent)
    b.Slot(1)
    b.PrependUOffsetTRelativeSlot(3, message, 0)
    b.PrependUOffsetTRelativeSlot(4, metadata, 0)
    if pruned:
        b.PrependUOffsetTRelativeSlot(5, pruned, 0)
    return int(b.EndObject())


def _flags_vector(b: Any, flags: list[int]) -> int:
    values = sorted(set(flags))
    raw = np.array(values, dtype="<u2").tobytes()
    return create_raw_vector(b, raw, 2, len(values), 2)


_MAX_BLOCKS: Final = 1 << 16
"""Encoded snapshot-info and ops-log tables kept for reuse by the next encodings."""
_blocks: OrderedDict[tuple[object, ...], tuple[object, bytes, int, int]] = OrderedDict()
_blocks_lock = threading.Lock()


def _block(
    key: tuple[object, ...], record: object, build: Callable[[Any], int]
) -> tuple[bytes, int, int]:
    """A position-independent block holding one table built by ``build`` and its children.

    Returns ``(block, table position, position of the i32 field in slot 1 or -1)``. Every
    commit rewrites the whole ``repo`` object, whose snapshot list and ops log only grow: the
    tables of records seen before are reused instead of being rebuilt field by field.
    """
    with _blocks_lock:
        hit = _blocks.get(key)
        if hit is not None and hit[0] == record:
            _blocks.move_to_end(key)
            return hit[1], hit[2], hit[3]
    b = new_builder(256)
    table = build(b)
    b.Prep(8, 0)  # the block's size, hence its start, keeps the builder's 8-byte alignment
    data = bytes(b.Bytes[b.Head() :])
    at = len(data) - table
    vtable = at - struct.unpack_from("<i", data, at)[0]
    vsize = struct.unpack_from("<H", data, vtable)[0]
    field = struct.unpack_from("<H", data, vtable + 6)[0] if vsize > 6 else 0
    entry = (record, data, at, at + field if field else -1)
    with _blocks_lock:
        _blocks[key] = entry
        while len(_blocks) > _MAX_BLOCKS:
            _blocks.popitem(last=False)
    return data, at, entry[3]


def _insert_snapshot_info(b: Any, info: SnapshotInfoRecord, index: dict[bytes, int]) -> int:
    parent = _parent_index(info, index)
    data, at, parent_at = _block(
        ("snapshot", info.id), info, lambda sb: _build_snapshot_info(sb, info, parent)
    )
    assert parent_at > 0, "the parent index is always written"
    block = bytearray(data)
    struct.pack_into("<i", block, parent_at, parent)
    return int(insert_block(b, block)) - at


def _insert_update(b: Any, update: UpdateRecord) -> int:
    key = ("update", update.kind, update.updated_at, update.backup_path)
    data, at, _ = _block(key, update, lambda sb: _build_update(sb, update))
    return int(insert_block(b, data)) - at


def encode_repo_info(r: RepoInfo) -> bytes:
    """The complete bytes of the ``repo`` object for ``r`` (always spec 2).

    Snapshots are written sorted by id, branches and tags by name, deleted tags and feature
    flags sorted and de-duplicated; refs and parents become indexes into the snapshot list. The ops log is written in the given order
    (newest first); config and extra bytes are written verbatim.

    Raises
    ------
    FormatError
        ``r.has_unknown_fields`` is set (kind ``UNKNOWN_FORMAT_FIELDS``): the record was read from
        an object with fields this library does not know, which rewriting would drop.
    InvalidInputError
        A ref or parent points at a snapshot not in ``r.snapshots``, duplicate names or
        snapshot ids, ids of the wrong size, an unknown ops-log kind or missing entry fields.
    """
    if r.has_unknown_fields:
        raise FormatError(
            "refusing to rewrite a `repo` object that has fields this version of "
            "icechunk-prefect does not know",
            ErrorKind.UNKNOWN_FORMAT_FIELDS,
        )
    snapshots = sorted(r.snapshots, key=lambda s: check_id(s.id, 12, "snapshot id"))
    index = {bytes(s.id): i for i, s in enumerate(snapshots)}
    if len(index) != len(snapshots):
        raise _invalid("two snapshots have the same id")
    b = new_builder(4096 + 256 * len(snapshots) + 128 * len(r.latest_updates))
    snapshots_vec = create_offset_vector(b, [_insert_snapshot_info(b, s, index) for s in snapshots])
    tags = _build_refs(b, r.tags, index, "tags")
    branches = _build_refs(b, r.branches, index, "branches")
    deleted = [create_string(b, name) for name in sorted(set(r.deleted_tags), key=_utf8)]
    deleted_vec = create_offset_vector(b, deleted)
    status = _build_status(b, r.status)
    metadata = build_metadata_items(b, r.metadata, _SPEC)
    updates = create_offset_vector(b, [_insert_update(b, u) for u in r.latest_updates])
    before = create_string(b, r.repo_before_updates) if r.repo_before_updates is not None else 0
    config = create_bytes(b, r.config) if r.config is not None else 0
    enabled = (
        _flags_vector(b, r.enabled_feature_flags) if r.enabled_feature_flags is not None else 0
    )
    disabled = (
        _flags_vector(b, r.disabled_feature_flags) if r.disabled_feature_flags is not None else 0
    )
    extra = create_bytes(b, r.extra) if r.extra is not None else 0
    b.StartObject(13)
    for slot, value in (
        (1, tags),
        (2, branches),
        (3, deleted_vec),
        (4, snapshots_vec),
        (5, status),
        (6, metadata),
        (7, updates),
        (8, before),
        (9, config),
        (10, enabled),
        (11, disabled),
        (12, extra),
    ):
        if value:
            b.PrependUOffsetTRelativeSlot(slot, value, 0)
    b.PrependUint8Slot(0, _SPEC, 0)
    root = b.EndObject()
    return encode_object(finish(b, root), FileType.REPO_INFO, _SPEC)


# ---------------------------------------------------------------------------------------------
# decoding


class _Reader:
    """Decoding state: the buffer and whether unknown fields were seen."""

    def __init__(self, buf: Buffer) -> None:
        self.buf = buf
        self.unknown = False

    def note(self, t: Table, table: str, known: int | None = None) -> Table:
        """Record whether ``t`` sets fields beyond the schema's; return it."""
        if t.unknown_fields(known if known is not None else _KNOWN_SLOTS[table]):
            self.unknown = True
        return t

    def status(self, t: Table) -> RepoStatus:
        self.note(t, "RepoStatus")
        return RepoStatus(
            availability=t.scalar(0, "u8"),
            set_at=t.scalar(1, "u64"),
            reason=t.string(2, "RepoStatus.limited_availability_reason"),
        )

    def update(self, t: Table) -> UpdateRecord:
        self.note(t, "Update")
        type_byte = t.scalar(0, "u8")
        value = t.table_req(1, "Update.update_type")
        updated_at = t.scalar(2, "u64")
        backup = t.string(3, "Update.backup_path")
        if not 1 <= type_byte <= len(UPDATE_KINDS):
            if type_byte == 0:
                raise self.buf.error("ops-log entry without a type")
            self.unknown = True
            return UpdateRecord(f"Unknown{type_byte}", {}, updated_at, backup)
        kind, spec = UPDATE_KINDS[type_byte - 1]
        self.note(value, kind, len(spec))
        fields: dict[str, Any] = {}
        for slot, (field, ftype) in enumerate(spec):
            label = f"{kind}Update.{field}"
            if ftype == "str":
                fields[field] = value.string_req(slot, label)
            elif ftype == "id":
                fields[field] = value.struct_req(slot, 12, label)
            elif ftype == "status":
                status = value.table(slot, label)
                fields[field] = self.status(status) if status is not None else None
            elif ftype == "bool":
                fields[field] = bool(value.scalar(slot, "u8"))
            else:
                fields[field] = value.scalar(slot, ftype)
        return UpdateRecord(kind, fields, updated_at, backup)

    def metadata(self, items: list[Table] | None) -> dict[str, Any]:
        for item in items or ():
            self.note(item, "MetadataItem")
        return read_metadata_items(items, _SPEC, self.buf.name)


def _snapshot_infos(reader: _Reader, root: Table) -> list[SnapshotInfoRecord]:
    buf = reader.buf
    tables = root.tables_req(4, "Repo.snapshots")
    ids = [t.struct_req(0, 12, "SnapshotInfo.id") for t in tables]
    out = []
    for t, snapshot_id in zip(tables, ids, strict=True):
        reader.note(t, "SnapshotInfo")
        parent = t.scalar(1, "i32")
        if parent < -1 or parent >= len(ids):
            raise buf.error(f"snapshot parent index {parent} is out of range")
        pruned = t.structs(5, 12, "SnapshotInfo.pruned_ancestor_tx_logs")
        out.append(
            SnapshotInfoRecord(
                id=snapshot_id,
                parent_id=ids[parent] if parent >= 0 else None,
                flushed_at=t.scalar(2, "u64"),
                message=t.string_req(3, "SnapshotInfo.message"),
                metadata=reader.metadata(t.tables(4, "SnapshotInfo.metadata")),
                pruned_ancestor_tx_logs=tuple(pruned) if pruned is not None else None,
            )
        )
    return out


def _refs(reader: _Reader, tables: list[Table], ids: list[bytes], what: str) -> list[RepoRef]:
    out = []
    for t in tables:
        reader.note(t, "Ref")
        name = t.string_req(0, f"{what}.name")
        position = t.scalar(1, "u32")
        if position >= len(ids):
            raise reader.buf.error(
                f"{what} `{name}` points at snapshot index {position} of {len(ids)}"
            )
        out.append(RepoRef(name, ids[position]))
    return out


def _flags(root: Table, slot: int, field: str) -> list[int] | None:
    return root.scalars(slot, "<u2", field)


def decode_repo_info(data: bytes, name: str) -> RepoInfo:
    """Decode the repo info object ``data`` stored at key ``name`` (spec byte must be 2).

    Raises
    ------
    FormatError
        The object is corrupt, truncated, not a repo info object or not spec 2; refs or parents
        point outside the snapshot list. The message names ``name``.
    """
    _, payload = decode_object(data, name, FileType.REPO_INFO, spec_versions=(_SPEC,))
    with decoding(name, "repo info"):
        buf = Buffer(payload, name, "repo info")
        root = buf.root()
        reader = _Reader(buf)
        reader.note(root, "Repo")
        snapshots = _snapshot_infos(reader, root)
        ids = [s.id for s in snapshots]
        info = RepoInfo(
            branches=_refs(reader, root.tables_req(2, "Repo.branches"), ids, "branch"),
            tags=_refs(reader, root.tables_req(1, "Repo.tags"), ids, "tag"),
            deleted_tags=root.strings(3, "Repo.deleted_tags", required=True) or [],
            snapshots=snapshots,
            status=reader.status(root.table_req(5, "Repo.status")),
            metadata=reader.metadata(root.tables(6, "Repo.metadata")),
            latest_updates=[reader.update(u) for u in root.tables_req(7, "Repo.latest_updates")],
            repo_before_updates=root.string(8, "Repo.repo_before_updates"),
            config=root.blob(9, "Repo.config"),
            enabled_feature_flags=_flags(root, 10, "Repo.enabled_feature_flags"),
            disabled_feature_flags=_flags(root, 11, "Repo.disabled_feature_flags"),
            spec_version=root.scalar(0, "u8"),
            extra=root.blob(12, "Repo.extra"),
        )
        info.has_unknown_fields = reader.unknown
        return info
