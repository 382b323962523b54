"""Session methods for nodes: listing, metadata, node ids, moves, reindexing, node writes.

Part of :class:`icechunk.session.Session` (a base class of it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from icechunk._core.change_set import (
    NodeChange,
)
from icechunk._core.tree import Node
from icechunk._core.zarr_metadata import NodeMetadata, parse_node_metadata
from icechunk._session_base import (
    SessionMode,
    _as_index,
    _is_descendant,
    _moved_tree,
)
from icechunk._session_chunks import SessionChunkMethods
from icechunk._sync import sync
from icechunk.errors import (
    ErrorKind,
    InvalidInputError,
    NodeNotFoundError,
    ReadOnlyError,
    SessionStateError,
)
from icechunk.format.ids import encode_id, new_id8
from icechunk.rearrange import net_moves, normalize_move_path


class SessionNodeMethods(SessionChunkMethods):
    """The node methods of :class:`Session`."""

    async def get_metadata(self, path: str) -> bytes | None:
        """The raw ``zarr.json`` of the live node at ``path`` (absolute), or ``None``."""
        node = self._node(path)
        return None if node is None else node.user_data

    def node_metadata(self, path: str) -> NodeMetadata | None:
        """The parsed metadata of the live node at ``path`` (absolute), or ``None``."""
        node = self._node(path)
        return None if node is None else node.meta

    def get_node_id(self, path: str) -> str:
        """The id of the live node at ``path`` (absolute); stable, also across moves.

        Raises
        ------
        NodeNotFoundError
            No live node there.
        """
        node = self._node(path)
        if node is None:
            raise NodeNotFoundError(f"node not found at `{path}`", ErrorKind.NODE_NOT_FOUND)
        return encode_id(node.node_id)

    async def get_node_id_async(self, path: str) -> str:
        return self.get_node_id(path)

    # -- rearranging (icechunk.rearrange) -------------------------------------------------

    def move(self, from_path: str, to_path: str) -> None:
        """Move or rename the node at ``from_path`` (with its subtree) to ``to_path``.

        Metadata only: no data is copied, node ids are kept. Only in a rearrange session
        (:meth:`Repository.rearrange_session`); the destination's parent group must exist.

        Raises
        ------
        SessionStateError
            Not a rearrange session (``non-rearrange-session``); the destination is the node
            itself or below it, or its parent is missing or an array.
        AlreadyExistsError
            A node exists at ``to_path``.
        NodeNotFoundError
            No node at ``from_path``.
        InvalidInputError
            A path does not start with ``/``.
        """
        if self._mode != SessionMode.rearrange:
            if self._mode == SessionMode.readonly:
                raise ReadOnlyError(
                    "session error: Read only sessions cannot modify the repository",
                    ErrorKind.READ_ONLY_SESSION,
                )
            raise SessionStateError(
                "session error: To move nodes in the hierarchy you need to create a rearrange "
                "session. Commit or abandon this session and create a new rearrange session",
                ErrorKind.NON_REARRANGE_SESSION,
            )
        self._tree = _moved_tree(self._tree, from_path, to_path)
        self._moves.append((from_path, to_path))

    async def move_async(self, from_path: str, to_path: str) -> None:
        self.move(from_path, to_path)

    def _net_moves(self) -> list[Any]:
        if not self._moves:
            return []
        original = self._repo._objects.tree_for(self._tree.snapshot)
        return net_moves(original.by_path, self._tree.by_path)

    def _replay_moves(self) -> None:
        """After a rebase: show the new base with this session's moves applied again."""
        tree = self._repo._objects.tree_for(self._tree.snapshot)
        for src, dst in self._moves:
            tree = _moved_tree(tree, src, dst)
        self._tree = tree

    # -- moving chunks inside an array (icechunk.reindex) ---------------------------------

    def reindex_array(
        self,
        array_path: str,
        forward: Any,
        backward: Any = None,
    ) -> None:
        """Move every existing chunk of an array to ``forward(coords)`` (``None``: leave it).

        With ``backward`` (the inverse of ``forward``), every existing chunk position whose
        ``backward`` is ``None`` or points at no chunk is cleared. All or nothing: a
        destination outside the chunk grid raises and stages nothing.

        Raises
        ------
        InvalidInputError
            A destination is outside the grid (``invalid-chunk-index``), or the path is not
            an array.
        IcechunkError
            ``forward`` or ``backward`` raised or returned something that is not a list of
            non-negative integers (``unknown``, as the real Icechunk).
        """
        sync(self._reindex(array_path, forward, backward))

    def shift_array(self, array_path: str, chunk_offset: Iterable[int]) -> None:
        """Shift every chunk of an array by ``chunk_offset`` chunks per dimension.

        Chunks shifted out of the grid are dropped; vacated positions are cleared (resize the
        array first to keep everything).

        Raises
        ------
        InvalidInputError
            ``chunk_offset`` does not have one integer per dimension, or the path is not an
            array.
        """
        from icechunk.reindex import shift_functions

        offset = [_as_index(x) for x in chunk_offset]
        node = self._node_for_reindex(array_path)
        forward, backward = shift_functions(offset, node.meta.num_chunks, array_path)
        sync(self._reindex(array_path, forward, backward))

    def _node_for_reindex(self, array_path: str) -> Node:
        if self._mode == SessionMode.rearrange:
            raise SessionStateError(
                "session error: This session was created to rearrange the hierarchy, other "
                "write operations cannot be executed. Commit or abandon the sessions and create "
                "a regular writable session",
                ErrorKind.REARRANGE_SESSION_ONLY,
            )
        if self._mode == SessionMode.readonly or self._pickled_view:
            raise ReadOnlyError(
                "session error: Read only sessions cannot modify the repository",
                ErrorKind.READ_ONLY_SESSION,
            )
        path = normalize_move_path(array_path)
        node = self._node(path)
        if node is None:
            raise NodeNotFoundError(
                f"session error: node not found at `{path}`: existing node not found",
                ErrorKind.NODE_NOT_FOUND,
            )
        if not node.meta.is_array:
            raise InvalidInputError(
                f"session error: there is not an array at `{path}`: getting an array",
                ErrorKind.NOT_AN_ARRAY,
            )
        return node

    async def _reindex(self, array_path: str, forward: Any, backward: Any) -> None:
        from icechunk.reindex import plan_reindex

        node = self._node_for_reindex(array_path)
        existing = await self._chunks_of(node, node.meta.num_chunks)
        payloads = {c: await self._payload(node, c) for c in existing}
        plan = plan_reindex(node.path, node.meta.num_chunks, payloads, forward, backward)
        for coords, payload in plan.items():
            self._changes.set_chunk(node.node_id, coords, payload)

    # -- writes ---------------------------------------------------------------------------

    async def set_metadata(self, path: str, user_data: bytes) -> None:
        """Create or update the node at ``path`` from its ``zarr.json`` bytes."""
        self._require_writable()
        meta = parse_node_metadata(path, user_data)
        if meta.rectilinear and self._repo.spec_version < 2:
            raise InvalidInputError(
                f"invalid zarr metadata for `{path}`: Non-regular chunk grids are not supported "
                "in icechunk format version 1. Please use spec_version=2 or higher.",
                ErrorKind.INVALID_METADATA,
            )
        existing = self._node(path)
        cs = self._changes
        if existing is not None and existing.meta.is_array == meta.is_array:
            if existing.meta.is_array and existing.meta.ndim != meta.ndim:
                await self.delete_node(path)
                existing = None
        elif existing is not None:
            await self.delete_node(path)
            existing = None
        if existing is None:
            cs.nodes[path] = NodeChange(new_id8(), path, user_data, meta.is_array, is_new=True)
            return
        is_new = existing.change.is_new if existing.change is not None else False
        doomed: list[tuple[int, ...]] = []
        if meta.is_array and meta.num_chunks != existing.meta.num_chunks:
            bounds = meta.num_chunks
            doomed = [
                c
                for c in await self._chunks_of(existing, existing.meta.num_chunks)
                if any(x >= b for x, b in zip(c, bounds, strict=True))
            ]
        cs.nodes[path] = NodeChange(existing.node_id, path, user_data, meta.is_array, is_new)
        for coords in doomed:
            cs.set_chunk(existing.node_id, coords, None)

    async def delete_node(self, path: str) -> None:
        """Delete the node at ``path`` and everything below it."""
        self._require_writable()
        doomed = [p for p in self._all_paths() if p == path or _is_descendant(p, path)]
        cs = self._changes
        for p in doomed:
            node = self._node(p)
            if node is None:
                continue
            change = cs.nodes.pop(p, None)
            if change is not None:
                cs.chunks.pop(change.node_id, None)
            is_new = (
                change.is_new
                if change is not None
                else (node.change.is_new if node.change is not None else False)
            )
            if not is_new:
                cs.deleted[p] = (node.node_id, node.meta.is_array)
                cs.chunks.pop(node.node_id, None)
            elif self._fork_base is not None and p in self._fork_base.nodes:
                # created by the parent before the fork: record as a deletion too
                cs.deleted[p] = (node.node_id, node.meta.is_array)
