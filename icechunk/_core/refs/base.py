"""The ref store interface and what both spec versions share (names, errors, helpers).

Branches, tags and the history of snapshots, for both on-disk spec versions.

Spec 1 keeps one small JSON object per ref (``refs/branch.<name>/ref.json``) and the history in
the snapshots themselves (``parent_id``). Spec 2 keeps all of it in the single mutable ``repo``
object, updated by compare-and-swap with an operations log and backups under ``overwritten/``.
:class:`RefStore` hides the difference behind one interface.
"""

from __future__ import annotations

import random
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

from icechunk.errors import (
    ConflictError,
    ErrorKind,
    FormatError,
    InvalidInputError,
    RefNotFoundError,
    SessionStateError,
    SnapshotNotFoundError,
)
from icechunk.format.ids import encode_id
from icechunk.format.model import (
    Snapshot,
    SnapshotInfoRecord,
    UpdateRecord,
)
from icechunk.storage.base import Storage

__all__ = ["MAIN", "RefStore", "SnapshotLoader", "now_us", "validate_ref_name"]

_JITTER = random.Random()
"""Private RNG for retry jitter: a library must not draw from (or disturb) the global one."""

MAIN = "main"
_YEAR_3000_MS = 32503680000000

type SnapshotLoader = Callable[[bytes], Awaitable[Snapshot]]


def now_us() -> int:
    """Microseconds since the Unix epoch."""
    return time.time_ns() // 1000


def validate_ref_name(name: str) -> None:
    """Reject ref names that cannot be stored safely in both spec versions.

    Raises
    ------
    InvalidInputError
        The name is empty, contains ``/`` or a control character, or is ``.``/``..``.
    """
    if not isinstance(name, str):
        raise InvalidInputError(
            f"invalid ref name {name!r}: expected a string", ErrorKind.INVALID_REF_NAME
        )
    if (
        not name
        or "/" in name
        or name in (".", "..")
        or any(ord(c) < 32 or ord(c) == 127 for c in name)
    ):
        raise InvalidInputError(
            f"invalid ref name `{name}`: names must be non-empty and contain no '/' "
            "or control characters",
            ErrorKind.INVALID_REF_NAME,
        )


def _not_found(name: str) -> RefNotFoundError:
    return RefNotFoundError(f"ref not found `{name}`", ErrorKind.REF_NOT_FOUND)


def _snapshot_not_found(snapshot_id: bytes) -> SnapshotNotFoundError:
    return SnapshotNotFoundError(
        f"snapshot id not found `{encode_id(snapshot_id)}`", ErrorKind.SNAPSHOT_NOT_FOUND
    )


def _info_from_snapshot(snap: Snapshot) -> SnapshotInfoRecord:
    return SnapshotInfoRecord(
        id=snap.id,
        parent_id=snap.parent_id,
        flushed_at=snap.flushed_at,
        message=snap.message,
        metadata=snap.metadata,
    )


class RefStore(ABC):
    """Refs and history of one repository. All methods read fresh state from storage."""

    spec_version: int

    def __init__(self, storage: Storage, load_snapshot: SnapshotLoader) -> None:
        self.storage = storage
        self.load_snapshot = load_snapshot
        self.cas_failures = 0
        """Compare-and-swap writes of refs lost to a concurrent writer (for diagnostics)."""

    # -- reading ----------------------------------------------------------------------------

    @abstractmethod
    async def branches(self) -> dict[str, bytes]:
        """Every branch and the snapshot it points at."""

    @abstractmethod
    async def tags(self) -> dict[str, bytes]:
        """Every live (not deleted) tag and its snapshot."""

    async def branch_tip(self, name: str) -> bytes:
        """The snapshot ``name`` points at; :class:`RefNotFoundError` if there is no such branch."""
        tip = (await self.branches()).get(name)
        if tip is None:
            raise _not_found(name)
        return tip

    async def tag_target(self, name: str) -> bytes:
        target = (await self.tags()).get(name)
        if target is None:
            raise _not_found(name)
        return target

    @abstractmethod
    async def snapshot_info(self, snapshot_id: bytes) -> SnapshotInfoRecord:
        """History record of a snapshot; :class:`SnapshotNotFoundError` if it is unknown."""

    async def ancestry(self, snapshot_id: bytes) -> list[SnapshotInfoRecord]:
        """``snapshot_id`` and its ancestors, newest first, ending at the root."""
        out = []
        current: bytes | None = snapshot_id
        seen: set[bytes] = set()
        while current is not None:
            if current in seen:
                raise FormatError(
                    f"snapshot history has a cycle at {encode_id(current)}", ErrorKind.FORMAT
                )
            seen.add(current)
            info = await self.snapshot_info(current)
            out.append(info)
            current = info.parent_id
        return out

    async def path_between(self, ancestor: bytes, snapshot_id: bytes) -> list[bytes] | None:
        """The snapshots after ``ancestor`` up to ``snapshot_id``, newest first.

        Empty when they are equal; ``None`` when ``ancestor`` is not an ancestor of
        ``snapshot_id``. Stops walking at ``ancestor``, so it costs the length of the path, not
        of the whole history.
        """
        out: list[bytes] = []
        current: bytes | None = snapshot_id
        seen: set[bytes] = set()
        while current is not None:
            if current == ancestor:
                return out
            if current in seen:
                raise FormatError(
                    f"snapshot history has a cycle at {encode_id(current)}", ErrorKind.FORMAT
                )
            seen.add(current)
            out.append(current)
            current = (await self.snapshot_info(current)).parent_id
        return None

    # -- writing ----------------------------------------------------------------------------

    @abstractmethod
    async def create_branch(self, name: str, snapshot_id: bytes) -> None: ...

    @abstractmethod
    async def delete_branch(self, name: str) -> None: ...

    @abstractmethod
    async def reset_branch(
        self, name: str, snapshot_id: bytes, from_snapshot_id: bytes | None
    ) -> None: ...

    @abstractmethod
    async def create_tag(self, name: str, snapshot_id: bytes) -> None: ...

    @abstractmethod
    async def delete_tag(self, name: str) -> None: ...

    @abstractmethod
    async def publish_commit(
        self, branch: str, info: SnapshotInfoRecord, expected_parent: bytes
    ) -> None:
        """Move ``branch`` from ``expected_parent`` to the new snapshot ``info.id``.

        The snapshot object (and its manifests and transaction log) must already be written.

        Raises
        ------
        ConflictError
            The branch no longer points at ``expected_parent``; nothing was published.
        """

    async def publish_amend(
        self, branch: str, info: SnapshotInfoRecord, expected_tip: bytes
    ) -> None:
        raise SessionStateError(
            "amend is only supported in spec version 2 repositories; upgrade the repository to spec version 2 to use it",
            ErrorKind.AMEND_NOT_ALLOWED,
        )

    async def publish_detached(self, info: SnapshotInfoRecord) -> None:
        """Record a snapshot that no ref points at (``Session.flush``)."""
        return

    async def ops_log(self) -> list[UpdateRecord]:
        raise SessionStateError(
            "the operations log exists only in spec version 2 repositories; upgrade the repository to spec version 2 to use it",
            ErrorKind.INVALID_ARGUMENT,
        )

    async def get_metadata(self) -> dict[str, Any]:
        raise SessionStateError(
            "repository metadata exists only in spec version 2 repositories; upgrade the repository to spec version 2 to use it",
            ErrorKind.INVALID_ARGUMENT,
        )

    async def set_metadata(self, metadata: dict[str, Any]) -> None:
        await self.get_metadata()


def _conflict(kind: ErrorKind, expected: bytes, actual: bytes) -> ConflictError:
    if kind == ErrorKind.COMMIT_CONFLICT:
        return ConflictError(encode_id(expected), encode_id(actual))
    return _branch_conflict(expected, actual)


def _branch_conflict(expected: bytes, actual: bytes) -> ConflictError:
    return ConflictError(
        encode_id(expected),
        encode_id(actual),
        message=(
            f"branch update conflict: `(Some({encode_id(expected)})) != "
            f"(Some({encode_id(actual)}))`"
        ),
        kind=ErrorKind.BRANCH_UPDATE_CONFLICT,
    )
