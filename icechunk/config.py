"""Repository configuration.

Mirrors the real Icechunk's ``icechunk.config`` classes. A field left at ``None`` means "use the
built-in default"; the effective value is available through the ``effective_*`` helpers.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

from icechunk.manifest_preload import (
    ManifestPreloadCondition,
    ManifestPreloadConfig,
    ManifestVirtualChunkLocationCompressionConfig,
)
from icechunk.manifest_split import (
    MAX_SPLIT_SIZE,
    ManifestSplitCondition,
    ManifestSplitDimCondition,
    ManifestSplittingConfig,
)
from icechunk.storage import StorageSettings

__all__ = [
    "CachingConfig",
    "CompressionAlgorithm",
    "CompressionConfig",
    "ManifestConfig",
    "ManifestPreloadCondition",
    "ManifestPreloadConfig",
    "ManifestVirtualChunkLocationCompressionConfig",
    "MAX_SPLIT_SIZE",
    "ManifestSplitCondition",
    "ManifestSplitDimCondition",
    "ManifestSplittingConfig",
    "RepositoryConfig",
    "StorageSettings",
]

DEFAULT_INLINE_CHUNK_THRESHOLD_BYTES = 512
DEFAULT_NUM_UPDATES_PER_REPO_INFO_FILE = 1000
DEFAULT_MAX_CONCURRENT_REQUESTS = 256


class CompressionAlgorithm(Enum):
    Zstd = "zstd"

    @staticmethod
    def default() -> CompressionAlgorithm:
        """The default algorithm: zstd."""
        return CompressionAlgorithm.Zstd


@dataclass
class CompressionConfig:
    """Compression of metadata files (always zstd; ``level`` defaults to 3)."""

    algorithm: CompressionAlgorithm | None = None
    level: int | None = None

    @staticmethod
    def default() -> CompressionConfig:
        return CompressionConfig()


@dataclass
class CachingConfig:
    num_snapshot_nodes: int | None = None
    num_chunk_refs: int | None = None
    num_transaction_changes: int | None = None
    num_bytes_attributes: int | None = None
    num_bytes_chunks: int | None = None

    @staticmethod
    def default() -> CachingConfig:
        """All sizes at their defaults."""
        return CachingConfig()


@dataclass
class ManifestConfig:
    preload: ManifestPreloadConfig | None = None
    splitting: ManifestSplittingConfig | None = None
    virtual_chunk_location_compression: ManifestVirtualChunkLocationCompressionConfig | None = None
    max_concurrent_manifest_fetches_during_commit: int | None = None


@dataclass
class RepositoryConfig:
    """Configuration of a repository handle; see the real Icechunk's ``RepositoryConfig``."""

    inline_chunk_threshold_bytes: int | None = None
    get_partial_values_concurrency: int | None = None
    compression: CompressionConfig | None = None
    max_concurrent_requests: int | None = None
    caching: CachingConfig | None = None
    storage: StorageSettings | None = None
    virtual_chunk_containers: dict[str, Any] | None = None
    manifest: ManifestConfig | None = None
    repo_update_retries: Any = None
    num_updates_per_repo_info_file: int | None = None
    max_concurrent_decodes: int | None = None
    _extra: dict[str, Any] = field(default_factory=dict, repr=False, init=False)

    @staticmethod
    def default() -> RepositoryConfig:
        return RepositoryConfig()

    @property
    def previous_file(self) -> str | None:
        """The real Icechunk's internal ``previous_file`` field of a persisted config (``None``
        unless a persisted config carried one)."""
        value = self._extra.get("previous_file")
        return None if value is None else str(value)

    def merge(self, other: RepositoryConfig) -> RepositoryConfig:
        """A new config: ``other``'s set fields over this one's."""
        out = copy.deepcopy(self)
        for f in fields(other):
            value = getattr(other, f.name)
            if value is not None and f.name != "_extra":
                setattr(out, f.name, copy.deepcopy(value))
        return out

    # -- effective values -------------------------------------------------------------------

    @property
    def effective_inline_chunk_threshold_bytes(self) -> int:
        if self.inline_chunk_threshold_bytes is None:
            return DEFAULT_INLINE_CHUNK_THRESHOLD_BYTES
        return self.inline_chunk_threshold_bytes

    @property
    def effective_num_updates_per_repo_info_file(self) -> int:
        if self.num_updates_per_repo_info_file is None:
            return DEFAULT_NUM_UPDATES_PER_REPO_INFO_FILE
        return self.num_updates_per_repo_info_file

    @property
    def effective_compression_level(self) -> int:
        if self.compression is None or self.compression.level is None:
            return 3
        return self.compression.level

    @property
    def splitting(self) -> ManifestSplittingConfig | None:
        return None if self.manifest is None else self.manifest.splitting

    def set_virtual_chunk_container(self, cont: Any) -> None:
        if self.virtual_chunk_containers is None:
            self.virtual_chunk_containers = {}
        self.virtual_chunk_containers[cont.url_prefix] = cont

    def get_virtual_chunk_container(self, name: str) -> Any:
        return (self.virtual_chunk_containers or {}).get(name)

    def clear_virtual_chunk_containers(self) -> None:
        self.virtual_chunk_containers = {}
