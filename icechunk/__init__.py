"""icechunk-prefect's pure-Python Icechunk: a transactional, versioned Zarr v3 store.

The public API mirrors the real ``icechunk`` package (2.x, with the 1.x call forms still
accepted); repositories on disk follow the Icechunk format spec (version 2 by default, 1 on
request), so the real library reads what this one writes and the other way round.
"""

import enum as _enum
import importlib.metadata as _metadata
import platform as _platform
from importlib import import_module as _import_module

from icechunk import conflicts, credentials, types
from icechunk._core.change_set import ChunkOverlapWarning
from icechunk._core.conflicts import (
    BasicConflictSolver,
    Conflict,
    ConflictDetector,
    ConflictSolver,
    ConflictType,
    VersionSelection,
)
from icechunk._core.inspect import AncestryGraph
from icechunk._core.maintenance import ChunkStorageStats, GCSummary
from icechunk.attribution import Attribution
from icechunk.config import (
    CachingConfig,
    CompressionAlgorithm,
    CompressionConfig,
    ManifestConfig,
    ManifestPreloadCondition,
    ManifestPreloadConfig,
    ManifestSplitCondition,
    ManifestSplitDimCondition,
    ManifestSplittingConfig,
    ManifestVirtualChunkLocationCompressionConfig,
    RepositoryConfig,
)
from icechunk.credentials import (
    AnyAzureCredential,
    AnyAzureStaticCredential,
    AnyCredential,
    AnyGcsCredential,
    AnyGcsStaticCredential,
    AnyS3Credential,
    AzureCredentials,
    AzureRefreshableCredential,
    AzureStaticCredentials,
    Credentials,
    GcsBearerCredential,
    GcsCredentials,
    GcsStaticCredentials,
    S3Credentials,
    S3StaticCredentials,
    azure_anonymous_credentials,
    azure_credentials,
    azure_from_env_credentials,
    azure_refreshable_credentials,
    azure_static_credentials,
    containers_credentials,
    gcs_credentials,
    gcs_from_env_credentials,
    gcs_refreshable_credentials,
    gcs_static_credentials,
    s3_anonymous_credentials,
    s3_credentials,
    s3_from_env_credentials,
    s3_refreshable_credentials,
    s3_static_credentials,
)
from icechunk.errors import (
    AlreadyExistsError,
    ConflictError,
    ErrorKind,
    FormatError,
    IcechunkError,
    InternalError,
    InvalidInputError,
    NodeNotFoundError,
    NotFoundError,
    ReadOnlyError,
    RebaseFailedError,
    RefNotFoundError,
    RepositoryNotFoundError,
    SessionStateError,
    SnapshotNotFoundError,
    StorageError,
)
from icechunk.logs import initialize_logs, set_logs_filter, shutdown_telemetry
from icechunk.ops import Update, UpdateType
from icechunk.repo_status import FeatureFlag, RepoAvailability, RepoStatus
from icechunk.repository import Repository
from icechunk.session import ChunkType, ForkSession, Session, SessionMode
from icechunk.snapshots import Diff, ManifestFileInfo, SnapshotInfo
from icechunk.storage import (
    ChecksumAlgorithm,
    Storage,
    StorageConcurrencySettings,
    StorageSettings,
    StorageTimeoutSettings,
    http_storage,
    in_memory_storage,
    local_filesystem_storage,
    redirect_storage,
)
from icechunk.store import IcechunkStore
from icechunk.types import CommitMethod
from icechunk.upgrade import upgrade_icechunk_repository
from icechunk.virtual import (
    AnyObjectStoreConfig,
    ObjectStoreConfig,
    S3Options,
    VirtualChunkContainer,
    VirtualChunkModifiedError,
    VirtualChunkSpec,
    azure_store,
    gcs_store,
    http_store,
    local_filesystem_store,
    s3_store,
)

__version__ = "0.1.0"


class SpecVersion(_enum.IntEnum):
    """On-disk format versions."""

    v1 = 1
    v2 = 2

    @staticmethod
    def current() -> "SpecVersion":
        return SpecVersion.v2


def spec_version() -> SpecVersion:
    """The newest on-disk spec version this library writes."""
    return SpecVersion.v2


def supported_spec_versions() -> list[SpecVersion]:
    return [SpecVersion.v2, SpecVersion.v1]


def user_agent() -> str:
    """The user-agent string that identifies this library: ``icechunk-prefect-<version>``.

    (The real library's is ``icechunk-rust-<version>``.)
    """
    return f"icechunk-prefect-{__version__}"


def print_debug_info() -> None:
    """Print the platform, Python, and the versions of this library and its Zarr stack.

    One ``name:  value`` line each, in the real Icechunk's form, for bug reports; packages that
    are not installed (xarray, virtualizarr) are left out.
    """
    print(f"platform:  {_platform.platform()}")
    print(f"python:  {_platform.python_version()}")
    print(f"icechunk:  {__version__}")
    for package in ("zarr", "numcodecs", "xarray", "virtualizarr"):
        try:
            module = _import_module(package)
        except ModuleNotFoundError:
            continue
        version = getattr(module, "__version__", None)
        if version is None:
            try:
                version = _metadata.version(package)
            except _metadata.PackageNotFoundError:
                continue
        print(f"{package}:  {version}")


__all__ = [
    "Attribution",
    "FeatureFlag",
    "RepoAvailability",
    "RepoStatus",
    "upgrade_icechunk_repository",
    "conflicts",
    "credentials",
    "types",
    "CommitMethod",
    "ChecksumAlgorithm",
    "ManifestPreloadCondition",
    "ManifestPreloadConfig",
    "ManifestVirtualChunkLocationCompressionConfig",
    "StorageConcurrencySettings",
    "StorageSettings",
    "StorageTimeoutSettings",
    "print_debug_info",
    "user_agent",
    "ObjectStoreConfig",
    "S3Options",
    "VirtualChunkContainer",
    "VirtualChunkModifiedError",
    "VirtualChunkSpec",
    "azure_store",
    "containers_credentials",
    "gcs_store",
    "http_store",
    "local_filesystem_store",
    "s3_anonymous_credentials",
    "s3_credentials",
    "s3_from_env_credentials",
    "s3_refreshable_credentials",
    "s3_static_credentials",
    "s3_store",
    "AlreadyExistsError",
    "AncestryGraph",
    "BasicConflictSolver",
    "CachingConfig",
    "ChunkOverlapWarning",
    "ChunkStorageStats",
    "ChunkType",
    "CompressionAlgorithm",
    "CompressionConfig",
    "Conflict",
    "ConflictDetector",
    "ConflictError",
    "ConflictSolver",
    "ConflictType",
    "Diff",
    "ErrorKind",
    "ForkSession",
    "FormatError",
    "GCSummary",
    "IcechunkError",
    "IcechunkStore",
    "InternalError",
    "InvalidInputError",
    "ManifestConfig",
    "ManifestFileInfo",
    "ManifestSplitCondition",
    "ManifestSplitDimCondition",
    "ManifestSplittingConfig",
    "NodeNotFoundError",
    "NotFoundError",
    "ReadOnlyError",
    "RebaseFailedError",
    "RefNotFoundError",
    "Repository",
    "RepositoryConfig",
    "RepositoryNotFoundError",
    "Session",
    "SessionMode",
    "SessionStateError",
    "SnapshotInfo",
    "SnapshotNotFoundError",
    "SpecVersion",
    "Storage",
    "StorageError",
    "Update",
    "UpdateType",
    "initialize_logs",
    "set_logs_filter",
    "shutdown_telemetry",
    "VersionSelection",
    "__version__",
    "in_memory_storage",
    "local_filesystem_storage",
    "spec_version",
    "supported_spec_versions",
    "AnyAzureCredential",
    "AnyAzureStaticCredential",
    "AnyCredential",
    "AnyGcsCredential",
    "AnyGcsStaticCredential",
    "AnyObjectStoreConfig",
    "AnyS3Credential",
    "AzureCredentials",
    "AzureStaticCredentials",
    "Credentials",
    "GcsCredentials",
    "GcsStaticCredentials",
    "S3Credentials",
    "azure_anonymous_credentials",
    "azure_credentials",
    "azure_from_env_credentials",
    "azure_refreshable_credentials",
    "azure_static_credentials",
    "gcs_credentials",
    "gcs_from_env_credentials",
    "gcs_refreshable_credentials",
    "gcs_static_credentials",
    "http_storage",
    "redirect_storage",
    "AzureRefreshableCredential",
    "GcsBearerCredential",
    "S3StaticCredentials",
]


_FROM_STORAGE = frozenset(
    {
        "ObjectStoreStorage",
        "StorageRetriesSettings",
        "azure_storage",
        "from_url",
        "gcs_storage",
        "hf_storage",
        "r2_storage",
        "s3_storage",
        "tigris_storage",
    }
)


def __dir__() -> list[str]:
    # The object-store names are loaded on first use but are public names all the same.
    return sorted(set(globals()) | _FROM_STORAGE)


def __getattr__(name: str) -> object:
    # Object-store factories need the optional obstore dependency: import on first use.
    if name in _FROM_STORAGE:
        import icechunk.storage as _storage

        return getattr(_storage, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
