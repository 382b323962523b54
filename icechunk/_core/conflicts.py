"""Conflict detection and resolution for rebasing a session onto a moved branch.

Rebase replays, oldest first, the transaction logs of the commits between the session's base
and the branch tip. For each one the session's change set is checked against what that commit
did; a :class:`ConflictSolver` then either resolves the conflicts (patching the change set) or
the rebase fails with :class:`~icechunk.errors.RebaseFailedError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from icechunk.conflict_types import Conflict, ConflictType, VersionSelection
from icechunk.errors import ErrorKind, RebaseFailedError, SessionStateError
from icechunk.format.ids import encode_id

if TYPE_CHECKING:
    from icechunk._core.change_set import ChangeSet
    from icechunk._core.objects import RepoObjects
    from icechunk._core.tree import ReadTree
    from icechunk.format.model import TransactionLog

__all__ = [
    "BasicConflictSolver",
    "Conflict",
    "ConflictDetector",
    "ConflictSolver",
    "ConflictType",
    "VersionSelection",
]


class ConflictSolver:
    """Base class of the conflict solvers. Only the built-in solvers exist."""

    def _resolve(
        self, changes: ChangeSet, base: ReadTree, conflicts: list[Conflict], snapshot: bytes
    ) -> None:
        """Resolve ``conflicts`` with the commit ``snapshot`` by editing ``changes``, or raise.

        ``base`` is the tree the change set is staged on (the commit's parent).

        Raises
        ------
        RebaseFailedError
            Some conflict cannot be resolved; ``changes`` is left untouched.
        """
        raise NotImplementedError


class ConflictDetector(ConflictSolver):
    """Reports every conflict and resolves none."""

    def _resolve(
        self, changes: ChangeSet, base: ReadTree, conflicts: list[Conflict], snapshot: bytes
    ) -> None:
        # docstring inherited
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

    def _resolve(
        self, changes: ChangeSet, base: ReadTree, conflicts: list[Conflict], snapshot: bytes
    ) -> None:
        # docstring inherited
        def unsolvable(c: Conflict) -> bool:
            t = c.conflict_type
            if t == ConflictType.ChunkDoubleUpdate:
                return self.on_chunk_conflict == VersionSelection.Fail
            if t == ConflictType.DeleteOfUpdatedArray:
                return self.fail_on_delete_of_updated_array
            if t == ConflictType.DeleteOfUpdatedGroup:
                return self.fail_on_delete_of_updated_group
            return True

        if any(unsolvable(c) for c in conflicts):
            # like icechunk: the error lists every conflict found, solvable or not, and the
            # change set is left untouched
            raise RebaseFailedError(encode_id(snapshot), conflicts)
        if self.on_chunk_conflict != VersionSelection.UseTheirs:
            return  # UseOurs: our chunk overrides theirs; deletes of updated nodes still delete
        for c in conflicts:
            if c.conflict_type != ConflictType.ChunkDoubleUpdate:
                continue
            node_id = changes.node_id_at(c.path, base.by_path)
            if node_id is None:
                continue
            writes = changes.chunks.get(node_id)
            if writes is None:
                continue
            for coords in c.conflicted_chunks or []:
                writes.pop(tuple(coords), None)
            if not writes:
                del changes.chunks[node_id]


def _ancestors(path: str) -> list[str]:
    """Proper ancestors of an absolute node path, nearest first, ending with ``/``."""
    out = []
    while path != "/":
        path = path.rsplit("/", 1)[0] or "/"
        out.append(path)
    return out


def _is_below(path: str, ancestor: str) -> bool:
    return path != ancestor and (ancestor == "/" or path.startswith(ancestor + "/"))


def detect_conflicts(
    cs: ChangeSet, base: ReadTree, tx: TransactionLog, theirs: ReadTree
) -> list[Conflict]:
    """The conflicts between the change set ``cs`` and one commit (``tx``, ``theirs``).

    ``theirs`` is the tree of that commit's snapshot; ``base``, the tree ``cs`` is staged on,
    is the commit's parent. Conflicts come grouped by type in the order of
    :class:`ConflictType` (like icechunk), and within a type sorted by path.
    """
    if tx.moved_nodes:
        return [Conflict(ConflictType.MoveOperationCannotBeRebased, "")]

    their_updated_arrays = set(tx.updated_arrays)
    their_updated_groups = set(tx.updated_groups)
    their_deleted_arrays = set(tx.deleted_arrays)
    their_deleted_groups = set(tx.deleted_groups)
    their_chunks = {k: set(v) for k, v in tx.updated_chunks.items() if v}
    ours = sorted(cs.nodes.items())
    new_paths = [p for p, c in ours if c.is_new]
    updated_arrays = [(p, c.node_id) for p, c in ours if not c.is_new and c.is_array]
    updated_groups = [(p, c.node_id) for p, c in ours if not c.is_new and not c.is_array]
    out: list[Conflict] = []

    def add(kind: ConflictType, path: str, chunks: list[list[int]] | None = None) -> None:
        out.append(Conflict(kind, path, chunks))

    for path in new_paths:
        # a node they created (or replaced) where we create one; replacing a node of the
        # common base ourselves (delete + create) is not a conflict here
        their_node = theirs.by_path.get(path)
        base_node = base.by_path.get(path)
        if their_node is not None and (base_node is None or base_node.id != their_node.id):
            add(ConflictType.NewNodeConflictsWithExistingNode, path)
    for path in new_paths:
        for parent in _ancestors(path):
            mine = cs.nodes.get(parent)
            if mine is not None and mine.is_new:
                break  # our own new group: checked on its own
            their_node = theirs.by_path.get(parent)
            if their_node is not None and their_node.array is not None:
                add(ConflictType.NewNodeInInvalidGroup, parent)
                break
            if their_node is None and parent in base.by_path:
                # they deleted the group we create a node in: it would be left without a parent
                add(ConflictType.NewNodeInInvalidGroup, parent)
                break

    for path, nid in updated_arrays:
        if nid in their_updated_arrays:
            add(ConflictType.ZarrMetadataDoubleUpdate, path)
    for path, nid in updated_groups:
        if nid in their_updated_groups:
            add(ConflictType.ZarrMetadataDoubleUpdate, path)
    for path, nid in updated_arrays:
        if nid in their_deleted_arrays:
            add(ConflictType.ZarrMetadataUpdateOfDeletedArray, path)
    for path, nid in updated_groups:
        if nid in their_deleted_groups:
            add(ConflictType.ZarrMetadataUpdateOfDeletedGroup, path)

    id_to_path = {n.id: n.path for n in base.snapshot.nodes}
    id_to_path.update({c.node_id: p for p, c in cs.nodes.items()})
    chunk_writes = sorted(
        (id_to_path.get(nid, encode_id(nid)), nid, writes)
        for nid, writes in cs.chunks.items()
        if writes
    )
    for path, nid, _ in chunk_writes:
        if nid in their_deleted_arrays:
            add(ConflictType.ChunksUpdatedInDeletedArray, path)
    for path, nid, _ in chunk_writes:
        if nid in their_updated_arrays:
            add(ConflictType.ChunksUpdatedInUpdatedArray, path)
    for path, nid, writes in chunk_writes:
        both = their_chunks.get(nid, set()).intersection(writes)
        if both:
            add(ConflictType.ChunkDoubleUpdate, path, sorted(list(c) for c in both))

    deleted = sorted(cs.deleted.items())
    for path, (_, is_array) in deleted:
        their_node = theirs.by_path.get(path)
        if (
            is_array
            and their_node is not None
            and (their_node.id in their_updated_arrays or their_node.id in their_chunks)
        ):
            add(ConflictType.DeleteOfUpdatedArray, path)
    for path, (_, is_array) in deleted:
        their_node = theirs.by_path.get(path)
        if is_array or their_node is None:
            continue
        if their_node.id in their_updated_groups or any(
            _is_below(p, path) and p not in cs.deleted and p not in cs.nodes for p in theirs.by_path
        ):
            # they changed the group, or created nodes in it that our delete would remove
            add(ConflictType.DeleteOfUpdatedGroup, path)
    return out


def _delete_adopted_descendants(cs: ChangeSet, theirs: ReadTree) -> None:
    """Extend our group deletions to nodes the rebased-onto commit created inside them."""
    groups = [p for p, (_, is_array) in cs.deleted.items() if not is_array]
    if not groups:
        return
    for path, node in theirs.by_path.items():
        if path in cs.deleted or path in cs.nodes:
            continue
        if any(_is_below(path, g) for g in groups):
            cs.deleted[path] = (node.id, node.array is not None)
            cs.chunks.pop(node.id, None)


async def rebase_steps(
    objects: RepoObjects,
    branch: str,
    base: ReadTree,
    changes: ChangeSet,
    solver: ConflictSolver,
) -> AsyncIterator[ReadTree]:
    """Replay the commits between ``base`` and the tip of ``branch`` onto ``changes``.

    The commits are replayed oldest first; after each one the solver has edited ``changes``
    and the tree of that commit is yielded: the caller (:meth:`Session.rebase_async`) makes it
    its new base. If the solver gives up on a commit, :class:`~icechunk.errors.RebaseFailedError`
    is raised and the caller stays on the last tree yielded (its change set untouched by the
    failed step).

    Raises
    ------
    SessionStateError
        ``base`` is no longer an ancestor of the branch tip (the branch was reset).
    RebaseFailedError
        The solver could not resolve a conflict.
    """
    tip = await objects.refs.branch_tip(branch)
    if tip == base.snapshot.id:
        return
    chain = await objects.refs.path_between(base.snapshot.id, tip)
    if chain is None:
        raise SessionStateError(
            f"cannot rebase: the session's base snapshot {encode_id(base.snapshot.id)} is no "
            f"longer an ancestor of branch `{branch}` (was the branch reset?)",
            ErrorKind.REBASE_FAILED,
        )
    for snap_id in reversed(chain):
        tx = await objects.history_transaction_log(snap_id)
        theirs = objects.tree_for(await objects.load_snapshot(snap_id))
        conflicts = detect_conflicts(changes, base, tx, theirs)
        solver._resolve(changes, base, conflicts, snap_id)
        _delete_adopted_descendants(changes, theirs)
        base = theirs
        yield theirs
