"""Sessions: a change set over a base snapshot, and the commit that publishes it.

A :class:`Session` reads through its change set first and then its base snapshot (snapshot
isolation: it never sees later commits). A writable session stages node and chunk changes; chunk
bytes are uploaded as they are written (small chunks stay in the change set and end up inline in
the manifest). :meth:`Session.commit` writes manifests, the transaction log and the snapshot, then
publishes them with one compare-and-swap of the branch.

Distributed writes use :meth:`Session.fork`: a picklable :class:`ForkSession` that records its
own changes, sent to workers and merged back with :meth:`Session.merge`.
"""

from __future__ import annotations

import asyncio
import json
import numbers
import random
import warnings
from collections.abc import Iterable
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np

from icechunk._core.cache import default_cache
from icechunk._core.change_set import (
    MAX_OVERLAPS,
    ChangeSet,
    ChunkOverlapWarning,
    ChunkPayload,
    InlinePayload,
    NativePayload,
    NodeChange,
    overlap_message,
)
from icechunk._core.manifest_writer import rewrites_manifests
from icechunk._core.tree import Node
from icechunk._core.zarr_metadata import NodeMetadata, parse_node_metadata
from icechunk._sync import sync, sync_twin
from icechunk.errors import (
    ConflictError,
    ErrorKind,
    InvalidInputError,
    NodeNotFoundError,
    ReadOnlyError,
    SessionStateError,
)
from icechunk.format import layout
from icechunk.format.ids import encode_id, new_id8, new_id12
from icechunk.format.metadata import encode_json_value
from icechunk.format.model import (
    NodeSnapshot,
    Snapshot,
    SnapshotInfoRecord,
    TransactionLog,
)
from icechunk.snapshots import Diff
from icechunk.storage.base import ByteRange, Storage

if TYPE_CHECKING:
    from icechunk._core.conflicts import ConflictSolver
    from icechunk._core.objects import RepoObjects
    from icechunk.config import RepositoryConfig
    from icechunk.store import IcechunkStore

__all__ = ["ChunkType", "ForkSession", "Session", "SessionMode"]

_JITTER = random.Random()
"""Private RNG for retry jitter: a library must not draw from (or disturb) the global one."""

_PICKLE_HELP = (
    "This session is a read-only copy of a writable session that was sent to another process "
    "(for example a Dask worker). Writes made here could never reach the original session's "
    "commit, so they are refused. To write from several processes, call `session.fork()` and "
    "send the fork to the workers, return the forks, and `session.merge(*forks)` before "
    "committing; with xarray use `icechunk.xarray.to_icechunk(ds, session)`, and with dask "
    "`icechunk.dask.store_dask(...)`."
)


class ChunkType(IntEnum):
    """What kind of reference a chunk has (``Session.chunk_type``)."""

    uninitialized = 0
    native = 1
    virtual = 2
    inline = 3


class SessionMode(IntEnum):
    readonly = 0
    writable = 1
    rearrange = 2


def _is_descendant(path: str, ancestor: str) -> bool:
    if ancestor == "/":
        return path != "/"
    return path.startswith(ancestor + "/")


class _Owner(Protocol):
    """What a session needs of the :class:`~icechunk.Repository` it belongs to.

    A protocol, not the class, so that this module does not import the repository module
    (which imports this one).
    """

    _objects: RepoObjects

    @property
    def config(self) -> RepositoryConfig: ...

    @property
    def spec_version(self) -> int: ...

    @property
    def storage(self) -> Storage: ...

    def default_commit_metadata(self) -> dict[str, Any]: ...


class Session:
    """A view of one snapshot plus, for writable sessions, staged changes.

    Obtain sessions from :meth:`Repository.readonly_session` and
    :meth:`Repository.writable_session`; do not construct them directly.
    """

    def __init__(
        self,
        repo: _Owner,
        snapshot: Snapshot,
        *,
        branch: str | None,
        mode: SessionMode,
        changes: ChangeSet | None = None,
        fork_base: ChangeSet | None = None,
    ) -> None:
        self._repo = repo
        self._tree = repo._objects.tree_for(snapshot)
        self._branch = branch
        self._mode = mode
        self._changes = changes if changes is not None else ChangeSet()
        self._fork_base = fork_base
        """For forks: the parent's uncommitted changes at fork time (read-only layer)."""
        self._pickled_view = False
        self._committed = False
        self._overlaps: list[str] = []
        """For forks: overlapping chunk writes found by merges into this fork, reported
        when the fork is merged into a non-fork session (tree reductions run on workers)."""

    # -- properties -----------------------------------------------------------------------

    @property
    def read_only(self) -> bool:
        """Whether writes through this session are refused (read-only sessions, committed ones)."""
        return self._mode == SessionMode.readonly

    @property
    def _store_read_only(self) -> bool:
        """What a store over this session should tell zarr about ``read_only``.

        A pickled copy of a writable session (a read-only view in another process) reports
        ``False``: zarr then lets code open it for writing (``mode="r+"``, ``to_zarr``), and
        the first actual write raises a :class:`ReadOnlyError` that explains ``fork()``,
        instead of zarr's own "Store is read-only but mode is 'r+'".
        """
        return self.read_only and not self._pickled_view

    @property
    def mode(self) -> SessionMode:
        """``readonly``, ``writable`` or ``rearrange``."""
        return self._mode

    @property
    def snapshot_id(self) -> str:
        """The id of the base snapshot (after a commit: the snapshot it wrote)."""
        return encode_id(self._tree.snapshot.id)

    @property
    def branch(self) -> str | None:
        """The branch the session commits to; ``None`` for detached and read-only sessions."""
        return self._branch

    @property
    def has_uncommitted_changes(self) -> bool:
        """Whether anything is staged (nodes, metadata or chunks)."""
        return not self._changes.is_empty()

    @property
    def config(self) -> Any:
        """The repository configuration in effect for this session."""
        return self._repo.config

    @property
    def store(self) -> IcechunkStore:
        """A zarr v3 store over this session (a new, cheap :class:`IcechunkStore` each time)."""
        from icechunk.store import IcechunkStore

        return IcechunkStore(self)

    @property
    def _base_id(self) -> bytes:
        return self._tree.snapshot.id

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} read_only={self.read_only} snapshot_id={self.snapshot_id} "
            f"branch={self._branch} has_uncommitted_changes={self.has_uncommitted_changes}>"
        )

    # -- pickling -------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = {
            "repo": self._repo,
            "snapshot_id": self._base_id,
            "branch": self._branch,
            "mode": int(self._mode),
            "changes": self._changes,
            "fork_base": self._fork_base,
            "pickled_view": self._pickled_view,
            "committed": self._committed,
            "overlaps": self._overlaps,
        }
        if self._mode != SessionMode.readonly and not isinstance(self, ForkSession):
            # A writable session travels as a read-only view of its current state: reads
            # work in the other process, writes there raise with an explanation.
            state["mode"] = int(SessionMode.readonly)
            state["pickled_view"] = True
            state["branch"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        repo = state["repo"]
        # Every write task unpickles a fork: serve the snapshot from the process cache without
        # the event-loop round trip of ``sync`` when it is there.
        snapshot = default_cache.get("snapshot", state["snapshot_id"])
        if not isinstance(snapshot, Snapshot):
            snapshot = sync(repo._objects.load_snapshot(state["snapshot_id"]))
        self._repo = repo
        self._tree = repo._objects.tree_for(snapshot)
        self._branch = state["branch"]
        self._mode = SessionMode(state["mode"])
        self._changes = state["changes"]
        self._fork_base = state["fork_base"]
        self._pickled_view = state["pickled_view"]
        self._committed = state["committed"]
        self._overlaps = list(state.get("overlaps", ()))

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    # -- state checks ---------------------------------------------------------------------

    def _require_writable(self) -> None:
        if self._pickled_view:
            raise ReadOnlyError(_PICKLE_HELP, ErrorKind.READ_ONLY_SESSION)
        if self._mode == SessionMode.readonly:
            raise ReadOnlyError(
                "cannot write through a read-only session"
                + (
                    " (this session already committed; open a new writable session)"
                    if self._committed
                    else ""
                ),
                ErrorKind.READ_ONLY_STORE,
            )

    # -- node reads -----------------------------------------------------------------------

    def _layers(self) -> list[ChangeSet]:
        return [self._changes] if self._fork_base is None else [self._changes, self._fork_base]

    def _node(self, path: str) -> Node | None:
        for cs in self._layers():
            change = cs.nodes.get(path)
            if change is not None:
                meta = parse_node_metadata(path, change.user_data)
                base = self._tree.by_path.get(path) if not change.is_new else None
                return Node(path, change.node_id, change.user_data, meta, base, change)
            if path in cs.deleted:
                return None
        base = self._tree.by_path.get(path)
        if base is None:
            return None
        return Node(path, base.id, base.user_data, self._tree.node_meta(base), base, None)

    def _all_paths(self) -> list[str]:
        paths: set[str] = set(self._tree.by_path)
        for cs in reversed(self._layers()):
            paths.difference_update(cs.deleted)
            paths.update(cs.nodes)
        return sorted(p for p in paths if self._node(p) is not None)

    def list_nodes(self) -> list[tuple[str, bool]]:
        """Every live node as ``(path, is_array)``, sorted by path."""
        out = []
        for path in self._all_paths():
            node = self._node(path)
            if node is not None:
                out.append((path, node.meta.is_array))
        return out

    async def get_metadata(self, path: str) -> bytes | None:
        """The raw ``zarr.json`` of the live node at ``path`` (absolute), or ``None``."""
        node = self._node(path)
        return None if node is None else node.user_data

    def node_metadata(self, path: str) -> NodeMetadata | None:
        """The parsed metadata of the live node at ``path`` (absolute), or ``None``."""
        node = self._node(path)
        return None if node is None else node.meta

    def get_node_id(self, path: str) -> str:
        """The id of the live node at ``path`` (absolute).

        Raises
        ------
        NodeNotFoundError
            No live node there.
        """
        node = self._node(path)
        if node is None:
            raise NodeNotFoundError(f"node not found at `{path}`", ErrorKind.NODE_NOT_FOUND)
        return encode_id(node.node_id)

    # -- chunk reads ----------------------------------------------------------------------

    def _staged_payload(
        self, node_id: bytes, coords: tuple[int, ...]
    ) -> tuple[bool, ChunkPayload | None]:
        for cs in self._layers():
            writes = cs.chunks.get(node_id)
            if writes is not None and coords in writes:
                return True, writes[coords]
        return False, None

    async def _base_payload(
        self, node: NodeSnapshot, coords: tuple[int, ...]
    ) -> ChunkPayload | None:
        assert node.array is not None
        for mref in node.array.manifests:
            if all(lo <= c < hi for c, (lo, hi) in zip(coords, mref.extents, strict=False)):
                payload = await self._repo._objects.manifest_ref(
                    mref.object_id, node.id, self._tree.manifest_files.get(mref.object_id), coords
                )
                if payload is not None:
                    return payload
        return None

    async def _payload(self, node: Node, coords: tuple[int, ...]) -> ChunkPayload | None:
        found, payload = self._staged_payload(node.node_id, coords)
        if found:
            return payload
        if node.base is None or node.base.array is None:
            return None
        return await self._base_payload(node.base, coords)

    async def get_chunk(
        self, path: str, coords: tuple[int, ...], byte_range: ByteRange | None = None
    ) -> bytes | None:
        """The encoded chunk bytes (or a range of them), or ``None`` if never written."""
        node = self._node(path)
        if node is None or not node.meta.is_array:
            return None
        payload = await self._payload(node, coords)
        if payload is None:
            return None
        return await self._repo._objects.fetch_payload(payload, byte_range)

    async def chunk_exists(self, path: str, coords: tuple[int, ...]) -> bool:
        """Whether chunk ``coords`` of the array at ``path`` is initialized (staged or stored)."""
        node = self._node(path)
        if node is None or not node.meta.is_array:
            return False
        return await self._payload(node, coords) is not None

    async def chunk_type_async(
        self, array_path: str, chunk_coordinates: Iterable[int]
    ) -> ChunkType:
        """Whether the chunk is uninitialized, or stored natively, virtually or inline."""
        node = self._node(_normalize_path(array_path))
        if node is None or not node.meta.is_array:
            return ChunkType.uninitialized
        payload = await self._payload(node, tuple(int(c) for c in chunk_coordinates))
        if payload is None:
            return ChunkType.uninitialized
        if isinstance(payload, NativePayload):
            return ChunkType.native
        if isinstance(payload, InlinePayload):
            return ChunkType.inline
        return ChunkType.virtual

    chunk_type = sync_twin(chunk_type_async)

    async def chunk_size(self, path: str, coords: tuple[int, ...]) -> int | None:
        """The stored size in bytes of chunk ``coords`` of the array at ``path``; ``None`` if
        the chunk is uninitialized or ``path`` is not an array."""
        node = self._node(path)
        if node is None or not node.meta.is_array:
            return None
        payload = await self._payload(node, coords)
        if payload is None:
            return None
        if isinstance(payload, InlinePayload):
            return len(payload.data)
        return payload.length

    async def list_chunks(self, path: str) -> list[tuple[int, ...]]:
        """Coordinates of every initialized chunk of the array at ``path``, sorted."""
        node = self._node(path)
        if node is None or not node.meta.is_array:
            return []
        return await self._chunks_of(node, node.meta.num_chunks)

    async def _chunks_of(self, node: Node, bounds: tuple[int, ...]) -> list[tuple[int, ...]]:
        coords: set[tuple[int, ...]] = set()
        if node.base is not None and node.base.array is not None:
            for mref in node.base.array.manifests:
                index = await self._repo._objects.manifest_index(
                    mref.object_id, node.node_id, self._tree.manifest_files.get(mref.object_id)
                )
                if index is not None:
                    coords.update(map(tuple, index.refs.coords.tolist()))
        for cs in reversed(self._layers()):
            for c, payload in cs.chunks.get(node.node_id, {}).items():
                if payload is None:
                    coords.discard(c)
                else:
                    coords.add(c)
        return sorted(c for c in coords if all(x < b for x, b in zip(c, bounds, strict=False)))

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

    def _array_for_write(self, path: str, coords: tuple[int, ...]) -> Node:
        node = self._node(path)
        if node is None or not node.meta.is_array:
            raise InvalidInputError(
                f"invalid chunk write: there is no array at `{path}`", ErrorKind.INVALID_KEY
            )
        bounds = node.meta.num_chunks
        if len(coords) != len(bounds) or any(
            c < 0 or c >= b for c, b in zip(coords, bounds, strict=False)
        ):
            raise InvalidInputError(
                f"invalid chunk index {list(coords)} for array `{path}` with "
                f"{list(bounds)} chunks per dimension",
                ErrorKind.INVALID_CHUNK_INDEX,
            )
        return node

    async def set_chunk(self, path: str, coords: tuple[int, ...], data: bytes | memoryview) -> None:
        """Stage encoded chunk bytes; uploads them now unless they are small enough to inline.

        ``data`` may be a flat byte ``memoryview``: it is uploaded without a copy (inline
        chunks are copied), so it must not change until this returns, and is not kept.
        """
        self._require_writable()
        raw: object = coords  # callers outside the type checker pass anything
        if not isinstance(raw, tuple) or not (
            all(type(c) is int for c in raw)  # the usual case, fast
            or all(isinstance(c, numbers.Integral) and not isinstance(c, bool) for c in raw)
        ):
            raise InvalidInputError(
                f"invalid chunk index {coords!r} for `{path}`: expected a tuple of integers",
                ErrorKind.INVALID_CHUNK_INDEX,
            )
        coords = tuple(int(c) for c in coords)
        node = self._array_for_write(path, coords)
        if len(data) == 0:
            raise InvalidInputError(
                f"refusing to write a zero-length chunk at `{path}` {list(coords)}",
                ErrorKind.ZERO_LENGTH_CHUNK,
            )
        payload: ChunkPayload
        if len(data) <= self._repo.config.effective_inline_chunk_threshold_bytes:
            payload = InlinePayload(bytes(data))
        else:
            chunk_id = new_id12()
            # Every storage's put takes any flat bytes-like object (the in-memory and object
            # stores copy what is not ``bytes``; local storage writes it as is): no copy here.
            await self._repo.storage.put(layout.chunk_key(chunk_id), cast("bytes", data))
            payload = NativePayload(chunk_id, 0, len(data))
        self._changes.set_chunk(node.node_id, coords, payload)

    async def set_virtual_refs_columns(
        self,
        path: str,
        coords: Any,
        locations: list[str],
        offsets: Any,
        lengths: Any,
        etags: list[str | None] | None = None,
        last_modified: Any = None,
        *,
        validate_containers: bool = True,
    ) -> list[int]:
        """Stage virtual chunk references for the array at ``path`` (columns of equal length).

        ``coords`` is an ``(n, ndim)`` integer array; ``offsets``, ``lengths`` and
        ``last_modified`` (seconds, 0 for none) integer arrays. See
        :func:`icechunk._core.virtual_refs.plan_virtual_refs` for the checks: any bad reference
        raises :class:`~icechunk.errors.InvalidInputError` and stages nothing. References are
        staged in bulk (``ChangeSet.set_chunk_refs``); of several with the same coordinates
        the last one wins.

        Returns
        -------
        list[int]
            Positions refused because no virtual chunk container matches their location (only
            with ``validate_containers``); every other reference is staged.
        """
        from icechunk._core.virtual_refs import plan_virtual_refs

        self._require_writable()
        node = self._node(_normalize_path(path))
        if node is None or not node.meta.is_array:
            raise InvalidInputError(
                f"cannot set virtual references: there is no array at `{path}`",
                ErrorKind.INVALID_KEY,
            )
        refs, failed = plan_virtual_refs(
            self._repo._objects,
            node.path,
            node.meta.num_chunks,
            coords,
            locations,
            offsets,
            lengths,
            etags,
            last_modified,
            validate_containers=validate_containers,
        )
        if len(refs) >= _BULK_MIN_REFS:
            # staged columnar: no Python object per reference, and validated as a whole
            self._changes.set_chunk_refs(node.node_id, refs)
        else:
            # a few refs (set_virtual_ref in a loop): merging each into the bulk columns
            # would cost O(staged) per call, so they are staged one by one
            from icechunk._core.chunk_refs import payload_at

            for i, row in enumerate(refs.coords.tolist()):
                self._changes.set_chunk(node.node_id, tuple(row), payload_at(refs, i))
        return failed

    async def delete_chunk(self, path: str, coords: tuple[int, ...]) -> None:
        """Stage the deletion of chunk ``coords``; outside the chunk grid it does nothing.

        Raises
        ------
        ReadOnlyError
            The session is read-only.
        """
        self._require_writable()
        node = self._node(path)
        if node is None or not node.meta.is_array:
            return
        bounds = node.meta.num_chunks
        if len(coords) != len(bounds) or any(c >= b for c, b in zip(coords, bounds, strict=False)):
            return  # out-of-grid deletes are no-ops (icechunk 2.3 behaviour)
        self._changes.set_chunk(node.node_id, coords, None)

    # -- status ---------------------------------------------------------------------------

    def status(self) -> Diff:
        """The uncommitted changes, as a :class:`Diff`."""
        diff = Diff()
        cs = self._changes
        for path, (_, is_array) in cs.deleted.items():
            (diff.deleted_arrays if is_array else diff.deleted_groups).add(path)
        by_id: dict[bytes, str] = {}
        for path, change in cs.nodes.items():
            by_id[change.node_id] = path
            if change.is_new:
                (diff.new_arrays if change.is_array else diff.new_groups).add(path)
            else:
                (diff.updated_arrays if change.is_array else diff.updated_groups).add(path)
        for node in self._tree.snapshot.nodes:
            by_id.setdefault(node.id, node.path)
        for node_id, writes in cs.chunks.items():
            found = by_id.get(node_id)
            if found is None or not writes or (found in cs.deleted and found not in cs.nodes):
                continue
            path = found
            diff.updated_chunks[path] = sorted(list(c) for c in writes)
        return diff

    def discard_changes(self) -> None:
        """Drop every uncommitted change. Uploaded chunks are left for garbage collection."""
        if self._mode == SessionMode.readonly:
            raise ReadOnlyError("cannot discard changes of a read-only session")
        self._changes = ChangeSet()
        self._overlaps = []

    # -- fork / merge ---------------------------------------------------------------------

    def fork(self) -> ForkSession:
        """A picklable session that records its own changes, for distributed writes.

        Send the fork to workers; each writes through ``fork.store`` and returns the fork;
        merge them back with :meth:`merge` and commit here. The parent may have uncommitted
        changes: the fork sees them, but merging back adds only the fork's own changes.

        Raises
        ------
        SessionStateError
            The session is read-only.
        """
        if self._mode == SessionMode.readonly or self._pickled_view:
            raise SessionStateError(
                "cannot fork a read-only session", ErrorKind.CANNOT_FORK_READ_ONLY_SESSION
            )
        base = self._changes.copy()
        if self._fork_base is not None:
            merged = self._fork_base.copy()
            merged.merge(base, on_overlap="ignore", other_base=self._fork_base)
            base = merged
        return ForkSession(
            self._repo,
            self._tree.snapshot,
            branch=None,
            mode=SessionMode.writable,
            changes=ChangeSet(),
            fork_base=None if base.is_empty() else base,
        )

    def merge(self, *others: ForkSession, on_overlap: str = "warn") -> None:
        """Fold the changes of forks into this session, in order (later forks win).

        A fork may rewrite anything this session had staged before forking (resize or delete
        an array created here, overwrite chunks written here); only what changed here *after*
        the fork, or in an earlier merged fork, can conflict with it. Merging is all or
        nothing, and merging the same fork twice changes nothing.

        Parameters
        ----------
        others
            Forks of this session (or of a session with the same base snapshot). The session
            itself is skipped (threads writing through one shared session).
        on_overlap
            What to do when merged forks wrote different bytes to the same chunk: ``"warn"``
            (default, :class:`~icechunk._core.change_set.ChunkOverlapWarning`), ``"error"``
            (:class:`SessionStateError`) or ``"ignore"``. The last merged fork wins. A
            :class:`ForkSession` (merging on a worker, in a tree reduction) does not warn but
            records the overlaps; they are reported when it is merged into a session.

        Raises
        ------
        SessionStateError
            A fork has another base snapshot, the changes conflict (see
            :meth:`ChangeSet.merge`), or overlapping chunk writes with ``on_overlap="error"``.
        ReadOnlyError
            This session is read-only (committed, or a pickled copy of a writable session).
        """
        self._require_writable()
        forks = [other for other in others if other is not self]
        for other in forks:
            if not isinstance(other, Session):
                raise TypeError(
                    f"merge expects ForkSession objects, received {type(other).__name__!r}"
                )
            if other._base_id != self._base_id:
                raise SessionStateError(
                    f"cannot merge a session based on snapshot {other.snapshot_id} into one "
                    f"based on {self.snapshot_id}: forks must come from this session (or one "
                    "with the same base snapshot)",
                    ErrorKind.MERGE_NOT_ALLOWED,
                )
        if on_overlap not in ("warn", "error", "ignore"):
            raise ValueError(f"on_overlap must be 'warn', 'error' or 'ignore', not {on_overlap!r}")
        # overlaps found by merges that already happened inside the forks (on workers)
        found = [o for other in forks for o in other._overlaps]
        if found and on_overlap == "error":
            raise SessionStateError(overlap_message(found), ErrorKind.MERGE_CONFLICT)
        # All or nothing: one merge checks before it changes anything; several are first
        # rehearsed on a copy, so a conflict with the n-th fork leaves this session untouched.
        # The real pass then updates the change set in place (never swapping it out, so
        # writes made meanwhile by other threads through this session are kept).
        if len(forks) > 1:
            rehearsal = self._changes.copy()
            for other in forks:
                found += rehearsal.merge(
                    other._changes,
                    on_overlap=on_overlap,
                    base=self._fork_base,
                    other_base=other._fork_base,
                    node_path=self._node_path,
                )
        for other in forks:
            found_here = self._changes.merge(
                other._changes,
                on_overlap=on_overlap if len(forks) == 1 else "ignore",
                base=self._fork_base,
                other_base=other._fork_base,
                node_path=self._node_path,
            )
            if len(forks) == 1:
                found += found_here
        if not found or on_overlap == "ignore":
            return
        if isinstance(self, ForkSession):
            # report where the user merges into their session (usually not on this worker)
            self._overlaps = (self._overlaps + found)[: MAX_OVERLAPS + 1]
        else:
            warnings.warn(overlap_message(found), ChunkOverlapWarning, stacklevel=2)

    def _node_path(self, node_id: bytes) -> str:
        """The path of a node by id (for messages), or the id if it is unknown here."""
        for cs in self._layers():
            for change in cs.nodes.values():
                if change.node_id == node_id:
                    return change.path
        for node in self._tree.snapshot.nodes:
            if node.id == node_id:
                return node.path
        return encode_id(node_id)

    # -- commit ---------------------------------------------------------------------------

    async def commit_async(
        self,
        message: str,
        metadata: dict[str, Any] | None = None,
        *,
        rebase_with: ConflictSolver | None = None,
        rebase_tries: int = 1000,
        allow_empty: bool = False,
    ) -> str:
        """Publish the changes as a new snapshot on the session's branch; return its id.

        Writes manifests (only for arrays whose chunks changed), the transaction log and the
        snapshot, then moves the branch with one compare-and-swap. Afterwards the session is
        read-only and points at the new snapshot.

        Parameters
        ----------
        message
            Commit message.
        metadata
            JSON-serializable dict, merged over the repository's default commit metadata.
        rebase_with
            If given, a conflict makes the session rebase with this solver and retry (with
            jittered exponential backoff), up to ``rebase_tries`` times.
        allow_empty
            Commit even when nothing changed.

        Raises
        ------
        ConflictError
            The branch moved since the session started (and no ``rebase_with``).
        RebaseFailedError
            Rebasing found conflicts the solver could not resolve.
        SessionStateError
            Nothing to commit, or the session cannot commit (read-only, fork).
        InvalidInputError
            ``metadata`` is not a JSON-serializable dict. Nothing was written.
        """
        self._require_can_commit("commit")
        props = self._commit_metadata(metadata)
        if not allow_empty and not self.has_uncommitted_changes:
            raise SessionStateError(
                "session error: cannot commit, no changes made to the session (use "
                "`allow_empty=True` to commit anyway)",
                ErrorKind.NO_CHANGES_TO_COMMIT,
            )
        assert self._branch is not None
        attempts = 0
        while True:
            if rebase_with is not None:
                props.setdefault("__icechunk", {})
                props["__icechunk"] = {**props["__icechunk"], "rebase_attempts": attempts}
            snapshot, _ = await self._write_commit_objects(message, props)
            info = SnapshotInfoRecord(
                snapshot.id, self._base_id, snapshot.flushed_at, message, props
            )
            try:
                await self._repo._objects.refs.publish_commit(self._branch, info, self._base_id)
            except ConflictError:
                if rebase_with is None or attempts >= rebase_tries:
                    raise
                attempts += 1
                # back off first, then rebase onto the freshest tip (jittered exponential:
                # the real Icechunk retries at once and livelocks under contention)
                await asyncio.sleep(_JITTER.uniform(0, min(1.0, 0.005 * 2 ** min(attempts, 8))))
                await self.rebase_async(rebase_with)
                continue
            self._after_commit(snapshot)
            return encode_id(snapshot.id)

    commit = sync_twin(commit_async)

    async def amend_async(
        self, message: str, *, metadata: dict[str, Any] | None = None, allow_empty: bool = False
    ) -> str:
        """Replace the branch tip with a snapshot of the tip's parent plus these changes."""
        self._require_can_commit("amend")
        if self._repo.spec_version < 2:
            raise SessionStateError(
                "amend is only supported in spec version 2 repositories; upgrade the repository to spec version 2 to use it",
                ErrorKind.AMEND_NOT_ALLOWED,
            )
        props = self._commit_metadata(metadata)
        if not allow_empty and not self.has_uncommitted_changes:
            raise SessionStateError(
                "session error: cannot amend, no changes made to the session (use "
                "`allow_empty=True` to amend anyway)",
                ErrorKind.NO_CHANGES_TO_COMMIT,
            )
        assert self._branch is not None
        tip = self._tree.snapshot
        tip_info = await self._repo._objects.refs.snapshot_info(tip.id)
        if tip_info.parent_id is None:
            raise SessionStateError(
                "cannot amend the first commit of a repository", ErrorKind.AMEND_NOT_ALLOWED
            )
        snapshot, _ = await self._write_commit_objects(message, props, tx_parent=tip.id)
        info = SnapshotInfoRecord(
            snapshot.id, tip_info.parent_id, snapshot.flushed_at, message, props
        )
        await self._repo._objects.refs.publish_amend(self._branch, info, tip.id)
        self._after_commit(snapshot)
        return encode_id(snapshot.id)

    amend = sync_twin(amend_async)

    async def flush_async(self, message: str, *, metadata: dict[str, Any] | None = None) -> str:
        """Write a detached snapshot (no branch moves); the session becomes read-only."""
        if isinstance(self, ForkSession):
            raise SessionStateError("cannot flush a forked session", ErrorKind.COMMIT_NOT_ALLOWED)
        self._require_can_commit("flush")
        props = self._commit_metadata(metadata)
        snapshot, _ = await self._write_commit_objects(message, props)
        info = SnapshotInfoRecord(snapshot.id, self._base_id, snapshot.flushed_at, message, props)
        await self._repo._objects.refs.publish_detached(info)
        self._after_commit(snapshot)
        return encode_id(snapshot.id)

    flush = sync_twin(flush_async)

    async def rebase_async(self, solver: ConflictSolver) -> None:
        """Move the session's base to the branch tip, replaying the commits in between."""
        from icechunk._core.conflicts import rebase_steps

        if self._branch is None:
            raise SessionStateError(
                "only sessions attached to a branch can rebase", ErrorKind.COMMIT_NOT_ALLOWED
            )
        steps = rebase_steps(self._repo._objects, self._branch, self._tree, self._changes, solver)
        async for tree in steps:
            self._tree = tree

    rebase = sync_twin(rebase_async)

    def _require_can_commit(self, what: str) -> None:
        if (
            isinstance(self, ForkSession)
            or self._mode != SessionMode.writable
            or self._pickled_view
        ):
            raise SessionStateError(
                f"{what}s are not allowed on read-only or forked sessions: merge forks into "
                "the session they came from and commit there",
                ErrorKind.COMMIT_NOT_ALLOWED,
            )

    def _commit_metadata(self, metadata: dict[str, Any] | None) -> dict[str, Any]:
        if metadata is not None and not isinstance(metadata, dict):
            raise _metadata_error(f"commit metadata must be a dict, got {type(metadata).__name__}")
        props = dict(self._repo.default_commit_metadata())
        props.update(metadata or {})
        _check_metadata_keys(props, "metadata")
        try:
            normalized = json.loads(json.dumps(props, allow_nan=False))
        except (TypeError, ValueError) as e:
            raise _metadata_error(f"commit metadata must be JSON-serializable: {e}") from None
        assert isinstance(normalized, dict)
        # encode now, so anything the on-disk encoding refuses fails before a byte is written
        encode_json_value(normalized, self._repo.spec_version)
        return normalized

    def _after_commit(self, snapshot: Snapshot) -> None:
        self._tree = self._repo._objects.tree_for(snapshot)
        self._changes = ChangeSet()
        self._fork_base = None
        self._branch = None
        self._mode = SessionMode.readonly
        self._committed = True

    async def _write_commit_objects(
        self, message: str, props: dict[str, Any], tx_parent: bytes | None = None
    ) -> tuple[Snapshot, TransactionLog]:
        """Write this session's commit objects; see :func:`icechunk._core.commit.write_commit`."""
        from icechunk._core.commit import write_commit

        live = [node for node in map(self._node, self._all_paths()) if node is not None]
        return await write_commit(
            self._repo._objects,
            self._tree,
            self._changes,
            live,
            message=message,
            props=props,
            rewrite=rewrites_manifests(self),
            tx_parent=tx_parent,
        )

    # -- async twins needed by integrations ------------------------------------------------

    async def all_virtual_chunk_locations_async(self) -> list[str]:
        """Every distinct URL the virtual chunks of this session point to, sorted.

        Reads each array's manifests once and applies the staged changes, all columnar (no
        Python object per reference, so millions of references take a fraction of a second).
        """
        from icechunk._core.chunk_refs import pick, rows_in, staged_columns
        from icechunk.format.model import ChunkKind

        out: set[str | None] = set()
        for path, is_array in self.list_nodes():
            if not is_array:
                continue
            node = self._node(path)
            assert node is not None
            bounds = node.meta.num_chunks
            ndim = len(bounds)
            # the staged layers, top-most first: a coordinate counts in the first that has it
            staged = np.zeros((0, ndim), dtype=np.uint32)
            for cs in self._layers():
                writes = cs.chunks.get(node.node_id)
                if not writes:
                    continue
                coords, refs = staged_columns(writes, ndim)
                if refs.location:
                    keep = (refs.kind == ChunkKind.VIRTUAL) & ~rows_in(refs.coords, staged)
                    out.update(pick(refs.location, np.flatnonzero(keep)))
                staged = np.concatenate([staged, coords])
            if node.base is None or node.base.array is None:
                continue
            for mref in node.base.array.manifests:
                index = await self._repo._objects.manifest_index(
                    mref.object_id, node.node_id, self._tree.manifest_files.get(mref.object_id)
                )
                if index is None or not index.refs.location:
                    continue
                refs = index.refs
                keep = refs.kind == ChunkKind.VIRTUAL
                if ndim:
                    keep &= (refs.coords < np.asarray(bounds, dtype=np.uint64)).all(axis=1)
                if len(staged):
                    keep &= ~rows_in(refs.coords, staged)
                out.update(pick(refs.location, np.flatnonzero(keep)))
        out.discard(None)
        from icechunk.virtual import absolute_locations

        return sorted(
            absolute_locations(self._repo.config, {loc for loc in out if loc is not None})
        )

    all_virtual_chunk_locations = sync_twin(all_virtual_chunk_locations_async)

    def chunk_coordinates(
        self, array_path: str, batch_size: int = 1000
    ) -> Iterable[tuple[int, ...]]:
        """Coordinates of every initialized chunk of the array at ``array_path``, sorted."""
        return sync(self.list_chunks(_normalize_path(array_path)))


_BULK_MIN_REFS = 256
"""Batches of virtual refs at least this large are staged as columns (``set_chunk_refs``)."""


def _normalize_path(path: str) -> str:
    path = path.strip("/")
    return "/" + path if path else "/"


class _MetadataError(InvalidInputError, TypeError):
    """Bad commit metadata: an :class:`InvalidInputError` that is also a ``TypeError``."""


def _metadata_error(message: str) -> _MetadataError:
    return _MetadataError(message, ErrorKind.INVALID_METADATA)


def _check_metadata_keys(value: object, where: str) -> None:
    """Refuse non-string keys anywhere in commit metadata: JSON would silently turn ``{1: x}``
    into ``{"1": x}`` (and ``True`` into ``"true"``), so the stored metadata would differ."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _metadata_error(
                    f"commit metadata keys must be strings, got {key!r} "
                    f"({type(key).__name__}) in {where}; convert it, e.g. str({key!r})"
                )
            _check_metadata_keys(item, f"{where}[{key!r}]")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_metadata_keys(item, f"{where}[{i}]")


class ForkSession(Session):
    """A picklable writable session whose changes are merged back into its parent.

    Commits and flushes are refused: merge forks into the session they came from and commit
    there. ``branch`` is ``None``.
    """

    def merge(self, *others: ForkSession, on_overlap: str = "warn") -> None:
        for other in others:
            if not isinstance(other, ForkSession):
                raise SessionStateError(
                    "a ForkSession can only merge other ForkSessions; merge forks into the "
                    "writable Session instead",
                    ErrorKind.MERGE_NOT_ALLOWED,
                )
        super().merge(*others, on_overlap=on_overlap)
