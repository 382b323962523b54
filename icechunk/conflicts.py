"""Conflict detection and resolution for rebasing a session onto a moved branch.

Rebase replays, oldest first, the transaction logs of the commits between the session's base
and the branch tip. For each one the session's change set is checked against what that commit
did; a :class:`ConflictSolver` then either resolves the conflicts (patching the change set) or
the rebase fails with :class:`~icechunk.errors.RebaseFailedError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

from icechunk.errors import ErrorKind, RebaseFailedError, SessionStateError
from icechunk.format.ids import encode_id

if TYPE_CHECKING:
    from icechunk.format.model import TransactionLog
    from icechunk.session import Session, _BaseTree

__all__ = [
    "BasicConflictSolver",
    "Conflict",
    "ConflictDetector",
    "ConflictSolver",
    "ConflictType",
    "VersionSelection",
]


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


@dataclass(frozen=True)
class Conflict:
    """One conflict between the session's changes and a commit on the branch."""

    conflict_type: ConflictType
    path: str
    conflicted_chunks: list[list[int]] | None = None

    def __repr__(self) -> str:
        return f"Conflict({self.conflict_type.name}, path={self.path})"


class ConflictSolver:
    """Base class of the conflict solvers. Only the built-in solvers exist."""

    def _resolve(self, session: Session, conflicts: list[Conflict], snapshot: bytes) -> None:
        raise NotImplementedError


class ConflictDetector(ConflictSolver):
    """Reports every conflict and resolves none."""

    def _resolve(self, session: Session, conflicts: list[Conflict], snapshot: bytes) -> None:
        if conflicts:
            raise RebaseFailedError(encode_id(snapshot), conflicts)


class BasicConflictSolver(ConflictSolver):
    """Resolves chunk double-updates by version selection, and deletes of updated nodes.

    Parameters
    ----------
    on_chunk_conflict
        ``UseOurs`` keeps the session's chunk, ``UseTheirs`` drops it, ``Fail`` fails.
    fail_on_delete_of_updated_array, fail_on_delete_of_updated_group
        Fail instead of deleting a node the branch modified.
    """

    def __init__(
        self,
        *,
        on_chunk_conflict: VersionSelection = VersionSelection.UseOurs,
        fail_on_delete_of_updated_array: bool = False,
        fail_on_delete_of_updated_group: bool = False,
    ) -> None:
        self.on_chunk_conflict = on_chunk_conflict
        self.fail_on_delete_of_updated_array = fail_on_delete_of_updated_array
        self.fail_on_delete_of_updated_group = fail_on_delete_of_updated_group

    def _resolve(self, session: Session, conflicts: list[Conflict], snapshot: bytes) -> None:
        unsolved: list[Conflict] = []
        drops: list[Conflict] = []
        for c in conflicts:
            t = c.conflict_type
            if t == ConflictType.ChunkDoubleUpdate:
                if self.on_chunk_conflict == VersionSelection.Fail:
                    unsolved.append(c)
                elif self.on_chunk_conflict == VersionSelection.UseTheirs:
                    drops.append(c)
            elif t == ConflictType.DeleteOfUpdatedArray:
                if self.fail_on_delete_of_updated_array:
                    unsolved.append(c)
            elif t == ConflictType.DeleteOfUpdatedGroup:
                if self.fail_on_delete_of_updated_group:
                    unsolved.append(c)
            else:
                unsolved.append(c)
        if unsolved:
            raise RebaseFailedError(encode_id(snapshot), unsolved)
        for c in drops:
            node = session._node(c.path)
            if node is None:
                continue
            writes = session._changes.chunks.get(node.node_id, {})
            for coords in c.conflicted_chunks or []:
                writes.pop(tuple(coords), None)


def detect_conflicts(session: Session, tx: TransactionLog, theirs: _BaseTree) -> list[Conflict]:
    """The conflicts between ``session``'s change set and one commit (``tx``, ``theirs``)."""
    cs = session._changes
    base = session._tree
    out: list[Conflict] = []
    their_updated = set(tx.updated_arrays) | set(tx.updated_groups)
    their_deleted_arrays = set(tx.deleted_arrays)
    their_deleted_groups = set(tx.deleted_groups)
    their_chunks = {k: set(v) for k, v in tx.updated_chunks.items()}

    if tx.moved_nodes:
        out.append(Conflict(ConflictType.MoveOperationCannotBeRebased, tx.moved_nodes[0].to_path))

    for path, change in sorted(cs.nodes.items()):
        if change.is_new:
            if path in theirs.by_path and path not in base.by_path:
                out.append(Conflict(ConflictType.NewNodeConflictsWithExistingNode, path))
            parent = path.rsplit("/", 1)[0] or "/"
            if path != "/" and parent not in cs.nodes:
                pnode = theirs.by_path.get(parent)
                if pnode is None and parent in base.by_path or (
                    pnode is not None and pnode.array is not None
                ):
                    out.append(Conflict(ConflictType.NewNodeInInvalidGroup, path))
        else:
            nid = change.node_id
            if nid in their_updated:
                out.append(Conflict(ConflictType.ZarrMetadataDoubleUpdate, path))
            if nid in their_deleted_arrays:
                out.append(Conflict(ConflictType.ZarrMetadataUpdateOfDeletedArray, path))
            if nid in their_deleted_groups:
                out.append(Conflict(ConflictType.ZarrMetadataUpdateOfDeletedGroup, path))

    id_to_path = {n.id: n.path for n in base.snapshot.nodes}
    id_to_path.update({c.node_id: p for p, c in cs.nodes.items()})
    for node_id, writes in sorted(cs.chunks.items()):
        if not writes:
            continue
        path = id_to_path.get(node_id, encode_id(node_id))
        if node_id in their_deleted_arrays:
            out.append(Conflict(ConflictType.ChunksUpdatedInDeletedArray, path))
            continue
        if node_id in their_updated:
            out.append(Conflict(ConflictType.ChunksUpdatedInUpdatedArray, path))
        both = their_chunks.get(node_id, set()) & set(writes)
        if both:
            out.append(
                Conflict(
                    ConflictType.ChunkDoubleUpdate, path, sorted(list(c) for c in both)
                )
            )

    for path, (node_id, is_array) in sorted(cs.deleted.items()):
        if node_id in their_updated or their_chunks.get(node_id):
            kind = (
                ConflictType.DeleteOfUpdatedArray if is_array else ConflictType.DeleteOfUpdatedGroup
            )
            out.append(Conflict(kind, path))
    return out


async def rebase_session(session: Session, solver: ConflictSolver) -> None:
    """Move ``session``'s base to its branch tip, replaying the commits in between."""
    repo = session._repo
    assert session._branch is not None
    tip = await repo._refs.branch_tip(session._branch)
    if tip == session._base_id:
        return
    chain: list[bytes] = []
    for rec in await repo._refs.ancestry(tip):
        if rec.id == session._base_id:
            break
        chain.append(rec.id)
    else:
        raise SessionStateError(
            f"cannot rebase: the session's base snapshot {session.snapshot_id} is no longer an "
            f"ancestor of branch `{session._branch}` (was the branch reset?)",
            ErrorKind.REBASE_FAILED,
        )
    for snap_id in reversed(chain):
        tx = await repo._load_transaction_log(snap_id)
        theirs = repo._tree_for(await repo._load_snapshot(snap_id))
        conflicts = detect_conflicts(session, tx, theirs)
        solver._resolve(session, conflicts, snap_id)
        session._tree = theirs
