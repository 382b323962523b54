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
import random
import warnings
from typing import TYPE_CHECKING, Any

from icechunk._core.cache import default_cache
from icechunk._core.change_set import (
    MAX_OVERLAPS,
    ChangeSet,
    ChunkOverlapWarning,
    overlap_message,
)
from icechunk._core.commit import write_commit
from icechunk._core.manifest_writer import rewrites_manifests
from icechunk._session_base import (
    ChunkType,
    SessionMode,
    _check_metadata_keys,
    _metadata_error,
    _moved_tree,
    _Owner,
)
from icechunk._session_nodes import SessionNodeMethods
from icechunk._sync import sync, sync_twin
from icechunk.errors import (
    ConflictError,
    ErrorKind,
    ReadOnlyError,
    SessionStateError,
)
from icechunk.format.ids import encode_id
from icechunk.format.metadata import encode_json_value
from icechunk.format.model import (
    Snapshot,
    SnapshotInfoRecord,
    TransactionLog,
)
from icechunk.snapshots import Diff
from icechunk.store import IcechunkStore

if TYPE_CHECKING:
    from icechunk._core.conflicts import ConflictSolver

__all__ = ["ChunkType", "ForkSession", "Session", "SessionMode"]

_JITTER = random.Random()
"""Private RNG for retry jitter: a library must not draw from (or disturb) the global one."""


class Session(SessionNodeMethods):
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
        self._overlaps: tuple[str, ...] = ()
        """For forks: overlapping chunk writes found by merges into this fork, reported
        when the fork is merged into a non-fork session (tree reductions run on workers)."""
        self._moves: list[tuple[str, str]] = []
        """Rearrange sessions: the moves asked for, in order (replayed on a rebase)."""

    @property
    def store(self) -> IcechunkStore[Session]:
        """A zarr v3 store over this session (a new, cheap :class:`IcechunkStore` each time)."""
        return IcechunkStore(self)

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
            "moves": self._moves,
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
        self._overlaps = tuple(state.get("overlaps", ()))
        self._moves = []
        for src, dst in state.get("moves", ()):
            self._tree = _moved_tree(self._tree, src, dst)
            self._moves.append((src, dst))

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    # -- status ---------------------------------------------------------------------------

    def status(self) -> Diff:
        """The uncommitted changes, as a :class:`Diff`."""
        diff = Diff()
        diff.moved_nodes = [(m.from_path, m.to_path) for m in self._net_moves()]
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
        self._overlaps = ()
        if self._moves:
            self._moves = []
            self._tree = self._repo._objects.tree_for(self._tree.snapshot)

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

    async def merge_async(self, *others: ForkSession, on_overlap: str = "warn") -> None:
        """Async twin of :meth:`merge`."""
        self.merge(*others, on_overlap=on_overlap)

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
        if on_overlap not in ("warn", "error", "ignore"):
            raise ValueError(f"on_overlap must be 'warn', 'error' or 'ignore', not {on_overlap!r}")
        # One pass over the forks (hundreds, from workers, each in memory not touched yet):
        # check them, collect their change sets and the overlaps found by merges that already
        # happened inside them (on workers).
        base_id = self._base_id
        forks: list[Session] = []
        fork_changes: list[ChangeSet] = []
        found: list[str] = []
        restructured = False
        for fork in others:
            if fork is self:
                continue
            if not isinstance(fork, Session):
                raise TypeError(
                    f"merge expects ForkSession objects, received {type(fork).__name__!r}"
                )
            if fork._base_id != base_id:
                raise SessionStateError(
                    f"cannot merge a session based on snapshot {fork.snapshot_id} into one "
                    f"based on {self.snapshot_id}: forks must come from this session (or one "
                    "with the same base snapshot)",
                    ErrorKind.MERGE_NOT_ALLOWED,
                )
            forks.append(fork)
            theirs = fork._changes
            fork_changes.append(theirs)
            if fork._overlaps:
                found += fork._overlaps
            if theirs.nodes or theirs.deleted:
                restructured = True
        if found and on_overlap == "error":
            raise SessionStateError(overlap_message(found), ErrorKind.MERGE_CONFLICT)
        # All or nothing: one merge checks before it changes anything; several are first
        # rehearsed on a copy, so a conflict with the n-th fork leaves this session untouched.
        # The real pass then updates the change set in place (never swapping it out, so
        # writes made meanwhile by other threads through this session are kept).
        # The rehearsal is skipped when no merge can fail: forks that only wrote chunks, into
        # a session that deleted nothing, without on_overlap="error" (the distributed-write
        # case: hundreds of forks from workers).
        can_fail = (
            on_overlap == "error"
            or restructured
            or bool(self._changes.deleted)
            or (self._fork_base is not None and bool(self._fork_base.deleted))
        )
        rehearse = len(forks) > 1 and can_fail
        if rehearse:
            rehearsal = self._changes.copy()
            for other in forks:
                found += rehearsal.merge(
                    other._changes,
                    on_overlap=on_overlap,
                    base=self._fork_base,
                    other_base=other._fork_base,
                    node_path=self._node_path,
                )
        changes, fork_base = self._changes, self._fork_base
        if not rehearse and changes.absorb_disjoint_forks(fork_changes, fork_base):
            forks = []  # all folded in at once: nothing could overlap
        for other in forks:
            if not rehearse and changes.absorb_disjoint_chunks(other._changes, fork_base):
                continue  # only chunks no one else wrote: nothing to check
            found_here = self._changes.merge(
                other._changes,
                on_overlap="ignore" if rehearse else on_overlap,
                base=self._fork_base,
                other_base=other._fork_base,
                node_path=self._node_path,
            )
            if not rehearse:
                found += found_here
        if not found or on_overlap == "ignore":
            return
        if isinstance(self, ForkSession):
            # report where the user merges into their session (usually not on this worker)
            self._overlaps = (*self._overlaps, *found)[: MAX_OVERLAPS + 1]
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
                await self._repo._objects.refs.publish_commit(
                    self._branch, info, self._base_id, rearrange=bool(self._moves)
                )
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

    commit = sync_twin(commit_async, here=True)

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
        await self._repo._objects.refs.publish_amend(
            self._branch, info, tip.id, rearrange=bool(self._moves)
        )
        self._after_commit(snapshot)
        return encode_id(snapshot.id)

    amend = sync_twin(amend_async, here=True)

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

    flush = sync_twin(flush_async, here=True)

    async def rebase_async(self, solver: ConflictSolver) -> None:
        """Move the session's base to the branch tip, replaying the commits in between."""
        from icechunk._core.conflicts import rebase_steps

        if self._branch is None:
            raise SessionStateError(
                "only sessions attached to a branch can rebase", ErrorKind.COMMIT_NOT_ALLOWED
            )
        steps = rebase_steps(self._repo._objects, self._branch, self._tree, self._changes, solver)
        try:
            async for tree in steps:
                self._tree = tree
        finally:
            if self._moves:
                # a rearrange session: show its (new) base with its moves applied again
                self._replay_moves()

    rebase = sync_twin(rebase_async)

    def _require_can_commit(self, what: str) -> None:
        if (
            isinstance(self, ForkSession)
            or self._mode == SessionMode.readonly
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
        if not props:
            return props  # nothing to check (the common case: no metadata at all)
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
        self._moves = []
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
            moves=self._net_moves(),
        )


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
