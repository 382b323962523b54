"""In-memory records of the on-disk objects: snapshots, manifests, transaction logs, repo info.

These are plain values; :mod:`icechunk.format.codec` and friends turn them into bytes and back.
Ids are raw bytes here (12 bytes for snapshots, manifests and chunks; 8 for nodes); use
:mod:`icechunk.format.ids` for their Crockford base32 text form.

Chunk references of a manifest are kept columnar (numpy arrays, plus Python lists only for the
rare variable-length fields) so that manifests with millions of references encode and decode
without a Python object per reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "ArrayData",
    "ArrayManifest",
    "ChunkKind",
    "ChunkRefs",
    "DimensionShape",
    "FileType",
    "Manifest",
    "ManifestFileInfo",
    "ManifestRef",
    "MoveOperation",
    "NodeSnapshot",
    "RepoInfo",
    "RepoRef",
    "RepoStatus",
    "Snapshot",
    "SnapshotInfoRecord",
    "TransactionLog",
    "UpdateRecord",
]

type JSON = Any
"""A JSON-compatible value: None, bool, int, float, str, list, dict[str, JSON]."""


class FileType(IntEnum):
    SNAPSHOT = 1
    MANIFEST = 2
    ATTRIBUTES = 3
    TRANSACTION_LOG = 4
    CHUNK = 5
    REPO_INFO = 6


# ---------------------------------------------------------------------------------------------
# snapshots


@dataclass(frozen=True, slots=True)
class ManifestRef:
    """Where an array's chunk refs for a box of chunk indices live."""

    object_id: bytes
    """12-byte manifest id."""
    extents: tuple[tuple[int, int], ...]
    """Per dimension ``(from inclusive, to exclusive)`` chunk-index range."""


@dataclass(frozen=True, slots=True)
class ManifestFileInfo:
    id: bytes
    size_bytes: int
    """Exact length of the manifest object, header included."""
    num_chunk_refs: int


@dataclass(frozen=True, slots=True)
class DimensionShape:
    array_length: int
    num_chunks: int
    """Number of chunks along this dimension (spec 2 stores it; spec 1 derives it)."""
    chunk_length: int | None = None
    """Spec 1 only: the nominal chunk length. Never trust it for reading (see format notes)."""


@dataclass(frozen=True, slots=True)
class ArrayData:
    shape: tuple[DimensionShape, ...]
    dimension_names: tuple[str | None, ...] | None
    manifests: tuple[ManifestRef, ...]


@dataclass(frozen=True, slots=True)
class NodeSnapshot:
    id: bytes
    """8-byte node id, stable for the node's lifetime."""
    path: str
    """Absolute path, ``/`` for the root group, no trailing slash."""
    user_data: bytes
    """The node's ``zarr.json`` bytes, exactly as written."""
    array: ArrayData | None
    """``None`` for a group."""

    @property
    def is_array(self) -> bool:
        return self.array is not None


@dataclass(slots=True)
class Snapshot:
    id: bytes
    parent_id: bytes | None
    """Spec 1 only; spec 2 keeps parentage in the repo info file."""
    nodes: list[NodeSnapshot]
    """Sorted by the UTF-8 bytes of ``path``."""
    flushed_at: int
    """Microseconds since the Unix epoch."""
    message: str
    metadata: dict[str, JSON]
    manifest_files: list[ManifestFileInfo]
    """Every manifest referenced by any node, sorted by id."""
    spec_version: int = 2


# ---------------------------------------------------------------------------------------------
# manifests


class ChunkKind(IntEnum):
    NATIVE = 1
    VIRTUAL = 2
    INLINE = 3


@dataclass(slots=True)
class ChunkRefs:
    """The chunk references of one array in one manifest, columnar, sorted by ``coords``.

    ``n`` references of an ``ndim``-dimensional array. Fields that do not apply to a reference's
    kind hold zeros / ``None``.
    """

    coords: npt.NDArray[np.uint32]
    """Shape ``(n, ndim)``; rows sorted lexicographically."""
    kind: npt.NDArray[np.uint8]
    """``ChunkKind`` per reference."""
    chunk_id: npt.NDArray[np.uint8]
    """Shape ``(n, 12)``: the chunk object id for native refs."""
    offset: npt.NDArray[np.uint64]
    length: npt.NDArray[np.uint64]
    inline: list[bytes | None] = field(default_factory=list)
    """Per reference: the chunk bytes of inline refs (empty list if there are none)."""
    location: list[str | None] = field(default_factory=list)
    """Per reference: the URL of virtual refs (empty list if there are none)."""
    checksum_etag: list[str | None] = field(default_factory=list)
    checksum_last_modified: npt.NDArray[np.uint32] | None = None
    """Seconds since the epoch; 0 means no checksum. ``None`` if there are no virtual refs."""

    def __len__(self) -> int:
        return int(self.coords.shape[0])


@dataclass(slots=True)
class ArrayManifest:
    node_id: bytes
    refs: ChunkRefs


@dataclass(slots=True)
class Manifest:
    id: bytes
    arrays: list[ArrayManifest]
    """Sorted by ``node_id``."""
    spec_version: int = 2

    @property
    def num_chunk_refs(self) -> int:
        return sum(len(a.refs) for a in self.arrays)


# ---------------------------------------------------------------------------------------------
# transaction logs


@dataclass(frozen=True, slots=True)
class MoveOperation:
    from_path: str
    to_path: str
    node_id: bytes
    is_array: bool


@dataclass(slots=True)
class TransactionLog:
    """What one commit changed. Lists of node ids are sorted; chunk lists are sorted."""

    id: bytes
    """The snapshot id this log belongs to."""
    new_groups: list[bytes] = field(default_factory=list)
    new_arrays: list[bytes] = field(default_factory=list)
    deleted_groups: list[bytes] = field(default_factory=list)
    deleted_arrays: list[bytes] = field(default_factory=list)
    updated_arrays: list[bytes] = field(default_factory=list)
    updated_groups: list[bytes] = field(default_factory=list)
    updated_chunks: dict[bytes, list[tuple[int, ...]]] = field(default_factory=dict)
    """Per array node id, every chunk coordinate added, overwritten or deleted."""
    moved_nodes: list[MoveOperation] = field(default_factory=list)
    spec_version: int = 2

    def absorb(self, older: TransactionLog) -> None:
        """Fold the changes of ``older`` (an earlier commit's log) into this one, in place:
        sorted unions of every id list and chunk list; ``older``'s moves come first."""
        for name in (
            "new_groups",
            "new_arrays",
            "deleted_groups",
            "deleted_arrays",
            "updated_arrays",
            "updated_groups",
        ):
            setattr(self, name, sorted(set(getattr(self, name)) | set(getattr(older, name))))
        chunks = dict(self.updated_chunks)
        for node_id, coords in older.updated_chunks.items():
            mine = chunks.get(node_id, [])
            chunks[node_id] = sorted({tuple(c) for c in mine} | {tuple(c) for c in coords})
        self.updated_chunks = dict(sorted(chunks.items()))
        self.moved_nodes = [*older.moved_nodes, *self.moved_nodes]

    @staticmethod
    def merged(logs: Sequence[TransactionLog]) -> TransactionLog:
        """One log with the changes of ``logs`` (oldest first), under the newest one's id."""
        newest = logs[-1]
        out = TransactionLog(
            newest.id,
            list(newest.new_groups),
            list(newest.new_arrays),
            list(newest.deleted_groups),
            list(newest.deleted_arrays),
            list(newest.updated_arrays),
            list(newest.updated_groups),
            dict(newest.updated_chunks),
            list(newest.moved_nodes),
            newest.spec_version,
        )
        for older in reversed(logs[:-1]):
            out.absorb(older)
        return out


# ---------------------------------------------------------------------------------------------
# spec-2 repo info


@dataclass(frozen=True, slots=True)
class RepoRef:
    name: str
    snapshot_id: bytes


@dataclass(frozen=True, slots=True)
class SnapshotInfoRecord:
    id: bytes
    parent_id: bytes | None
    flushed_at: int
    message: str
    metadata: dict[str, JSON]
    pruned_ancestor_tx_logs: tuple[bytes, ...] | None = None


@dataclass(frozen=True, slots=True)
class RepoStatus:
    availability: int = 0
    """0 online, 1 read-only, 2 offline."""
    set_at: int = 0
    """Microseconds since the epoch."""
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class UpdateRecord:
    """One entry of the ops log.

    ``kind`` is the union member's name (``"RepoInitialized"``, ``"NewCommit"``, ...), ``fields``
    its payload with snake_case keys (``branch``, ``new_snap_id`` as bytes, ``name``,
    ``previous_snap_id`` ...).
    """

    kind: str
    fields: dict[str, Any]
    updated_at: int
    """Microseconds since the epoch."""
    backup_path: str | None = None


@dataclass(slots=True)
class RepoInfo:
    """The decoded ``$ROOT/repo`` object. Refs point at snapshot ids (indexes are a wire detail)."""

    branches: list[RepoRef]
    tags: list[RepoRef]
    deleted_tags: list[str]
    snapshots: list[SnapshotInfoRecord]
    status: RepoStatus
    metadata: dict[str, JSON]
    latest_updates: list[UpdateRecord]
    """Newest first."""
    repo_before_updates: str | None = None
    config: bytes | None = None
    """FlexBuffers of the persisted repository config, carried over verbatim."""
    enabled_feature_flags: list[int] | None = None
    disabled_feature_flags: list[int] | None = None
    spec_version: int = 2
    extra: bytes | None = None
    """The reserved ``extra`` bytes of the ``Repo`` table, carried over verbatim."""
    has_unknown_fields: bool = False
    """Set by the decoder when the object uses fields (vtable slots or ops-log entry types) this
    library does not know; such an object must not be rewritten, since the unknown data would
    be lost."""
