"""The read tree of one snapshot, and the node view a session reads through."""

from __future__ import annotations

from icechunk._core.change_set import NodeChange
from icechunk._core.zarr_metadata import NodeMetadata, parse_node_metadata
from icechunk.errors import InvalidInputError
from icechunk.format.model import NodeSnapshot, Snapshot

__all__ = ["Node", "ReadTree"]


class Node:
    """A live node as a session sees it: its base-snapshot entry and/or its staged change."""

    __slots__ = ("base", "change", "meta", "node_id", "path", "user_data")

    def __init__(
        self,
        path: str,
        node_id: bytes,
        user_data: bytes,
        meta: NodeMetadata,
        base: NodeSnapshot | None,
        change: NodeChange | None,
    ) -> None:
        self.path = path
        self.node_id = node_id
        self.user_data = user_data
        self.meta = meta
        self.base = base
        self.change = change


class ReadTree:
    """A snapshot's nodes by path, read-only (built once per snapshot and cached).

    A session reads through the tree of its base snapshot, overlaid by its change set;
    conflicts, diff and the commit writer compare trees.
    """

    __slots__ = ("by_path", "manifest_files", "meta", "snapshot")

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.by_path = {n.path: n for n in snapshot.nodes}
        self.manifest_files = {m.id: m for m in snapshot.manifest_files}
        self.meta: dict[str, NodeMetadata] = {}

    def node_meta(self, node: NodeSnapshot) -> NodeMetadata:
        meta = self.meta.get(node.path)
        if meta is None:
            if node.array is None:
                meta = NodeMetadata(is_array=False)
            else:
                try:
                    meta = parse_node_metadata(node.path, node.user_data)
                except InvalidInputError:
                    shape = tuple(d.array_length for d in node.array.shape)
                    meta = NodeMetadata(
                        True, shape, tuple(1 for _ in shape), node.array.dimension_names
                    )
            self.meta[node.path] = meta
        return meta
