"""Public value objects describing snapshots and the differences between them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Diff", "ManifestFileInfo", "SnapshotInfo"]


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """One commit (or detached snapshot) of the repository."""

    id: str
    parent_id: str | None
    written_at: datetime
    """Commit time, timezone-aware UTC."""
    message: str
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ManifestFileInfo:
    id: str
    size_bytes: int
    num_chunk_refs: int


@dataclass(slots=True)
class Diff:
    """The changes between two snapshots, or a session's uncommitted changes.

    Paths are absolute node paths (``/group/array``); chunk coordinates are lists of ints.
    """

    new_groups: set[str] = field(default_factory=set)
    new_arrays: set[str] = field(default_factory=set)
    deleted_groups: set[str] = field(default_factory=set)
    deleted_arrays: set[str] = field(default_factory=set)
    updated_groups: set[str] = field(default_factory=set)
    updated_arrays: set[str] = field(default_factory=set)
    updated_chunks: dict[str, list[list[int]]] = field(default_factory=dict)
    moved_nodes: list[tuple[str, str]] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (
            self.new_groups
            or self.new_arrays
            or self.deleted_groups
            or self.deleted_arrays
            or self.updated_groups
            or self.updated_arrays
            or self.updated_chunks
            or self.moved_nodes
        )

    def __str__(self) -> str:
        lines: list[str] = []

        def section(title: str, items: list[str]) -> None:
            if items:
                lines.append(f"{title}:")
                lines.extend(f"    {item}" for item in items)
                lines.append("")

        section("Groups created", sorted(self.new_groups))
        section("Arrays created", sorted(self.new_arrays))
        section("Groups updated", sorted(self.updated_groups))
        section("Arrays updated", sorted(self.updated_arrays))
        section("Groups deleted", sorted(self.deleted_groups))
        section("Arrays deleted", sorted(self.deleted_arrays))
        section("Nodes moved", [f"{a} -> {b}" for a, b in self.moved_nodes])
        chunks = [
            f"{path}: {len(coords)} chunks" for path, coords in sorted(self.updated_chunks.items())
        ]
        section("Chunks updated", chunks)
        return "\n".join(lines) if lines else "No changes"
