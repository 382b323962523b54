"""Differences between two snapshots, aggregated from transaction logs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from icechunk.errors import ErrorKind, InvalidInputError
from icechunk.format.ids import encode_id
from icechunk.snapshots import Diff

if TYPE_CHECKING:
    from icechunk._core.objects import RepoObjects

__all__ = ["diff_snapshots"]


async def diff_snapshots(repo: RepoObjects, start: bytes, end: bytes) -> Diff:
    """The :class:`Diff` from ancestor ``start`` to ``end``.

    Raises
    ------
    InvalidInputError
        ``start`` is not an ancestor of (or equal to) ``end``.
    """
    chain = await repo.refs.path_between(start, end)
    if chain is None:
        raise InvalidInputError(
            f"`to` snapshot ancestry doesn't include `from`: snapshot {encode_id(start)} is not "
            f"an ancestor of {encode_id(end)}; diff needs `from` to be an ancestor of `to`",
            ErrorKind.BAD_SNAPSHOT_CHAIN_FOR_DIFF,
        )
    old_tree = repo.tree_for(await repo.load_snapshot(start))
    new_tree = repo.tree_for(await repo.load_snapshot(end))
    paths: dict[bytes, str] = {n.id: n.path for n in old_tree.snapshot.nodes}
    for snap_id in chain:
        for n in (await repo.load_snapshot(snap_id)).nodes:
            paths.setdefault(n.id, n.path)
    paths.update({n.id: n.path for n in new_tree.snapshot.nodes})
    diff = Diff()
    chunk_sets: dict[bytes, set[tuple[int, ...]]] = {}
    updated_arrays: set[bytes] = set()
    updated_groups: set[bytes] = set()
    new_arrays: set[bytes] = set()
    new_groups: set[bytes] = set()
    deleted_arrays: set[bytes] = set()
    deleted_groups: set[bytes] = set()
    for snap_id in reversed(chain):
        tx = await repo.history_transaction_log(snap_id)
        new_groups.update(tx.new_groups)
        new_arrays.update(tx.new_arrays)
        deleted_groups.update(tx.deleted_groups)
        deleted_arrays.update(tx.deleted_arrays)
        updated_arrays.update(tx.updated_arrays)
        updated_groups.update(tx.updated_groups)
        for node_id, coords in tx.updated_chunks.items():
            chunk_sets.setdefault(node_id, set()).update(coords)
    new_ids = new_groups | new_arrays
    deleted_ids = deleted_groups | deleted_arrays
    transient = new_ids & deleted_ids
    diff.new_groups = {paths[i] for i in new_groups - transient if i in paths}
    diff.new_arrays = {paths[i] for i in new_arrays - transient if i in paths}
    diff.deleted_groups = {paths[i] for i in deleted_groups - transient if i in paths}
    diff.deleted_arrays = {paths[i] for i in deleted_arrays - transient if i in paths}
    diff.updated_groups = {paths[i] for i in updated_groups - deleted_ids if i in paths}
    diff.updated_arrays = {paths[i] for i in updated_arrays - deleted_ids if i in paths}
    diff.updated_chunks = {
        paths[i]: sorted(list(c) for c in coords)
        for i, coords in chunk_sets.items()
        if i in paths and i not in deleted_ids and coords
    }
    return diff
