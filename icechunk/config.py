"""Repository configuration.

Mirrors the real Icechunk's ``icechunk.config`` classes. A field left at ``None`` means "use the
built-in default"; the effective value is available through the ``effective_*`` helpers.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

from icechunk.errors import ErrorKind, InvalidInputError
from icechunk.manifest_preload import (
    ManifestPreloadCondition,
    ManifestPreloadConfig,
    ManifestVirtualChunkLocationCompressionConfig,
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
    "ManifestSplitCondition",
    "ManifestSplitDimCondition",
    "ManifestSplittingConfig",
    "RepositoryConfig",
    "StorageSettings",
]

DEFAULT_INLINE_CHUNK_THRESHOLD_BYTES = 512
DEFAULT_NUM_UPDATES_PER_REPO_INFO_FILE = 1000
DEFAULT_MAX_CONCURRENT_REQUESTS = 256
MAX_SPLIT_SIZE = 2**32 - 1
"""Largest manifest split size (the real Icechunk's default, meaning "unsplit")."""


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


class ManifestSplitCondition:
    """Which arrays a split size applies to."""

    def __init__(self, kind: str, arg: Any = None) -> None:
        self.kind = kind
        self.arg = arg

    @staticmethod
    def AnyArray() -> ManifestSplitCondition:
        return ManifestSplitCondition("any")

    @staticmethod
    def path_matches(regex: str) -> ManifestSplitCondition:
        return ManifestSplitCondition("path", re.compile(regex))

    @staticmethod
    def name_matches(regex: str) -> ManifestSplitCondition:
        return ManifestSplitCondition("name", re.compile(regex))

    @staticmethod
    def or_conditions(conds: list[ManifestSplitCondition]) -> ManifestSplitCondition:
        return ManifestSplitCondition("or", list(conds))

    @staticmethod
    def and_conditions(conds: list[ManifestSplitCondition]) -> ManifestSplitCondition:
        return ManifestSplitCondition("and", list(conds))

    def __or__(self, other: ManifestSplitCondition) -> ManifestSplitCondition:
        return ManifestSplitCondition.or_conditions([self, other])

    def __and__(self, other: ManifestSplitCondition) -> ManifestSplitCondition:
        return ManifestSplitCondition.and_conditions([self, other])

    def matches(self, path: str) -> bool:
        """Whether the array at absolute ``path`` satisfies this condition."""
        if self.kind == "any":
            return True
        if self.kind == "path":
            return bool(self.arg.search(path))
        if self.kind == "name":
            return bool(self.arg.search(path.rsplit("/", 1)[-1]))
        if self.kind == "or":
            return any(c.matches(path) for c in self.arg)
        if self.kind == "and":
            return all(c.matches(path) for c in self.arg)
        raise ValueError(f"unknown split condition {self.kind!r}")

    def to_json(self) -> Any:
        """The JSON form the real Icechunk records in ``rewrite_manifests`` commits."""
        if self.kind == "any":
            return "any_array"
        if self.kind in ("path", "name"):
            return {f"{self.kind}_matches": {"regex": self.arg.pattern}}
        if self.kind in ("or", "and"):
            return {self.kind: [c.to_json() for c in self.arg]}
        raise ValueError(f"unknown split condition {self.kind!r}")

    def __repr__(self) -> str:
        return f"ManifestSplitCondition.{self.kind}({self.arg!r})"


class ManifestSplitDimCondition:
    """Which dimension of an array a split size applies to."""

    def __init__(self, kind: str, arg: Any = None) -> None:
        self.kind = kind
        self.arg = arg

    @staticmethod
    def Axis(axis: int) -> ManifestSplitDimCondition:
        return ManifestSplitDimCondition("axis", axis)

    @staticmethod
    def DimensionName(regex: str) -> ManifestSplitDimCondition:
        return ManifestSplitDimCondition("name", re.compile(regex))

    @staticmethod
    def Any() -> ManifestSplitDimCondition:
        return ManifestSplitDimCondition("any")

    def matches(self, axis: int, name: str | None) -> bool:
        if self.kind == "axis":
            return bool(axis == self.arg)
        if self.kind == "name":
            return name is not None and bool(self.arg.search(name))
        return True

    def to_json(self) -> str | dict[str, object]:
        """The JSON form the real Icechunk records in ``rewrite_manifests`` commits."""
        if self.kind == "axis":
            return {"Axis": self.arg}
        if self.kind == "name":
            return {"DimensionName": self.arg.pattern}
        return "Any"

    def __repr__(self) -> str:
        return f"ManifestSplitDimCondition.{self.kind}({self.arg!r})"


@dataclass
class ManifestSplittingConfig:
    """Split sizes (in chunks) per array condition and dimension condition.

    The first matching array condition wins; within it, the first matching dimension condition
    gives that dimension's split size. Dimensions with no match are not split. A split size is a
    number of chunks: along that dimension each manifest covers the chunk indices
    ``[k * size, (k + 1) * size)``.

    Raises
    ------
    InvalidInputError
        A split size is not between 1 and 2**32 - 1.
    TypeError
        A split size is not an ``int``.
    """

    split_sizes: list[tuple[ManifestSplitCondition, list[tuple[ManifestSplitDimCondition, int]]]]

    def __post_init__(self) -> None:
        for _, dims in self.split_sizes:
            for dcond, n in dims:
                if isinstance(n, bool) or not isinstance(n, int):
                    raise TypeError(
                        f"manifest split size for {dcond!r} must be an int, got {type(n).__name__}"
                    )
                if not 1 <= n <= MAX_SPLIT_SIZE:
                    raise InvalidInputError(
                        f"manifest split size for {dcond!r} must be between 1 and "
                        f"{MAX_SPLIT_SIZE} chunks, got {n}",
                        ErrorKind.INVALID_ARGUMENT,
                    )

    def to_json(self) -> dict[str, Any]:
        """The JSON form the real Icechunk records under ``"splitting_config"``."""
        return {
            "split_sizes": [
                [cond.to_json(), [{"condition": d.to_json(), "num_chunks": n} for d, n in dims]]
                for cond, dims in self.split_sizes
            ]
        }

    @staticmethod
    def from_dict(
        d: dict[ManifestSplitCondition, dict[ManifestSplitDimCondition, int]],
    ) -> ManifestSplittingConfig:
        return ManifestSplittingConfig([(k, list(v.items())) for k, v in d.items()])

    def to_dict(self) -> dict[ManifestSplitCondition, dict[ManifestSplitDimCondition, int]]:
        return {k: dict(v) for k, v in self.split_sizes}

    def split_sizes_for(
        self, path: str, dimension_names: tuple[str | None, ...] | None, ndim: int
    ) -> tuple[int | None, ...]:
        """Per-dimension split size (``None`` = unsplit) of the array at ``path``."""
        names = dimension_names or (None,) * ndim
        for cond, dims in self.split_sizes:
            if cond.matches(path):
                out: list[int | None] = []
                for axis in range(ndim):
                    size = None
                    for dcond, n in dims:
                        if dcond.matches(axis, names[axis] if axis < len(names) else None):
                            size = n
                            break
                    out.append(size)
                return tuple(out)
        return (None,) * ndim


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
    _extra: dict[str, Any] = field(default_factory=dict, repr=False)

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
    def effective_use_fsync(self) -> bool:
        """Whether local storage makes writes durable (see :class:`StorageSettings`)."""
        settings = self.storage
        return not isinstance(settings, StorageSettings) or settings.effective_use_fsync

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
