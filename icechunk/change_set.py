"""A session's staged edits: node creations, updates and deletions, and chunk writes.

The change set is relative to a base snapshot. Paths are absolute node paths (``/``, ``/a/b``);
chunk writes are keyed by the array's node id and chunk coordinates. A chunk payload of ``None``
records a deletion.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

from icechunk.errors import ErrorKind, SessionStateError

__all__ = [
    "ChangeSet",
    "ChunkOverlapWarning",
    "ChunkPayload",
    "InlinePayload",
    "NativePayload",
    "NodeChange",
    "VirtualPayload",
]


@dataclass(frozen=True, slots=True)
class NativePayload:
    """A chunk stored in ``chunks/<chunk_id>``, bytes ``[offset, offset + length)``."""

    chunk_id: bytes
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class InlinePayload:
    """A small chunk kept in the manifest itself."""

    data: bytes


@dataclass(frozen=True, slots=True)
class VirtualPayload:
    """A chunk inside an external object (``s3://``, ``file://``, ``http(s)://`` ...)."""

    location: str
    offset: int
    length: int
    checksum_etag: str | None = None
    checksum_last_modified: int = 0
    """Seconds since the epoch; 0 means no checksum."""


type ChunkPayload = NativePayload | InlinePayload | VirtualPayload


class ChunkOverlapWarning(UserWarning):
    """Two forks merged into one session wrote different bytes to the same chunk."""


@dataclass(slots=True)
class NodeChange:
    """A node created or whose ``zarr.json`` was rewritten in this session."""

    node_id: bytes
    path: str
    user_data: bytes
    is_array: bool
    is_new: bool
    """Created in this session (not present in the base snapshot under this id)."""


@dataclass(slots=True)
class ChangeSet:
    nodes: dict[str, NodeChange] = field(default_factory=dict)
    """Live new or updated nodes by path."""
    deleted: dict[str, tuple[bytes, bool]] = field(default_factory=dict)
    """Base-snapshot nodes deleted in this session: path -> (node id, is array)."""
    chunks: dict[bytes, dict[tuple[int, ...], ChunkPayload | None]] = field(default_factory=dict)
    """Chunk writes (payload) and deletions (``None``) per array node id."""

    def is_empty(self) -> bool:
        return not (self.nodes or self.deleted or any(self.chunks.values()))

    def copy(self) -> ChangeSet:
        return ChangeSet(
            nodes=dict(self.nodes),
            deleted=dict(self.deleted),
            chunks={k: dict(v) for k, v in self.chunks.items()},
        )

    def set_chunk(self, node_id: bytes, coords: tuple[int, ...], payload: ChunkPayload | None) -> None:
        self.chunks.setdefault(node_id, {})[coords] = payload

    def chunk_count(self) -> int:
        return sum(len(v) for v in self.chunks.values())

    def iter_chunks(self) -> Iterator[tuple[bytes, tuple[int, ...], ChunkPayload | None]]:
        for node_id, writes in self.chunks.items():
            for coords, payload in writes.items():
                yield node_id, coords, payload

    def merge(self, other: ChangeSet, *, on_overlap: str = "warn") -> None:
        """Fold ``other`` (a fork's own changes) into this change set; ``other`` wins.

        Raises
        ------
        SessionStateError
            Both created the same node with different metadata, both rewrote one node's
            metadata differently, or one deleted a node the other modified. Nothing is changed.
        """
        conflicts: list[str] = []
        for path, change in other.nodes.items():
            mine = self.nodes.get(path)
            if mine is not None and mine.user_data != change.user_data:
                if mine.is_new and change.is_new:
                    conflicts.append(f"both sessions created `{path}` with different metadata")
                elif not mine.is_new and not change.is_new:
                    conflicts.append(f"both sessions updated the metadata of `{path}` differently")
            if path in self.deleted and not change.is_new and mine is None:
                conflicts.append(f"`{path}` was deleted in one session and modified in another")
        for path in other.deleted:
            mine = self.nodes.get(path)
            if mine is not None and not mine.is_new:
                conflicts.append(f"`{path}` was deleted in one session and modified in another")
            elif path not in self.deleted and mine is None:
                node_id = other.deleted[path][0]
                if self.chunks.get(node_id):
                    conflicts.append(
                        f"`{path}` was deleted in one session and its chunks written in another"
                    )
        for path, (node_id, _) in self.deleted.items():
            if path not in other.deleted and other.chunks.get(node_id):
                conflicts.append(
                    f"`{path}` was deleted in one session and its chunks written in another"
                )
        if conflicts:
            raise SessionStateError(
                "failed to merge sessions: " + "; ".join(sorted(set(conflicts))),
                ErrorKind.MERGE_CONFLICT,
            )

        overlaps: list[str] = []
        for node_id, writes in other.chunks.items():
            mine_writes = self.chunks.get(node_id)
            if mine_writes and on_overlap != "ignore":
                for coords, payload in writes.items():
                    if coords in mine_writes and mine_writes[coords] != payload:
                        overlaps.append(f"{node_id.hex()}:{list(coords)}")
                        if len(overlaps) > 20:
                            break
        if overlaps:
            msg = (
                f"merged sessions wrote different data to the same chunks ({len(overlaps)}"
                f"{'+' if len(overlaps) > 20 else ''} found, e.g. {', '.join(overlaps[:5])}); "
                "the last merged session wins. Align your write regions with the zarr chunks, "
                "or pass on_overlap='ignore' if this is intended."
            )
            if on_overlap == "error":
                raise SessionStateError(msg, ErrorKind.MERGE_CONFLICT)
            warnings.warn(msg, ChunkOverlapWarning, stacklevel=4)

        for path, (node_id, is_array) in other.deleted.items():
            self.deleted.setdefault(path, (node_id, is_array))
            mine = self.nodes.get(path)
            if mine is not None and not mine.is_new:
                del self.nodes[path]
            self.chunks.pop(node_id, None)
        for path, change in other.nodes.items():
            mine = self.nodes.get(path)
            if mine is not None and mine.node_id != change.node_id:
                self.chunks.pop(mine.node_id, None)
            self.nodes[path] = change
        for node_id, writes in other.chunks.items():
            self.chunks.setdefault(node_id, {}).update(writes)
