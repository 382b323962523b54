"""Where a repository's objects live.

A :class:`Storage` is a handful of async object operations (see :mod:`icechunk.storage.base`);
each backend is one module, reached through a factory function named like the real Icechunk's:

* :func:`in_memory_storage` -- process-local, for tests and scratch work;
* :func:`local_filesystem_storage` -- a directory, safe for concurrent writers in several
  processes of one machine;
* :func:`s3_storage`, :func:`tigris_storage`, :func:`r2_storage`, :func:`hf_storage`,
  :func:`gcs_storage`, :func:`azure_storage` -- cloud object stores through ``obstore`` (the
  ``s3`` extra; imported on first use, so the core works without it);
* :func:`http_storage` (read-only, plain HTTP) and :func:`redirect_storage` (follows a redirect
  to the real location), standard library only;
* :func:`from_url` -- any of the above from a location string (the one parser the command line
  and the pipeline use too).

Layout: the abstract class and value types in :mod:`~icechunk.storage.base`, one module per
backend (:mod:`~icechunk.storage.local`, :mod:`~icechunk.storage.memory`, and the private
``_obstore`` with its ``_factories``), credential values in ``_credentials``, retry settings in
``_settings``, the location parser in ``_url``; this package re-exports the public names.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from icechunk.storage._common import resolve_byte_range
from icechunk.storage._credentials import (
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
    S3AnonymousCredentials,
    S3Credentials,
    S3FromEnvCredentials,
    S3RefreshableCredentials,
    S3StaticCredentials,
    azure_anonymous_credentials,
    azure_credentials,
    azure_from_env_credentials,
    azure_refreshable_credentials,
    azure_static_credentials,
    gcs_anonymous_credentials,
    gcs_credentials,
    gcs_from_env_credentials,
    gcs_refreshable_credentials,
    gcs_static_credentials,
    s3_anonymous_credentials,
    s3_credentials,
    s3_from_env_credentials,
    s3_refreshable_credentials,
    s3_static_credentials,
    wrapped_credentials,
)
from icechunk.storage._settings import (
    ChecksumAlgorithm,
    StorageConcurrencySettings,
    StorageRetriesSettings,
    StorageSettings,
    StorageTimeoutSettings,
)
from icechunk.storage._url import from_url
from icechunk.storage.base import (
    ByteRange,
    IfMatch,
    ObjectInfo,
    OffsetRange,
    PutMode,
    RangeRequest,
    Storage,
    SuffixRange,
    VersionInfo,
    WriteMode,
    register_constructors,
)
from icechunk.storage.http import HttpStorage, RedirectStorage
from icechunk.storage.local import LocalFileSystemStorage
from icechunk.storage.memory import InMemoryStorage

if TYPE_CHECKING:
    from icechunk.storage._factories import (
        azure_storage,
        gcs_storage,
        hf_storage,
        r2_storage,
        s3_storage,
        s3_storage_from_options,
        tigris_storage,
    )
    from icechunk.storage._obstore import ObjectStoreStorage

_LAZY = {
    "ObjectStoreStorage": "icechunk.storage._obstore",
    "azure_storage": "icechunk.storage._factories",
    "gcs_storage": "icechunk.storage._factories",
    "s3_storage": "icechunk.storage._factories",
    "tigris_storage": "icechunk.storage._factories",
    "r2_storage": "icechunk.storage._factories",
    "hf_storage": "icechunk.storage._factories",
    "s3_storage_from_options": "icechunk.storage._factories",
}


def _lazy_constructor(module: str, name: str) -> Callable[..., Storage]:
    """A constructor that imports its object-store backend module on first call."""

    def construct(*args: Any, **kwargs: Any) -> Storage:
        import importlib

        result: Storage = getattr(importlib.import_module(module), name)(*args, **kwargs)
        return result

    return construct


register_constructors(
    new_s3=_lazy_constructor("icechunk.storage._factories", "new_s3"),
    new_tigris=_lazy_constructor("icechunk.storage._factories", "new_tigris"),
    new_r2=_lazy_constructor("icechunk.storage._factories", "new_r2"),
    new_gcs=_lazy_constructor("icechunk.storage._factories", "new_gcs"),
    new_hf=_lazy_constructor("icechunk.storage._factories", "new_hf"),
    new_azure_blob=_lazy_constructor("icechunk.storage._factories", "new_azure_blob"),
    InMemoryStorage=InMemoryStorage,
    LocalFileSystemStorage=LocalFileSystemStorage,
    HttpStorage=HttpStorage,
    RedirectStorage=RedirectStorage,
)


def __getattr__(name: str) -> Any:
    # The object-store backends need obstore (an optional dependency): import them on first use.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AnyAzureCredential",
    "AnyAzureStaticCredential",
    "AnyCredential",
    "AnyGcsCredential",
    "AnyGcsStaticCredential",
    "AnyS3Credential",
    "AzureCredentials",
    "AzureRefreshableCredential",
    "AzureStaticCredentials",
    "ByteRange",
    "ChecksumAlgorithm",
    "Credentials",
    "GcsBearerCredential",
    "GcsCredentials",
    "GcsStaticCredentials",
    "HttpStorage",
    "IfMatch",
    "InMemoryStorage",
    "LocalFileSystemStorage",
    "ObjectInfo",
    "ObjectStoreStorage",
    "OffsetRange",
    "PutMode",
    "RangeRequest",
    "RedirectStorage",
    "S3AnonymousCredentials",
    "S3Credentials",
    "S3FromEnvCredentials",
    "S3RefreshableCredentials",
    "S3StaticCredentials",
    "Storage",
    "StorageConcurrencySettings",
    "StorageRetriesSettings",
    "StorageSettings",
    "StorageTimeoutSettings",
    "SuffixRange",
    "VersionInfo",
    "WriteMode",
    "apply_settings",
    "azure_anonymous_credentials",
    "azure_credentials",
    "azure_from_env_credentials",
    "azure_refreshable_credentials",
    "azure_static_credentials",
    "azure_storage",
    "from_url",
    "gcs_anonymous_credentials",
    "gcs_credentials",
    "gcs_from_env_credentials",
    "gcs_refreshable_credentials",
    "gcs_static_credentials",
    "gcs_storage",
    "hf_storage",
    "http_storage",
    "in_memory_storage",
    "local_filesystem_storage",
    "r2_storage",
    "redirect_storage",
    "resolve_byte_range",
    "s3_anonymous_credentials",
    "s3_credentials",
    "s3_from_env_credentials",
    "s3_refreshable_credentials",
    "s3_static_credentials",
    "s3_storage",
    "s3_storage_from_options",
    "wrapped_credentials",
    "tigris_storage",
]


def in_memory_storage() -> Storage:
    """Return a new, empty storage held in this process's memory.

    The data is shared with pickled copies loaded in the same process. A copy loaded in another
    process raises :class:`~icechunk.errors.StorageError` on first use; use
    :func:`local_filesystem_storage` when several processes need the repository.
    """
    return InMemoryStorage()


def local_filesystem_storage(path: str | os.PathLike[str]) -> Storage:
    """Return storage rooted at the directory ``path``.

    The directory is created on the first write, not by this call. Writes are atomic and
    durable, and compare-and-swap is safe across processes on one machine (see
    :mod:`icechunk.storage.local`).

    Parameters
    ----------
    path
        The repository directory; a relative path is made absolute now.
    """
    return LocalFileSystemStorage(path)


def http_storage(
    base_url: str,
    opts: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Storage:
    """Read-only storage of a repository published by a web server under ``base_url``.

    Parameters
    ----------
    base_url
        The absolute ``http://`` or ``https://`` URL of the repository root.
    opts
        Transport options (``timeout`` in seconds is honoured; see
        :class:`~icechunk.storage.http.HttpStorage`).
    headers
        HTTP headers sent with every request, e.g. ``{"authorization": "Bearer <token>"}``.

    Raises
    ------
    StorageError
        ``base_url`` is not an absolute http(s) URL.
    """
    return HttpStorage(base_url, opts, headers)


def redirect_storage(base_url: str) -> Storage:
    """Storage found by following the HTTP redirects of ``base_url`` (resolved on first use).

    The server answers with a 3xx whose ``Location`` names the storage (``s3://``, ``gs://``,
    ``az://``, ``r2://``, ``tigris://``, ``http+icechunk://``...); see
    :class:`~icechunk.storage.http.RedirectStorage`.

    Raises
    ------
    StorageError
        ``base_url`` is not an absolute URL (now); the redirect cannot be followed (on use).
    """
    return RedirectStorage(base_url)


def apply_settings(storage: Storage, settings: StorageSettings | None) -> Storage:
    """``storage`` configured with ``settings`` (retries, timeouts, concurrency): a copy for
    the object-store backend, ``storage`` itself for the others (nothing to tune)."""
    configured = getattr(storage, "configured", None)
    if settings is None or configured is None:
        return storage
    result: Storage = configured(settings)
    return result
