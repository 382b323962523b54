"""The values that describe a rebase conflict (a leaf module: ``errors`` imports it).

:class:`Conflict` is what :class:`~icechunk.errors.RebaseFailedError` carries;
:class:`VersionSelection` configures :class:`~icechunk.conflicts.BasicConflictSolver`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = ["Conflict", "ConflictType", "VersionSelection"]


class VersionSelection(IntEnum):
    Fail = 0
    UseOurs = 1
    UseTheirs = 2


class ConflictType(IntEnum):
    NewNodeConflictsWithExistingNode = 1
    NewNodeInInvalidGroup = 2
    ZarrMetadataDoubleUpdate = 3
    ZarrMetadataUpdateOfDeletedArray = 4
    ZarrMetadataUpdateOfDeletedGroup = 5
    ChunkDoubleUpdate = 6
    ChunksUpdatedInDeletedArray = 7
    ChunksUpdatedInUpdatedArray = 8
    DeleteOfUpdatedArray = 9
    DeleteOfUpdatedGroup = 10
    MoveOperationCannotBeRebased = 11

    def __str__(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    ConflictType.NewNodeConflictsWithExistingNode: "New node conflicts with existing node",
    ConflictType.NewNodeInInvalidGroup: "New node in invalid group",
    ConflictType.ZarrMetadataDoubleUpdate: "Zarr metadata double update",
    ConflictType.ZarrMetadataUpdateOfDeletedArray: "Zarr metadata update of deleted array",
    ConflictType.ZarrMetadataUpdateOfDeletedGroup: "Zarr metadata update of deleted group",
    ConflictType.ChunkDoubleUpdate: "Chunk double update",
    ConflictType.ChunksUpdatedInDeletedArray: "Chunks updated in deleted array",
    ConflictType.ChunksUpdatedInUpdatedArray: "Chunks updated in updated array",
    ConflictType.DeleteOfUpdatedArray: "Delete of updated array",
    ConflictType.DeleteOfUpdatedGroup: "Delete of updated group",
    ConflictType.MoveOperationCannotBeRebased: "Move operation cannot be rebased",
}


@dataclass(frozen=True, eq=True)
class Conflict:
    """One conflict between the session's changes and a commit on the branch.

    Attributes
    ----------
    conflict_type
        What kind of conflict.
    path
        The node concerned (empty for :attr:`ConflictType.MoveOperationCannotBeRebased`).
    conflicted_chunks
        For :attr:`ConflictType.ChunkDoubleUpdate`, the coordinates both sides wrote, sorted.
    """

    conflict_type: ConflictType
    path: str
    conflicted_chunks: list[list[int]] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "conflict_type", ConflictType(self.conflict_type))

    def __repr__(self) -> str:
        return f"Conflict({self.conflict_type.name}, path={self.path})"

    def __str__(self) -> str:
        return f"{self.path}: {self.conflict_type}"

    def __hash__(self) -> int:
        chunks = (
            None
            if self.conflicted_chunks is None
            else tuple(tuple(c) for c in self.conflicted_chunks)
        )
        return hash((self.conflict_type, self.path, chunks))
