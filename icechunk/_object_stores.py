"""Object store configurations for virtual chunk containers (:class:`ObjectStoreConfig`).

The ``ObjectStoreConfig`` variants, :class:`S3Options`, the ``*_store`` helpers and the URL
schemes each variant can fetch; re-exported by :mod:`icechunk.virtual`, which owns containers
and references (configuration only: fetching lives in :mod:`icechunk._core.virtual_fetch`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "KNOWN_SCHEMES",
    "AnyObjectStoreConfig",
    "ObjectStoreConfig",
    "S3Options",
    "azure_store",
    "gcs_store",
    "http_store",
    "in_memory_store",
    "local_filesystem_store",
    "s3_store",
]


@dataclass(frozen=True)
class S3Options:
    """How to reach an S3 (or S3-compatible) endpoint holding virtual chunks."""

    region: str | None = None
    endpoint_url: str | None = None
    allow_http: bool = False
    anonymous: bool = False
    force_path_style: bool = False
    network_stream_timeout_seconds: int | None = None
    requester_pays: bool = False
    checksum_algorithm: Any = None


class ObjectStoreConfig:
    """Where virtual chunks of a container live: one variant per kind of object store.

    ``ObjectStoreConfig.LocalFileSystem(path)``, ``.S3(options)``, ``.S3Compatible(options)``,
    ``.Tigris(options)``, ``.Http(opts, headers)``, ``.Gcs(opts)``, ``.Azure(account, config)``
    and ``.InMemory()``. Build them with the ``*_store`` helpers. This library reads virtual
    chunks from the local filesystem, S3-compatible stores and HTTP(S) servers.
    """

    @dataclass(frozen=True)
    class LocalFileSystem:
        path: str

    @dataclass(frozen=True)
    class S3:
        options: S3Options = field(default_factory=S3Options)

    @dataclass(frozen=True)
    class S3Compatible:
        options: S3Options = field(default_factory=S3Options)

    @dataclass(frozen=True)
    class Tigris:
        options: S3Options = field(default_factory=S3Options)

    @dataclass(frozen=True)
    class Http:
        opts: Mapping[str, str] | None = None
        headers: Mapping[str, str] | None = None

    @dataclass(frozen=True)
    class Gcs:
        opts: Mapping[str, str] | None = None

    @dataclass(frozen=True)
    class Azure:
        account: str
        config: Mapping[str, str] | None = None

    @dataclass(frozen=True)
    class InMemory:
        pass


AnyObjectStoreConfig = (
    ObjectStoreConfig.InMemory
    | ObjectStoreConfig.LocalFileSystem
    | ObjectStoreConfig.S3
    | ObjectStoreConfig.S3Compatible
    | ObjectStoreConfig.Gcs
    | ObjectStoreConfig.Azure
    | ObjectStoreConfig.Tigris
)
"""Any object store configuration of a virtual chunk container (as the real one lists them)."""
_StoreConfig = AnyObjectStoreConfig | ObjectStoreConfig.Http

_SCHEMES_OF: dict[type, frozenset[str]] = {
    ObjectStoreConfig.LocalFileSystem: frozenset({"file"}),
    ObjectStoreConfig.S3: frozenset({"s3"}),
    ObjectStoreConfig.S3Compatible: frozenset({"s3"}),
    ObjectStoreConfig.Tigris: frozenset({"s3", "tigris"}),
    ObjectStoreConfig.Http: frozenset({"http", "https"}),
    ObjectStoreConfig.Gcs: frozenset({"gs", "gcs"}),
    ObjectStoreConfig.Azure: frozenset({"az", "azure", "abfs"}),
    ObjectStoreConfig.InMemory: frozenset({"memory"}),
}
KNOWN_SCHEMES = frozenset().union(*_SCHEMES_OF.values()) | {"vcc"}
"""URL schemes a virtual reference may use (``vcc://`` names a container)."""


def local_filesystem_store(path: str | os.PathLike[str]) -> ObjectStoreConfig.LocalFileSystem:
    """Virtual chunks in local files under the directory ``path``."""
    return ObjectStoreConfig.LocalFileSystem(os.fspath(path))


def s3_store(
    region: str | None = None,
    endpoint_url: str | None = None,
    allow_http: bool = False,
    anonymous: bool = False,
    s3_compatible: bool = False,
    force_path_style: bool = False,
    network_stream_timeout_seconds: int = 60,
    requester_pays: bool = False,
    checksum_algorithm: Any = None,
) -> ObjectStoreConfig.S3 | ObjectStoreConfig.S3Compatible:
    """Virtual chunks in AWS S3 or, with ``s3_compatible=True``, an S3-compatible server."""
    options = S3Options(
        region,
        endpoint_url,
        allow_http,
        anonymous,
        force_path_style,
        network_stream_timeout_seconds,
        requester_pays,
        checksum_algorithm,
    )
    if s3_compatible:
        return ObjectStoreConfig.S3Compatible(options)
    return ObjectStoreConfig.S3(options)


def http_store(
    opts: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None
) -> ObjectStoreConfig.Http:
    """Virtual chunks on HTTP(S) servers answering range requests.

    ``opts`` are HTTP client options (e.g. ``{"timeout": "30s"}``); ``headers`` are sent with
    every request.
    """
    return ObjectStoreConfig.Http(dict(opts) if opts else None, dict(headers) if headers else None)


def gcs_store(opts: Mapping[str, str] | None = None) -> ObjectStoreConfig.Gcs:
    """Virtual chunks in Google Cloud Storage (configuration only: not readable here yet)."""
    return ObjectStoreConfig.Gcs(dict(opts) if opts else None)


def azure_store(
    *, account: str, config: Mapping[str, str] | None = None
) -> ObjectStoreConfig.Azure:
    """Virtual chunks in Azure Blob storage (configuration only: not readable here yet)."""
    return ObjectStoreConfig.Azure(account, dict(config) if config else None)


def in_memory_store() -> ObjectStoreConfig.InMemory:
    """An in-memory object store (configuration only)."""
    return ObjectStoreConfig.InMemory()
