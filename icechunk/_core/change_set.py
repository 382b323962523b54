"""A session's staged edits: node creations, updates and deletions, and chunk writes.

The change set is relative to a base snapshot. Paths are absolute node paths (``/``, ``/a/b``);
chunk writes are keyed by the array's node id and chunk coordinates. A chunk payload of ``None``
records a deletion.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from icechunk._core.chunk_writes import ChunkWrites
from icechunk._core.payloads import ChunkPayload, InlinePayload, NativePayload, VirtualPayload
from icechunk._core.staged_changes import absorb_writes, single_keys
from icechunk.errors import ErrorKind, SessionStateError

if TYPE_CHECKING:
    from icechunk.format.model import ChunkRefs, NodeSnapshot

__all__ = [
    "ChangeSet",
    "ChunkOverlapWarning",
    "ChunkPayload",
    "InlinePayload",
    "NativePayload",
    "NodeChange",
    "VirtualPayload",
    "overlap_message",
]


class ChunkOverlapWarning(UserWarning):
    """Two forks merged into one session wrote different bytes to the same chunk."""


MAX_OVERLAPS = 20
"""Overlapping chunks named in one report."""


def overlap_message(overlaps: list[str]) -> str:
    """The report of chunks that merged sessions wrote differently (last merged wins)."""
    more = "+" if len(overlaps) > MAX_OVERLAPS else ""
    return (
        f"merged sessions wrote different data to the same chunks "
        f"({min(len(overlaps), MAX_OVERLAPS)}{more} found, e.g. {', '.join(overlaps[:5])}); "
        "the last merged session wins, so writes of the others to those chunks are lost. "
        "Align your write regions with the zarr chunks, or pass on_overlap='ignore' if this "
        "is intended."
    )


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
    chunks: dict[bytes, MutableMapping[tuple[int, ...], ChunkPayload | None]] = field(
        default_factory=dict
    )
    """Chunk writes (payload) and deletions (``None``) per array node id: a
    :class:`~icechunk._core.chunk_writes.ChunkWrites` (columnar; any mapping also works)."""

    def is_empty(self) -> bool:
        return not (self.nodes or self.deleted or any(self.chunks.values()))

    def copy(self) -> ChangeSet:
        return ChangeSet(
            nodes=dict(self.nodes),
            deleted=dict(self.deleted),
            chunks={k: _copy_writes(v) for k, v in self.chunks.items()},
        )

    def _writes(self, node_id: bytes) -> MutableMapping[tuple[int, ...], ChunkPayload | None]:
        writes = self.chunks.get(node_id)
        if writes is None:
            writes = self.chunks[node_id] = ChunkWrites()
        return writes

    def set_chunk(
        self, node_id: bytes, coords: tuple[int, ...], payload: ChunkPayload | None
    ) -> None:
        self._writes(node_id)[coords] = payload

    def set_native(
        self, node_id: bytes, coords: tuple[int, ...], chunk_id: bytes, length: int
    ) -> None:
        """Stage chunk ``coords`` as the whole object ``chunks/<chunk_id>`` (``length`` bytes)."""
        writes = self._writes(node_id)
        if type(writes) is ChunkWrites:
            writes.set_native(coords, chunk_id, length)
        else:
            writes[coords] = NativePayload(chunk_id, 0, length)

    def set_inline(self, node_id: bytes, coords: tuple[int, ...], data: bytes) -> None:
        """Stage chunk ``coords`` as the inline bytes ``data``."""
        writes = self._writes(node_id)
        if type(writes) is ChunkWrites:
            writes.set_inline(coords, data)
        else:
            writes[coords] = InlinePayload(data)

    def set_chunk_refs(self, node_id: bytes, refs: ChunkRefs) -> None:
        """Stage many chunk references of one array at once, kept in numpy columns.

        The bulk counterpart of :meth:`set_chunk` (for virtual references or pre-computed
        native ones): ``refs`` replace whatever this change set staged at their coordinates.
        Costs a few dozen bytes per reference and no Python object per reference, so millions
        of references stage and commit quickly. Bounds against the array's chunk grid are the
        caller's to check.

        Raises
        ------
        InvalidInputError
            Inconsistent columns, two references with the same coordinates, an unknown chunk
            kind, or inline/virtual references without their bytes/location. Nothing is staged.
        """
        from icechunk.format.manifest import checked_refs

        refs = checked_refs(refs)
        writes = self.chunks.get(node_id)
        if not isinstance(writes, ChunkWrites):
            writes = ChunkWrites(writes)
            self.chunks[node_id] = writes
        writes.add_refs(refs)

    def node_state(self, path: str) -> NodeChange | tuple[bytes, bool] | None:
        """What this change set says about ``path``: a change, a deletion, or ``None``."""
        change = self.nodes.get(path)
        if change is not None:
            return change
        return self.deleted.get(path)

    def node_id_at(self, path: str, base: Mapping[str, NodeSnapshot]) -> bytes | None:
        """The id of the live node at ``path``: staged here, else in ``base`` (nodes by path)."""
        change = self.nodes.get(path)
        if change is not None:
            return change.node_id
        if path in self.deleted:
            return None
        node = base.get(path)
        return None if node is None else node.id

    def chunk_state(
        self, node_id: bytes, coords: tuple[int, ...]
    ) -> tuple[bool, ChunkPayload | None]:
        """``(True, payload)`` if this change set writes (payload) or deletes (``None``) it."""
        writes = self.chunks.get(node_id)
        if writes is not None and coords in writes:
            return True, writes[coords]
        return False, None

    def absorb_disjoint_chunks(self, other: ChangeSet, base: ChangeSet | None = None) -> bool:
        """Fold in ``other`` if it only wrote chunks that neither side has written; say if so.

        The fast path of :meth:`merge` for the distributed-write case (hundreds of forks that
        each wrote their own region): when ``other`` staged no node change or deletion, this
        side deleted nothing, and none of ``other``'s chunk coordinates is written here or in
        ``base`` (the read-only layer under this change set), nothing can conflict or overlap,
        and the writes are copied in. Otherwise nothing is changed and ``False`` is returned:
        call :meth:`merge`.
        """
        if other.nodes or other.deleted or self.deleted:
            return False
        mine = self.chunks
        under = base.chunks if base is not None else None
        for node_id, writes in other.chunks.items():
            keys = single_keys(writes)
            if keys is None:
                return False
            for side in (mine, under):
                if side is None:
                    continue
                staged = side.get(node_id)
                if staged is not None:
                    staged_keys = single_keys(staged)
                    # (isdisjoint walks the smaller side, not all of staged)
                    if staged_keys is None or not keys.isdisjoint(staged_keys):
                        return False
        for node_id, writes in other.chunks.items():
            mine[node_id] = absorb_writes(mine.get(node_id), writes)
        return True

    def absorb_disjoint_forks(
        self, others: Sequence[ChangeSet], base: ChangeSet | None = None
    ) -> bool:
        """Fold in all of ``others`` at once if they only wrote chunks no one else wrote; say
        if so.

        The columnar form of :meth:`absorb_disjoint_chunks` for many forks (a distributed
        write): per array, the forks' logs are joined and their coordinates checked against
        each other and against this side's (and ``base``'s) with one sort, instead of a
        dictionary update per fork. Used only while the forks wrote at least as many chunks
        as this side holds, so its cost follows the forks' size. Otherwise, or if anything
        could overlap or conflict, nothing is changed and ``False`` is returned.
        """
        if self.deleted or any(other.nodes or other.deleted for other in others):
            return False
        by_node: dict[bytes, list[ChunkWrites]] = {}
        for other in others:
            for node_id, writes in other.chunks.items():
                if type(writes) is not ChunkWrites:
                    return False
                if writes._n or writes._bulk is not None:  # (bool(writes), without a call)
                    parts = by_node.get(node_id)
                    if parts is None:
                        by_node[node_id] = [writes]
                    else:
                        parts.append(writes)
        joined: dict[bytes, ChunkWrites] = {}
        for node_id, parts in by_node.items():
            sides = [self.chunks.get(node_id), base.chunks.get(node_id) if base else None]
            if sum(len(side) for side in sides if side) > sum(map(len, parts)):
                return False
            theirs = ChunkWrites.join(parts, sides)
            if theirs is None:
                return False
            joined[node_id] = theirs
        for node_id, theirs in joined.items():
            mine = self.chunks.get(node_id)
            if type(mine) is not ChunkWrites:
                mine = self.chunks[node_id] = ChunkWrites(mine)
            mine.absorb_disjoint(theirs)
        return True

    def merge(
        self,
        other: ChangeSet,
        *,
        on_overlap: str = "warn",
        base: ChangeSet | None = None,
        other_base: ChangeSet | None = None,
        node_path: Callable[[bytes], str] | None = None,
    ) -> list[str]:
        """Fold ``other`` (a fork's own changes) into this change set; ``other`` wins.

        ``other_base`` is the state ``other`` started from (a fork's copy of its parent's
        uncommitted changes), and ``base`` the read-only layer under this change set when this
        is itself a fork's change set; all are relative to one base snapshot. Only what
        changed on this side *since* ``other`` was forked can conflict: a fork may freely
        rewrite (resize, delete, overwrite chunks of) what its parent staged before forking.
        ``node_path`` names arrays (by node id) in the overlap report.

        Two sides that each created a node at one path with identical metadata are merged into
        one node (this side's), keeping the chunks both wrote.

        Returns the chunks both sides wrote differently (``"`path` [i, j]"``, at most
        :data:`MAX_OVERLAPS` + 1; none with ``on_overlap="ignore"``): the caller reports them.

        Raises
        ------
        SessionStateError
            Both created the same node with different metadata, both rewrote one node's
            metadata differently, or one deleted (or replaced) a node the other modified; or
            (``on_overlap="error"``) both wrote different data to one chunk. Nothing is changed.
        """
        if on_overlap not in ("warn", "error", "ignore"):
            raise ValueError(f"on_overlap must be 'warn', 'error' or 'ignore', not {on_overlap!r}")
        theirs_from = other_base if other_base is not None else _NO_CHANGES

        def mine_chunk(node_id: bytes, coords: tuple[int, ...]) -> tuple[bool, ChunkPayload | None]:
            state = self.chunk_state(node_id, coords)
            if not state[0] and base is not None:
                state = base.chunk_state(node_id, coords)
            return state

        def mine_since_fork(path: str) -> NodeChange | tuple[bytes, bool] | None:
            """This side's state of ``path`` if it changed since ``other`` forked, else None."""
            state = self.node_state(path)
            if state is None and base is not None:
                state = base.node_state(path)
            return None if state == theirs_from.node_state(path) else state

        conflicts: list[str] = []
        same_node: dict[bytes, bytes] = {}
        """Other's node id -> this side's, for nodes both created identically."""
        if other.nodes or other.deleted or self.deleted:
            # (a fork that only wrote chunks cannot conflict with a side that deleted nothing)
            for path, change in other.nodes.items():
                mine = mine_since_fork(path)
                if isinstance(mine, NodeChange):
                    if mine.node_id == change.node_id:
                        if mine.user_data != change.user_data:
                            conflicts.append(
                                f"both sessions updated the metadata of `{path}` differently"
                            )
                    elif mine.is_new and change.is_new:
                        if mine.user_data != change.user_data or mine.is_array != change.is_array:
                            conflicts.append(
                                f"both sessions created `{path}` with different metadata"
                            )
                        else:
                            same_node[change.node_id] = mine.node_id
                    else:
                        conflicts.append(
                            f"`{path}` was replaced in one session and modified in another"
                        )
                elif mine is not None and mine[0] == change.node_id:
                    conflicts.append(f"`{path}` was deleted in one session and modified in another")
            for path, (node_id, _) in other.deleted.items():
                mine = mine_since_fork(path)
                if isinstance(mine, NodeChange) and mine.node_id == node_id:
                    conflicts.append(f"`{path}` was deleted in one session and modified in another")
                if any(
                    mine_chunk(node_id, c) != theirs_from.chunk_state(node_id, c)
                    for c in self.chunks.get(node_id, {})
                ):
                    conflicts.append(
                        f"`{path}` was deleted in one session and its chunks written in another"
                    )
            for path, deleted in self.deleted.items():
                if (
                    deleted != theirs_from.deleted.get(path)
                    and path not in other.deleted
                    and other.chunks.get(deleted[0])
                ):
                    conflicts.append(
                        f"`{path}` was deleted in one session and its chunks written in another"
                    )
        if conflicts:
            raise SessionStateError(
                "failed to merge sessions: " + "; ".join(sorted(set(conflicts))),
                ErrorKind.MERGE_CONFLICT,
            )

        overlaps: list[str] = []
        if on_overlap != "ignore":
            for other_id, writes in other.chunks.items():
                node_id = same_node.get(other_id, other_id)
                if node_id not in self.chunks and (base is None or node_id not in base.chunks):
                    continue
                items: Iterable[tuple[tuple[int, ...], ChunkPayload | None]] = writes.items()
                mine_writes = self.chunks.get(node_id)
                base_writes = None if base is None else base.chunks.get(node_id)
                keys = single_keys(writes)
                sides = [single_keys(w) for w in (mine_writes, base_writes) if w is not None]
                if keys is not None and None not in sides:
                    # only coordinates both sides wrote can overlap: intersect the keys in C
                    common: set[tuple[int, ...]] = set()
                    for side_keys in sides:
                        common |= keys & side_keys  # type: ignore[operator]
                    items = [(c, writes[c]) for c in sorted(common)]
                for coords, payload in items:
                    found, mine_payload = mine_chunk(node_id, coords)
                    if (
                        found
                        and mine_payload != payload
                        and (found, mine_payload) != theirs_from.chunk_state(node_id, coords)
                    ):
                        name = node_path(node_id) if node_path else node_id.hex()
                        overlaps.append(f"`{name}` {list(coords)}")
                if len(overlaps) > MAX_OVERLAPS:
                    break
        if overlaps and on_overlap == "error":
            raise SessionStateError(overlap_message(overlaps), ErrorKind.MERGE_CONFLICT)

        for path, (node_id, is_array) in other.deleted.items():
            mine = self.nodes.get(path)
            own_new = (
                mine is not None
                and mine.node_id == node_id
                and mine.is_new
                and (base is None or base.nodes.get(path, mine).node_id != node_id)
            )
            if mine is not None and mine.node_id == node_id:
                del self.nodes[path]
            self.chunks.pop(node_id, None)
            if not own_new:
                # the node lives in the snapshot or in this side's base layer: record it
                self.deleted.setdefault(path, (node_id, is_array))
        for path, change in other.nodes.items():
            if change.node_id in same_node:
                continue
            mine = self.nodes.get(path)
            if mine is not None and mine.node_id != change.node_id:
                self.chunks.pop(mine.node_id, None)
            self.nodes[path] = change
        for other_id, writes in other.chunks.items():
            node_id = same_node.get(other_id, other_id)
            self.chunks[node_id] = absorb_writes(self.chunks.get(node_id), writes)
        return overlaps


_NO_CHANGES: Final = ChangeSet()
"""An empty change set, never modified: the starting state of a fork of a clean session."""


def _copy_writes(
    writes: MutableMapping[tuple[int, ...], ChunkPayload | None],
) -> MutableMapping[tuple[int, ...], ChunkPayload | None]:
    """An independent copy of one array's staged writes (bulk columns are shared: immutable)."""
    copy = getattr(writes, "copy", None)
    return copy() if callable(copy) else dict(writes)
