"""The spec-2 repo info object."""

from __future__ import annotations

import dataclasses
from typing import Any

import flatbuffers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from icechunk.errors import ErrorKind, FormatError, InvalidInputError
from icechunk.format import decode_repo_info, encode_repo_info
from icechunk.format.flatbuf import Buffer
from icechunk.format.header import encode_object
from icechunk.format.metadata import encode_flexbuffer
from icechunk.format.model import (
    FileType,
    RepoInfo,
    RepoRef,
    RepoStatus,
    SnapshotInfoRecord,
    UpdateRecord,
)
from icechunk.format.repo_info import UPDATE_KINDS
from tests.format.helpers import metadata_dicts, payload

NAME = "repo"
ids12 = st.binary(min_size=12, max_size=12)
names = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=6)


@st.composite
def update_records(draw: st.DrawFn, snapshot_ids: list[bytes]) -> UpdateRecord:
    kind, spec = draw(st.sampled_from(UPDATE_KINDS))
    fields: dict[str, Any] = {}
    for field, ftype in spec:
        if ftype == "str":
            fields[field] = draw(names)
        elif ftype == "id":
            fields[field] = draw(st.sampled_from(snapshot_ids) | ids12)
        elif ftype == "u8":
            fields[field] = draw(st.integers(0, 255))
        elif ftype == "u16":
            fields[field] = draw(st.integers(0, 65535))
        elif ftype == "bool":
            fields[field] = draw(st.booleans())
        else:
            fields[field] = draw(
                st.none()
                | st.builds(
                    RepoStatus, st.integers(0, 2), st.integers(0, 2**64 - 1), st.none() | names
                )
            )
    return UpdateRecord(
        kind,
        fields,
        draw(st.integers(0, 2**64 - 1)),
        draw(st.none() | st.just("overwritten/repo.1.X")),
    )


@st.composite
def repo_infos(draw: st.DrawFn) -> RepoInfo:
    ids = draw(st.lists(ids12, min_size=1, max_size=6, unique=True))
    snapshots = []
    for i, sid in enumerate(ids):
        parent = None if i == 0 else draw(st.sampled_from(ids[:i]))
        snapshots.append(
            SnapshotInfoRecord(
                sid,
                parent,
                draw(st.integers(0, 2**64 - 1)),
                draw(st.text(st.characters(blacklist_categories=["Cs"]), max_size=10)),
                draw(metadata_dicts),
                draw(st.none() | st.lists(ids12, min_size=1, max_size=2).map(tuple)),
            )
        )
    refs = st.dictionaries(names, st.sampled_from(ids), max_size=4).map(
        lambda d: [RepoRef(k, v) for k, v in d.items()]
    )
    flags = st.none() | st.lists(st.integers(0, 65535), max_size=3, unique=True).map(sorted)
    return RepoInfo(
        branches=draw(refs),
        tags=draw(refs),
        deleted_tags=draw(st.lists(names, max_size=3, unique=True)),
        snapshots=snapshots,
        status=draw(
            st.builds(RepoStatus, st.integers(0, 2), st.integers(0, 2**64 - 1), st.none() | names)
        ),
        metadata=draw(metadata_dicts),
        latest_updates=draw(st.lists(update_records(ids), min_size=1, max_size=5)),
        repo_before_updates=draw(st.none() | st.just("overwritten/repo.2.Y")),
        config=draw(st.none() | st.binary(max_size=20)),
        enabled_feature_flags=draw(flags),
        disabled_feature_flags=draw(flags),
        extra=draw(st.none() | st.binary(max_size=5)),
    )


def normalized(r: RepoInfo) -> RepoInfo:
    def key(s: str) -> bytes:
        return s.encode()

    return dataclasses.replace(
        r,
        branches=sorted(r.branches, key=lambda x: key(x.name)),
        tags=sorted(r.tags, key=lambda x: key(x.name)),
        deleted_tags=sorted(r.deleted_tags, key=key),
        snapshots=sorted(r.snapshots, key=lambda s: s.id),
    )


@given(repo_infos())
def test_round_trip(r: RepoInfo) -> None:
    encoded = encode_repo_info(r)
    decoded = decode_repo_info(encoded, NAME)
    assert decoded == normalized(r)
    assert not decoded.has_unknown_fields
    assert encode_repo_info(decoded) == encoded


def simple_repo() -> RepoInfo:
    a, b, c = bytes([9] * 12), bytes([1] * 12), bytes([5] * 12)
    return RepoInfo(
        branches=[RepoRef("main", a), RepoRef("dev", c), RepoRef("Z", b)],
        tags=[RepoRef("v2", a), RepoRef("v1", c)],
        deleted_tags=["old", "ancient"],
        snapshots=[
            SnapshotInfoRecord(a, c, 3, "third", {}),
            SnapshotInfoRecord(
                b, None, 1, "Repository initialized", {"__icechunk": {"is_root": True}}
            ),
            SnapshotInfoRecord(c, b, 2, "second", {"author": "me"}),
        ],
        status=RepoStatus(0, 10, None),
        metadata={"team": "x"},
        latest_updates=[
            UpdateRecord("NewCommit", {"branch": "main", "new_snap_id": a}, 30),
            UpdateRecord("RepoInitialized", {}, 10, "overwritten/repo.1.A"),
        ],
        config=b"\x01\x02",
        enabled_feature_flags=[4, 3],
    )


def test_indexes_and_sort_orders_in_bytes() -> None:
    r = simple_repo()
    root = Buffer(payload(encode_repo_info(r)), NAME, "repo info").root()
    assert root.scalar(0, "u8") == 2
    snaps = root.tables_req(4, "snapshots")
    assert [t.struct_req(0, 12, "id") for t in snaps] == sorted(s.id for s in r.snapshots)
    assert [t.scalar(1, "i32") for t in snaps] == [-1, 0, 1]  # parent indexes
    branches = root.tables_req(2, "branches")
    assert [(t.string_req(0, "n"), t.scalar(1, "u32")) for t in branches] == [
        ("Z", 0),
        ("dev", 1),
        ("main", 2),
    ]
    assert root.strings(3, "deleted") == ["ancient", "old"]
    assert root.scalars(10, "<u2", "flags") == [3, 4]
    assert root.blob(9, "config") == b"\x01\x02"
    assert decode_repo_info(encode_repo_info(r), NAME) == normalized(
        dataclasses.replace(r, enabled_feature_flags=[3, 4])
    )


def test_header() -> None:
    data = encode_repo_info(simple_repo())
    assert data[36:39] == bytes([2, 6, 1])


@pytest.mark.parametrize(
    "change",
    [
        {"branches": [RepoRef("main", bytes(12))]},  # unknown snapshot
        {"branches": [RepoRef("a", bytes([9] * 12)), RepoRef("a", bytes([9] * 12))]},
        {"latest_updates": [UpdateRecord("Bogus", {}, 1)]},
        {"latest_updates": [UpdateRecord("TagCreated", {}, 1)]},
        {"latest_updates": [UpdateRecord("NewDetachedSnapshot", {"new_snap_id": b"x"}, 1)]},
        {"metadata": {"k": object()}},
    ],
)
def test_invalid_records(change: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        encode_repo_info(dataclasses.replace(simple_repo(), **change))


def test_parent_must_be_listed() -> None:
    r = simple_repo()
    r.snapshots[0] = dataclasses.replace(r.snapshots[0], parent_id=bytes(12))
    with pytest.raises(InvalidInputError):
        encode_repo_info(r)


def test_refuses_to_rewrite_unknown_fields() -> None:
    r = dataclasses.replace(simple_repo(), has_unknown_fields=True)
    with pytest.raises(FormatError) as e:
        encode_repo_info(r)
    assert e.value.kind == ErrorKind.UNKNOWN_FORMAT_FIELDS


# ---------------------------------------------------------------------------------------------
# objects with fields from a future schema


def build_repo(extra_slot: str | None = None, update_type: int = 1) -> bytes:
    """A minimal valid Repo, optionally with one field the schema does not know."""
    b = flatbuffers.Builder(256)

    def struct12(slot: int, raw: bytes) -> None:
        b.Prep(1, 12)
        b.head -= 12
        b.Bytes[b.head : b.head + 12] = raw
        b.PrependStructSlot(slot, b.Offset(), 0)

    def extra(table: str, known: int) -> None:
        if extra_slot == table:
            b.PrependUint8Slot(known, 7, 0)

    name = b.CreateString("main")
    b.StartObject(3)
    b.PrependUOffsetTRelativeSlot(0, name, 0)
    extra("Ref", 2)
    ref = b.EndObject()
    message = b.CreateString("init")
    b.StartObject(7)
    struct12(0, bytes(12))
    b.PrependInt32Slot(1, -1, 0)
    b.PrependUOffsetTRelativeSlot(3, message, 0)
    extra("SnapshotInfo", 6)
    snap = b.EndObject()
    b.StartObject(4)
    extra("RepoStatus", 3)
    status = b.EndObject()
    tag_name = b.CreateString("t")
    b.StartObject(2)
    if update_type == 5:
        b.PrependUOffsetTRelativeSlot(0, tag_name, 0)
    extra("TagCreated", 1)
    value = b.EndObject()
    b.StartObject(5)
    b.PrependUint8Slot(0, update_type, 0)
    b.PrependUOffsetTRelativeSlot(1, value, 0)
    b.PrependUint64Slot(2, 5, 0)
    extra("Update", 4)
    update = b.EndObject()
    meta_name = b.CreateString("k")
    meta_value = b.CreateByteVector(encode_flexbuffer(1))
    b.StartObject(3)
    b.PrependUOffsetTRelativeSlot(0, meta_name, 0)
    b.PrependUOffsetTRelativeSlot(1, meta_value, 0)
    extra("MetadataItem", 2)
    item = b.EndObject()

    def vec(items: list[int]) -> int:
        b.StartVector(4, len(items), 4)
        for x in reversed(items):
            b.PrependUOffsetTRelative(x)
        return int(b.EndVector())

    tags, branches, deleted = vec([]), vec([ref]), vec([])
    snaps, updates, metadata = vec([snap]), vec([update]), vec([item])
    b.StartObject(14)
    b.PrependUint8Slot(0, 2, 0)
    for slot, off in (
        (1, tags),
        (2, branches),
        (3, deleted),
        (4, snaps),
        (5, status),
        (6, metadata),
        (7, updates),
    ):
        b.PrependUOffsetTRelativeSlot(slot, off, 0)
    extra("Repo", 13)
    b.Finish(b.EndObject(), file_identifier=b"Ichk")
    return encode_object(bytes(b.Output()), FileType.REPO_INFO, 2)


def test_known_layout_decodes() -> None:
    r = decode_repo_info(build_repo(), NAME)
    assert not r.has_unknown_fields
    assert r.branches == [RepoRef("main", bytes(12))]
    assert r.metadata == {"k": 1}
    assert r.latest_updates == [UpdateRecord("RepoInitialized", {}, 5, None)]


@pytest.mark.parametrize(
    "where", ["Repo", "Ref", "SnapshotInfo", "RepoStatus", "Update", "MetadataItem", "TagCreated"]
)
def test_detects_unknown_fields(where: str) -> None:
    r = decode_repo_info(build_repo(extra_slot=where, update_type=5), NAME)
    assert r.has_unknown_fields
    with pytest.raises(FormatError) as e:
        encode_repo_info(r)
    assert e.value.kind == ErrorKind.UNKNOWN_FORMAT_FIELDS


def test_detects_unknown_update_types() -> None:
    r = decode_repo_info(build_repo(update_type=17), NAME)
    assert r.has_unknown_fields
    assert r.latest_updates[0].kind == "Unknown17"


def test_missing_update_type_is_corrupt() -> None:
    with pytest.raises(FormatError, match="without a type"):
        decode_repo_info(build_repo(update_type=0), NAME)


def test_spec_1_header_rejected() -> None:
    data = bytearray(encode_repo_info(simple_repo()))
    data[36] = 1
    with pytest.raises(FormatError, match="unsupported spec version 1"):
        decode_repo_info(bytes(data), NAME)
