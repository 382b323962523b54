"""Moving and renaming nodes (``Session.move`` in a rearrange session), as the real Icechunk 2.x.

A rearrange session records the moves the user asks for, in order, and shows the base snapshot's
nodes at their moved paths: node ids, metadata and chunk references travel with the node, no
data is copied. Moving a group moves its whole subtree. The commit writes a snapshot with the new
paths and a transaction log whose only content is ``moved_nodes``: one entry per node whose path
changed (the group and each descendant), from its path in the base snapshot to its final path
(chained moves collapse; a node moved back to where it was is not listed).

Rebasing a rearrange session onto commits without moves replays its moves on the new tip; any
commit with moves between the base and the tip cannot be rebased over
(``MoveOperationCannotBeRebased``), whatever the session and solver.
"""

from __future__ import annotations

from dataclasses import replace

from icechunk.errors import (
    AlreadyExistsError,
    ErrorKind,
    InvalidInputError,
    NodeNotFoundError,
    SessionStateError,
)
from icechunk.format.model import MoveOperation, NodeSnapshot

__all__ = ["apply_move", "net_moves", "normalize_move_path"]

_PREFIX = "session error: "


def normalize_move_path(path: object) -> str:
    """An absolute node path (``/a/b``); a trailing ``/`` is dropped.

    Raises
    ------
    InvalidInputError
        The path does not start with ``/`` (``invalid-path``), or has an empty segment.
    """
    if not isinstance(path, str):
        raise TypeError(f"'{type(path).__name__}' object is not an instance of 'str'")
    if not path.startswith("/"):
        raise InvalidInputError(
            "could not create path from prefix: path must start with a `/` character",
            ErrorKind.INVALID_PATH,
        )
    trimmed = path.rstrip("/") or "/"
    if "//" in trimmed:
        raise InvalidInputError(
            f"could not create path from prefix: `{path}` has an empty segment",
            ErrorKind.INVALID_PATH,
        )
    return trimmed


def _parent(path: str) -> str:
    head = path.rsplit("/", 1)[0]
    return head or "/"


def _under(path: str, ancestor: str) -> bool:
    return path == ancestor or (path.startswith(ancestor + "/") if ancestor != "/" else path != "/")


def apply_move(
    by_path: dict[str, NodeSnapshot], from_path: str, to_path: str
) -> dict[str, NodeSnapshot]:
    """The tree ``by_path`` (path -> node) after moving ``from_path`` (and below) to ``to_path``.

    Raises
    ------
    SessionStateError
        ``to_path`` is ``from_path`` or below it (``move-into-self-or-descendant``); its parent
        does not exist (``move-destination-parent-missing``) or is an array
        (``move-destination-parent-not-group``).
    AlreadyExistsError
        A node exists at ``to_path`` (``move-wont-overwrite``).
    NodeNotFoundError
        There is no node at ``from_path``.
    """
    src = normalize_move_path(from_path)
    dst = normalize_move_path(to_path)
    if _under(dst, src) or src == "/":
        raise SessionStateError(
            f"{_PREFIX}cannot move `{src}` into itself or its own descendant `{dst}`.",
            ErrorKind.MOVE_INTO_SELF_OR_DESCENDANT,
        )
    if dst in by_path:
        raise AlreadyExistsError(
            f"{_PREFIX}move cannot overwrite existing node at `{dst}`",
            ErrorKind.MOVE_WONT_OVERWRITE,
        )
    if src not in by_path:
        raise NodeNotFoundError(
            f"{_PREFIX}node not found at `{src}`: existing node not found",
            ErrorKind.NODE_NOT_FOUND,
        )
    parent = _parent(dst)
    parent_node = by_path.get(parent)
    if parent_node is None and parent != "/":
        raise SessionStateError(
            f"{_PREFIX}cannot move to `{dst}`: the destination's parent group `{parent}` does "
            "not exist. Icechunk's `move` never creates intermediate groups — create "
            f"`{parent}` in a writable_session and commit first, then retry the move in a "
            "rearrange_session.",
            ErrorKind.MOVE_DESTINATION_PARENT_MISSING,
        )
    if parent_node is not None and parent_node.array is not None:
        raise SessionStateError(
            f"{_PREFIX}cannot move to `{dst}`: the destination's parent `{parent}` is an array, "
            "not a group. Move destinations must land under groups; arrays cannot have children.",
            ErrorKind.MOVE_DESTINATION_PARENT_NOT_GROUP,
        )
    out: dict[str, NodeSnapshot] = {}
    for path, node in by_path.items():
        if _under(path, src):
            new_path = dst + path[len(src) :]
            out[new_path] = replace(node, path=new_path)
        else:
            out[path] = node
    return out


def net_moves(
    base: dict[str, NodeSnapshot], current: dict[str, NodeSnapshot]
) -> list[MoveOperation]:
    """One move per node whose path differs between ``base`` and ``current``, sorted by the
    destination path (the order the real Icechunk reports them)."""
    before = {node.id: path for path, node in base.items()}
    out = []
    for path, node in current.items():
        old = before.get(node.id)
        if old is not None and old != path:
            out.append(MoveOperation(old, path, node.id, node.array is not None))
    out.sort(key=lambda m: m.to_path.split("/"))
    return out
