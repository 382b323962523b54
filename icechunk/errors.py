"""The exception tree, grouped by what a handler would do.

::

    IcechunkError
    ├── ConflictError                  the branch moved; rebase or retry
    │   └── RebaseFailedError          rebase found conflicts the solver could not resolve
    ├── NotFoundError (KeyError)       something named does not exist
    │   ├── NodeNotFoundError
    │   ├── SnapshotNotFoundError
    │   ├── RefNotFoundError
    │   ├── RepositoryNotFoundError
    │   └── ObjectNotFoundError        a storage object is missing
    ├── AlreadyExistsError             a create-only operation met an existing thing
    ├── ReadOnlyError                  a write through a read-only session or store
    ├── InvalidInputError (ValueError) bad arguments; nothing was written
    ├── SessionStateError              the operation does not fit the session's state
    ├── StorageError                   environmental and often transient
    │   └── PreconditionFailedError    a conditional write lost its race
    ├── FormatError                    an on-disk object is corrupt or of an unknown kind
    └── InternalError                  a bug in this library

Every instance carries a stable, machine-readable ``kind`` (an :class:`ErrorKind`). The codes are
the real Icechunk's where it has one; the enum is append-only.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from icechunk.conflict_types import Conflict

__all__ = [
    "AlreadyExistsError",
    "ConflictError",
    "ErrorKind",
    "FormatError",
    "IcechunkError",
    "InternalError",
    "InvalidInputError",
    "NodeNotFoundError",
    "NotFoundError",
    "ObjectNotFoundError",
    "PreconditionFailedError",
    "ReadOnlyError",
    "RebaseFailedError",
    "RefNotFoundError",
    "RepositoryNotFoundError",
    "SessionStateError",
    "SnapshotNotFoundError",
    "StorageError",
]


class ErrorKind(StrEnum):
    """Stable error codes. Append-only: never rename or remove a member."""

    # conflicts
    COMMIT_CONFLICT = "commit-conflict"
    BRANCH_UPDATE_CONFLICT = "branch-update-conflict"
    REBASE_FAILED = "rebase-failed"
    # not found
    NODE_NOT_FOUND = "node-not-found"
    SNAPSHOT_NOT_FOUND = "snapshot-not-found"
    NO_SNAPSHOT_AT_TIME = "no-snapshot-at-time"
    REF_NOT_FOUND = "ref-not-found"
    REPOSITORY_NOT_FOUND = "repository-not-found"
    OBJECT_NOT_FOUND = "object-not-found"
    # already exists
    TAG_ALREADY_EXISTS = "tag-already-exists"
    TAG_PREVIOUSLY_DELETED = "tag-previously-deleted"
    BRANCH_ALREADY_EXISTS = "branch-already-exists"
    NODE_ALREADY_EXISTS = "node-already-exists"
    OBJECT_ALREADY_EXISTS = "object-already-exists"
    # read only
    READ_ONLY_STORE = "read-only-store"
    READ_ONLY_SESSION = "read-only-session"
    REPO_READ_ONLY = "repo-read-only"
    # invalid input
    INVALID_KEY = "invalid-key"
    INVALID_CHUNK_INDEX = "invalid-chunk-index"
    INVALID_REF_NAME = "invalid-ref-name"
    INVALID_SNAPSHOT_ID = "invalid-snapshot-id"
    INVALID_METADATA = "invalid-metadata"
    INVALID_ARGUMENT = "invalid-argument"
    ZERO_LENGTH_CHUNK = "zero-length-chunk"
    PARENT_DIRECTORY_NOT_CLEAN = "parent-directory-not-clean"
    BAD_SNAPSHOT_CHAIN_FOR_DIFF = "bad-snapshot-chain-for-diff"
    UNSUPPORTED_SPEC_VERSION = "unsupported-spec-version"
    # session state
    COMMIT_NOT_ALLOWED = "commit-not-allowed"
    MERGE_NOT_ALLOWED = "merge-not-allowed"
    MERGE_CONFLICT = "merge-conflict"
    CANNOT_FORK_READ_ONLY_SESSION = "cannot-fork-read-only-session"
    NO_CHANGES_TO_COMMIT = "no-changes-to-commit"
    CANNOT_DELETE_MAIN = "cannot-delete-main"
    AMEND_NOT_ALLOWED = "amend-not-allowed"
    FEATURE_DISABLED = "feature-disabled"
    # storage
    STORAGE = "storage"
    PRECONDITION_FAILED = "precondition-failed"
    # format
    FORMAT = "format"
    UNKNOWN_FORMAT_FIELDS = "unknown-format-fields"
    # internal
    INTERNAL = "internal"
    # virtual chunks
    NO_CONTAINER_FOR_VIRTUAL_CHUNK = "no-container-for-virtual-chunk"
    UNAUTHORIZED_VIRTUAL_CHUNK_CONTAINER = "unauthorized-virtual-chunk-container"
    INVALID_VIRTUAL_REF = "invalid-virtual-ref"
    VIRTUAL_CHUNK_MODIFIED = "virtual-chunk-modified"
    INVALID_OBJECT_SIZE = "invalid-object-size"


class IcechunkError(Exception):
    """Base class of every error this library raises on purpose.

    Parameters
    ----------
    message
        Human-readable text: what went wrong and, where possible, what to do.
    kind
        Stable machine-readable code; defaults to the class's ``default_kind``.
    """

    default_kind: ErrorKind = ErrorKind.INTERNAL

    def __init__(self, message: str = "", kind: ErrorKind | str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.kind = ErrorKind(kind) if kind is not None else self.default_kind

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.__dict__.copy()))

    def __str__(self) -> str:
        return self.message


def _rebuild(cls: type[IcechunkError], state: dict[str, Any]) -> IcechunkError:
    err = cls.__new__(cls)
    Exception.__init__(err, state.get("message", ""))
    err.__dict__.update(state)
    return err


class ConflictError(IcechunkError):
    """A commit or compare-and-swap found the branch somewhere else than expected.

    Attributes
    ----------
    expected_parent
        The snapshot the operation was based on.
    actual_parent
        Where the branch actually points now.
    """

    default_kind = ErrorKind.COMMIT_CONFLICT

    def __init__(
        self,
        expected_parent: str | None = None,
        actual_parent: str | None = None,
        message: str | None = None,
        kind: ErrorKind | str | None = None,
    ) -> None:
        if message is None:
            message = (
                f'Failed to commit, expected parent: Some("{expected_parent}"), '
                f'actual parent: Some("{actual_parent}")'
            )
        super().__init__(message, kind)
        self.expected_parent = expected_parent
        self.actual_parent = actual_parent


class RebaseFailedError(ConflictError):
    """Rebase met conflicts the solver could not resolve.

    Attributes
    ----------
    snapshot
        The commit on the branch at which the rebase stopped.
    conflicts
        The conflicts found there.
    """

    default_kind = ErrorKind.REBASE_FAILED

    def __init__(self, snapshot: str, conflicts: list[Conflict]) -> None:
        super().__init__(
            message=f"Rebase failed on snapshot {snapshot}: {len(conflicts)} conflicts found",
            kind=ErrorKind.REBASE_FAILED,
        )
        self.snapshot = snapshot
        self.conflicts = list(conflicts)


class NotFoundError(IcechunkError, KeyError):
    """Something named does not exist. Also a :class:`KeyError`."""

    default_kind = ErrorKind.OBJECT_NOT_FOUND

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


class NodeNotFoundError(NotFoundError):
    default_kind = ErrorKind.NODE_NOT_FOUND


class SnapshotNotFoundError(NotFoundError):
    default_kind = ErrorKind.SNAPSHOT_NOT_FOUND


class RefNotFoundError(NotFoundError):
    default_kind = ErrorKind.REF_NOT_FOUND


class RepositoryNotFoundError(NotFoundError):
    default_kind = ErrorKind.REPOSITORY_NOT_FOUND


class ObjectNotFoundError(NotFoundError):
    """A storage object (file, S3 object) does not exist."""

    default_kind = ErrorKind.OBJECT_NOT_FOUND


class AlreadyExistsError(IcechunkError):
    default_kind = ErrorKind.OBJECT_ALREADY_EXISTS


class ReadOnlyError(IcechunkError):
    default_kind = ErrorKind.READ_ONLY_STORE


class InvalidInputError(IcechunkError, ValueError):
    """Bad arguments. Nothing was written. Also a :class:`ValueError`."""

    default_kind = ErrorKind.INVALID_ARGUMENT


class SessionStateError(IcechunkError):
    default_kind = ErrorKind.COMMIT_NOT_ALLOWED


class StorageError(IcechunkError):
    """The storage backend failed: environmental and often transient."""

    default_kind = ErrorKind.STORAGE


class PreconditionFailedError(StorageError):
    """A conditional write (create-only or if-match) lost its race."""

    default_kind = ErrorKind.PRECONDITION_FAILED


class FormatError(IcechunkError):
    """An on-disk object is corrupt, truncated, or of a kind this library cannot read."""

    default_kind = ErrorKind.FORMAT


class InternalError(IcechunkError):
    default_kind = ErrorKind.INTERNAL
