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
    """Stable error codes: the real Icechunk 2.3.0's, then this library's own.

    Append-only: never rename or remove a member. The real library's codes come first, in its
    order. Then the codes this library had before it matched the real list: those with an exact
    real equivalent are aliases of it (same value, ``ErrorKind.STORAGE is
    ErrorKind.STORAGE_OTHER``); the rest name failures the real library reports with a generic
    code or does not have, and are listed as deliberate extras in the public-surface test.
    """

    # conflicts
    COMMIT_CONFLICT = "commit-conflict"
    BRANCH_UPDATE_CONFLICT = "branch-update-conflict"
    REBASE_FAILED = "rebase-failed"
    CONFIG_UPDATED = "config-updated"
    REPO_INFO_UPDATED = "repo-info-updated"
    UPDATE_ATTEMPTS_EXHAUSTED = "update-attempts-exhausted"
    GC_DELETES_FAILING = "gc-deletes-failing"
    # not found
    NODE_NOT_FOUND = "node-not-found"
    ANCESTOR_NODE_NOT_FOUND = "ancestor-node-not-found"
    CHUNK_NOT_FOUND = "chunk-not-found"
    KEY_NOT_FOUND = "key-not-found"
    SNAPSHOT_NOT_FOUND = "snapshot-not-found"
    NO_SNAPSHOT_AT_TIME = "no-snapshot-at-time"
    REF_NOT_FOUND = "ref-not-found"
    BRANCH_NOT_FOUND = "branch-not-found"
    TAG_NOT_FOUND = "tag-not-found"
    REPOSITORY_NOT_FOUND = "repository-not-found"
    MANIFEST_INFO_NOT_FOUND = "manifest-info-not-found"
    # already exists
    NODE_ALREADY_EXISTS = "node-already-exists"
    BRANCH_ALREADY_EXISTS = "branch-already-exists"
    TAG_ALREADY_EXISTS = "tag-already-exists"
    TAG_PREVIOUSLY_DELETED = "tag-previously-deleted"
    MOVE_WONT_OVERWRITE = "move-wont-overwrite"
    # read only
    READ_ONLY_SESSION = "read-only-session"
    READ_ONLY_STORE = "read-only-store"
    READ_ONLY_STORAGE = "read-only-storage"
    READ_ONLY_REPOSITORY = "read-only-repository"
    # invalid input
    INVALID_KEY = "invalid-key"
    INVALID_CHUNK_INDEX = "invalid-chunk-index"
    ZERO_LENGTH_CHUNK = "zero-length-chunk"
    INVALID_MANIFEST_SPLIT_INDEX = "invalid-manifest-split-index"
    INVALID_REF_TYPE = "invalid-ref-type"
    INVALID_REF_NAME = "invalid-ref-name"
    INVALID_SNAPSHOT_ID = "invalid-snapshot-id"
    INVALID_PATH = "invalid-path"
    BAD_KEY_PREFIX = "bad-key-prefix"
    BAD_METADATA = "bad-metadata"
    BAD_PREFIX = "bad-prefix"
    NOT_AN_ARRAY = "not-an-array"
    NOT_A_GROUP = "not-a-group"
    INVALID_BYTE_RANGE = "invalid-byte-range"
    INVALID_COMMIT_CONFIGURATION = "invalid-commit-configuration"
    INVALID_ARRAY_METADATA = "invalid-array-metadata"
    INVALID_FEATURE_FLAG = "invalid-feature-flag"
    INVALID_VIRTUAL_REF = "invalid-virtual-ref"
    INVALID_CREDENTIALS = "invalid-credentials"
    NO_CONTAINER_FOR_VIRTUAL_CHUNK = "no-container-for-virtual-chunk"
    UNAUTHORIZED_VIRTUAL_CHUNK_CONTAINER = "unauthorized-virtual-chunk-container"
    EMPTY_PREFIX_CREATION = "empty-prefix-creation"
    PARENT_DIRECTORY_NOT_CLEAN = "parent-directory-not-clean"
    BAD_SNAPSHOT_CHAIN_FOR_DIFF = "bad-snapshot-chain-for-diff"
    # session/repository state
    COMMIT_NOT_ALLOWED = "commit-not-allowed"
    MERGE_NOT_ALLOWED = "merge-not-allowed"
    CANNOT_FORK_READ_ONLY_SESSION = "cannot-fork-read-only-session"
    REARRANGE_SESSION_ONLY = "rearrange-session-only"
    NON_REARRANGE_SESSION = "non-rearrange-session"
    MOVE_INTO_SELF_OR_DESCENDANT = "move-into-self-or-descendant"
    MOVE_DESTINATION_PARENT_MISSING = "move-destination-parent-missing"
    MOVE_DESTINATION_PARENT_NOT_GROUP = "move-destination-parent-not-group"
    NO_CHANGES_TO_COMMIT = "no-changes-to-commit"
    NO_AMEND_FOR_INITIAL_COMMIT = "no-amend-for-initial-commit"
    NOT_ON_BRANCH = "not-on-branch"
    NO_SNAPSHOT = "no-snapshot"
    CANNOT_DELETE_MAIN = "cannot-delete-main"
    UNCOMMITTED_CHANGES = "uncommitted-changes"
    MERGE_FAILED = "merge-failed"
    NOT_ALLOWED = "not-allowed"
    UNIMPLEMENTED = "unimplemented"
    REBASE_TX_LOG_PRUNED = "rebase-tx-log-pruned"
    FEATURE_FLAG_DISABLED = "feature-flag-disabled"
    TAG_ERROR = "tag-error"
    INVALID_REPOSITORY_MIGRATION = "invalid-repository-migration"
    # storage / environment
    OBJECT_NOT_FOUND = "object-not-found"
    OBJECT_STORE = "object-store"
    IO = "io"
    STORAGE_CONFIG = "storage-config"
    CANNOT_PARSE_URL = "cannot-parse-url"
    BAD_REDIRECT = "bad-redirect"
    SEMAPHORE_ACQUIRE = "semaphore-acquire"
    THROTTLED = "throttled"
    STORAGE_OTHER = "storage-other"
    VIRTUAL_CHUNK_FETCH = "virtual-chunk-fetch"
    VIRTUAL_CHUNK_MODIFIED = "virtual-chunk-modified"
    INVALID_OBJECT_SIZE = "invalid-object-size"
    # format
    SERIALIZATION = "serialization"
    DESERIALIZATION = "deserialization"
    CONFIG_DESERIALIZATION = "config-deserialization"
    INVALID_FILE_FORMAT = "invalid-file-format"
    UNSUPPORTED_SPEC_VERSION = "unsupported-spec-version"
    UNSUPPORTED_OPERATION_FOR_VERSION = "unsupported-operation-for-version"
    SNAPSHOT_TIMESTAMP = "snapshot-timestamp"
    DUPLICATE_SNAPSHOT_ID = "duplicate-snapshot-id"
    # internal
    CONCURRENCY = "concurrency"
    FLUSH = "flush"
    PARTIAL_VALUES_PANIC = "partial-values-panic"
    CONFLICTING_PATH_NOT_FOUND = "conflicting-path-not-found"
    INCONSISTENT_MANIFESTS = "inconsistent-manifests"
    POISON_LOCK = "poison-lock"
    PICKLE = "pickle"
    UNKNOWN = "unknown"
    # this library's own codes: aliases of the real ones above
    FEATURE_DISABLED = "feature-flag-disabled"
    REPO_READ_ONLY = "read-only-repository"
    STORAGE = "storage-other"
    FORMAT = "invalid-file-format"
    INTERNAL = "unknown"
    # this library's own codes without a real equivalent
    INVALID_ARGUMENT = "invalid-argument"
    INVALID_METADATA = "invalid-metadata"
    AMEND_NOT_ALLOWED = "amend-not-allowed"
    MERGE_CONFLICT = "merge-conflict"
    OBJECT_ALREADY_EXISTS = "object-already-exists"
    PRECONDITION_FAILED = "precondition-failed"
    UNKNOWN_FORMAT_FIELDS = "unknown-format-fields"


class IcechunkError(Exception):
    """Base class of every error this library raises on purpose.

    Parameters
    ----------
    message
        Human-readable text: what went wrong and, where possible, what to do.
    kind
        Stable machine-readable code; defaults to the class's own (the real library defaults
        every class to ``"unknown"``; ours names the failure more precisely).

    Attributes
    ----------
    message
        The text given, also what ``str(error)`` returns.
    kind
        The :class:`ErrorKind`; a :class:`str`, so it compares equal to the code's text.
    """

    _default_kind: ErrorKind = ErrorKind.INTERNAL
    message: str
    kind: ErrorKind

    def __init__(self, message: str, kind: ErrorKind | str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.kind = ErrorKind(kind) if kind is not None else self._default_kind

    def __repr__(self) -> str:
        # The real library's form: icechunk.StorageError(message="...", kind="...")
        return f'icechunk.{type(self).__name__}(message="{self.message}", kind="{self.kind}")'

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

    _default_kind = ErrorKind.COMMIT_CONFLICT
    expected_parent: str | None
    actual_parent: str | None

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

    _default_kind = ErrorKind.REBASE_FAILED
    snapshot: str
    conflicts: list[Conflict]

    def __init__(self, snapshot: str, conflicts: list[Conflict]) -> None:
        super().__init__(
            message=f"Rebase failed on snapshot {snapshot}: {len(conflicts)} conflicts found",
            kind=ErrorKind.REBASE_FAILED,
        )
        self.snapshot = snapshot
        self.conflicts = list(conflicts)


class NotFoundError(IcechunkError, KeyError):
    """Something named does not exist. Also a :class:`KeyError`."""

    _default_kind = ErrorKind.OBJECT_NOT_FOUND

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


class NodeNotFoundError(NotFoundError):
    _default_kind = ErrorKind.NODE_NOT_FOUND


class SnapshotNotFoundError(NotFoundError):
    _default_kind = ErrorKind.SNAPSHOT_NOT_FOUND


class RefNotFoundError(NotFoundError):
    _default_kind = ErrorKind.REF_NOT_FOUND


class RepositoryNotFoundError(NotFoundError):
    _default_kind = ErrorKind.REPOSITORY_NOT_FOUND


class ObjectNotFoundError(NotFoundError):
    """A storage object (file, S3 object) does not exist."""

    _default_kind = ErrorKind.OBJECT_NOT_FOUND


class AlreadyExistsError(IcechunkError):
    _default_kind = ErrorKind.OBJECT_ALREADY_EXISTS


class ReadOnlyError(IcechunkError):
    _default_kind = ErrorKind.READ_ONLY_STORE


class InvalidInputError(IcechunkError, ValueError):
    """Bad arguments. Nothing was written. Also a :class:`ValueError`."""

    _default_kind = ErrorKind.INVALID_ARGUMENT


class SessionStateError(IcechunkError):
    _default_kind = ErrorKind.COMMIT_NOT_ALLOWED


class StorageError(IcechunkError):
    """The storage backend failed: environmental and often transient."""

    _default_kind = ErrorKind.STORAGE


class PreconditionFailedError(StorageError):
    """A conditional write (create-only or if-match) lost its race."""

    _default_kind = ErrorKind.PRECONDITION_FAILED


class FormatError(IcechunkError):
    """An on-disk object is corrupt, truncated, or of a kind this library cannot read."""

    _default_kind = ErrorKind.FORMAT


class InternalError(IcechunkError):
    _default_kind = ErrorKind.INTERNAL
