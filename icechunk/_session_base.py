"""What every :class:`icechunk.session.Session` method works on: its state and node lookups.

:class:`SessionBase` is the base class of ``Session`` (through the method groups
:mod:`icechunk._session_nodes` and :mod:`icechunk._session_chunks`); ``ChunkType`` and
``SessionMode`` are re-exported by :mod:`icechunk.session`.
"""

from __future__ import annotations

import numbers
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Protocol

from icechunk._core.change_set import (
    ChangeSet,
)
from icechunk._core.tree import Node, ReadTree
from icechunk._core.zarr_metadata import parse_node_metadata
from icechunk.errors import (
    ErrorKind,
    InvalidInputError,
    ReadOnlyError,
    SessionStateError,
)
from icechunk.format.ids import encode_id
from icechunk.rearrange import apply_move
from icechunk.storage.base import Storage

if TYPE_CHECKING:
    from icechunk._core.objects import RepoObjects
    from icechunk.config import RepositoryConfig


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


class SessionBase:
    """A session's state (set by ``Session.__init__``), its read-only properties and node lookups."""

    # Slots keep the state inside the object: merging hundreds of forks reads each one's
    # change set without a dictionary lookup in memory the merge has not touched yet.
    __slots__ = (
        "__weakref__",
        "_branch",
        "_changes",
        "_committed",
        "_fork_base",
        "_mode",
        "_moves",
        "_overlaps",
        "_pickled_view",
        "_repo",
        "_tree",
    )

    _repo: _Owner
    _tree: ReadTree
    _branch: str | None
    _mode: SessionMode
    _changes: ChangeSet
    _fork_base: ChangeSet | None
    _pickled_view: bool
    _committed: bool
    _overlaps: tuple[str, ...]
    _moves: list[tuple[str, str]]

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
        """Whether anything is staged (nodes, metadata, chunks, or moves)."""
        return bool(self._moves) or not self._changes.is_empty()

    @property
    def config(self) -> Any:
        """The repository configuration in effect for this session."""
        return self._repo.config

    @property
    def _base_id(self) -> bytes:
        return self._tree.snapshot.id

    # -- state checks ---------------------------------------------------------------------

    def _require_writable(self) -> None:
        if self._mode == SessionMode.rearrange:
            raise SessionStateError(
                "This session was created to rearrange the hierarchy, other write operations "
                "cannot be executed. Commit or abandon the sessions and create a regular "
                "writable session",
                ErrorKind.REARRANGE_SESSION_ONLY,
            )
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


_BULK_MIN_REFS = 256
"""Batches of virtual refs at least this large are staged as columns (``set_chunk_refs``)."""


def _moved_tree(tree: ReadTree, from_path: str, to_path: str) -> ReadTree:
    """A private copy of ``tree`` with one move applied (see :func:`icechunk.rearrange.apply_move`)."""
    by_path = apply_move(tree.by_path, from_path, to_path)
    out = ReadTree.__new__(ReadTree)
    out.snapshot = tree.snapshot
    out.manifest_files = tree.manifest_files
    out.by_path = dict(sorted(by_path.items()))
    out.meta = {}
    return out


def _as_index(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"'{type(value).__name__}' object cannot be interpreted as an integer")
    return int(value)


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
