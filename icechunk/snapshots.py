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
        """The real Icechunk's text form: one section per kind of change, empty if none.

        Chunk coordinates are listed per array, sorted, at most ten per array followed by
        ``... N more``.
        """
        out: list[str] = []

        def section(title: str, items: list[str]) -> None:
            if items:
                out.append(f"{title}:\n")
                out.extend(f"    {item}\n" for item in items)
                out.append("\n")

        section("Groups created", sorted(self.new_groups))
        section("Arrays created", sorted(self.new_arrays))
        section("Group definitions updated", sorted(self.updated_groups))
        section("Array definitions updated", sorted(self.updated_arrays))
        section("Groups deleted", sorted(self.deleted_groups))
        section("Arrays deleted", sorted(self.deleted_arrays))
        section("Nodes moved/renamed", [f"{a} -> {b}" for a, b in self.moved_nodes])
        chunked = [(p, c) for p, c in sorted(self.updated_chunks.items()) if c]
        if chunked:
            out.append("Chunks updated:\n")
            for path, coords in chunked:
                out.append(f"    {path}:\n")
                ordered = sorted(list(c) for c in coords)
                out.extend(f"        {c}\n" for c in ordered[:10])
                if len(ordered) > 10:
                    out.append(f"        ... {len(ordered) - 10} more\n")
        return "".join(out)

    __repr__ = __str__
