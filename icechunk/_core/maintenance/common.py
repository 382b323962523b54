"""Shared by expiration, GC and statistics: result types, cutoffs, retries, progress."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

from icechunk._core.refs import RefStoreV2
from icechunk.errors import (
    ErrorKind,
    IcechunkError,
    InvalidInputError,
    ReadOnlyError,
)
from icechunk.format.model import (
    SnapshotInfoRecord,
)

if TYPE_CHECKING:
    from icechunk._core.objects import RepoObjects


type Progress = Callable[[str, int, int], None]
"""Progress callback: ``(phase, done, total)``. Called on the thread running the operation."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_ATTEMPTS: Final = 20
"""How many times expiration or GC start again after the ``repo`` object (or, in spec 1, a ref)
changed under them before giving up."""
_DELETE_BATCH: Final = 500
_MAX_ERRORS_KEPT: Final = 10
_PHASES: Final = ("snapshots", "transaction_logs", "manifests", "chunks")


# ---------------------------------------------------------------------------------------------
# value objects


@dataclass(frozen=True, slots=True)
class GCSummary:
    """What a garbage collection deleted (or, in a dry run, would delete).

    ``bytes_deleted`` sums the listed sizes of every deleted object. ``attributes_deleted`` is
    always 0: the current format has no attribute files. A failed delete request counts its
    objects in ``objects_failed_to_delete`` (they stay garbage for the next run), keeps up to ten
    distinct messages in ``delete_errors``, and skips the later phases (``skipped_phases``, among
    ``"transaction_logs"``, ``"manifests"``, ``"chunks"``) so objects are always deleted in a
    safe order. ``throttled_batches`` is always 0: throttling is retried by the storage layer.
    """

    bytes_deleted: int = 0
    chunks_deleted: int = 0
    manifests_deleted: int = 0
    snapshots_deleted: int = 0
    attributes_deleted: int = 0
    transaction_logs_deleted: int = 0
    objects_failed_to_delete: int = 0
    throttled_batches: int = 0
    delete_errors: list[str] = field(default_factory=list)
    skipped_phases: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = ["<icechunk.ops.GCSummary>"]
        lines += [f"{f.name}: {getattr(self, f.name)}" for f in dataclasses.fields(self)]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class ChunkStorageStats:
    """Bytes of chunk data referenced by the snapshots reachable from branches and tags.

    Native chunks are counted once per chunk object, virtual chunks once per
    ``(location, offset, length)``, inline chunks once per manifest that holds them.
    """

    native_bytes: int = 0
    """Chunks stored as objects in the repository (``chunks/``)."""
    virtual_bytes: int = 0
    """Chunks referenced in external objects."""
    inlined_bytes: int = 0
    """Chunks stored inside manifests."""

    def non_virtual_bytes(self) -> int:
        """Native plus inline bytes: roughly the chunk data stored in the repository itself."""
        return self.native_bytes + self.inlined_bytes

    def total_bytes(self) -> int:
        """Native plus virtual plus inline bytes."""
        return self.native_bytes + self.virtual_bytes + self.inlined_bytes

    def __add__(self, other: ChunkStorageStats) -> ChunkStorageStats:
        if not isinstance(other, ChunkStorageStats):
            return NotImplemented
        return ChunkStorageStats(
            self.native_bytes + other.native_bytes,
            self.virtual_bytes + other.virtual_bytes,
            self.inlined_bytes + other.inlined_bytes,
        )

    def __str__(self) -> str:
        return (
            "<icechunk.stats.ChunkStorageStats>\n"
            f"native_bytes: {self.native_bytes}\n"
            f"virtual_bytes: {self.virtual_bytes}\n"
            f"inlined_bytes: {self.inlined_bytes}"
        )


# ---------------------------------------------------------------------------------------------
# argument checking


def cutoff_us(value: object, name: str) -> int:
    """``value`` (a datetime; naive ones are taken as UTC) as microseconds since the epoch.

    Raises
    ------
    InvalidInputError
        ``value`` is not a :class:`datetime.datetime`.
    """
    if not isinstance(value, datetime):
        raise InvalidInputError(
            f"`{name}` must be a datetime.datetime, got {type(value).__name__}",
            ErrorKind.INVALID_ARGUMENT,
        )
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // timedelta(microseconds=1)


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(
            f"`{name}` must be a positive integer, got {value!r}", ErrorKind.INVALID_ARGUMENT
        )
    return value


class _Restart(Exception):
    """Internal: the refs changed under the operation; compute everything again."""


async def _require_online(repo: RepoObjects, what: str) -> None:
    refs = repo.refs
    if isinstance(refs, RefStoreV2):
        status = (await refs.read()).status
        if status.availability != 0:
            raise ReadOnlyError(
                f"cannot {what}: the repository is not online; "
                f"reason: {status.reason or 'none given'}",
                ErrorKind.REPO_READ_ONLY,
            )


def _collapse(
    by_id: dict[bytes, SnapshotInfoRecord],
    rec: SnapshotInfoRecord,
    is_boundary: Callable[[SnapshotInfoRecord], bool],
) -> tuple[bytes | None, tuple[bytes, ...] | None]:
    """Cut ``rec``'s ancestors out of its path up to the first one ``is_boundary`` accepts.

    Returns the boundary's id (``None`` when the walk reached the end of the history without
    finding one) and the new ``pruned_ancestor_tx_logs`` of ``rec``: oldest first, each cut
    ancestor's own pruned list followed by its id, then ``rec``'s existing list (its deltas are
    newer than the cut run). ``None`` instead of an empty list, as the format requires.
    """
    cut: list[SnapshotInfoRecord] = []
    boundary: bytes | None = None
    current = rec.parent_id
    while current is not None:
        ancestor = by_id.get(current)
        if ancestor is None:
            break
        if is_boundary(ancestor):
            boundary = ancestor.id
            break
        if len(cut) > len(by_id):
            raise IcechunkError("snapshot history has a cycle", ErrorKind.FORMAT)
        cut.append(ancestor)
        current = ancestor.parent_id
    pruned: list[bytes] = []
    for ancestor in reversed(cut):
        pruned.extend(ancestor.pruned_ancestor_tx_logs or ())
        pruned.append(ancestor.id)
    pruned.extend(rec.pruned_ancestor_tx_logs or ())
    return boundary, (tuple(pruned) if pruned else None)
