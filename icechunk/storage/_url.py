"""The one parser from a location string to a :class:`~icechunk.storage.base.Storage`.

The command line (``icechunk <command> LOCATION``), the pipeline (``tasks.core``) and users
(:func:`icechunk.storage.from_url`) all go through :func:`from_url`, so a location means the
same thing everywhere. The object-store backends are imported only for their schemes: local and
in-memory locations work without the ``s3`` extra.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from icechunk.errors import InvalidInputError, StorageError
from icechunk.storage.base import Storage

__all__ = ["OBJECT_STORE_SCHEMES", "SCHEMES", "from_url", "scheme_of"]

_S3 = ("s3", "s3a")
_GCS = ("gs", "gcs")
_AZURE = ("az", "azure", "abfs", "abfss")
OBJECT_STORE_SCHEMES = frozenset({*_S3, *_GCS, *_AZURE})
"""URL schemes served by the object-store backend (the ``s3`` extra)."""
SCHEMES = frozenset({"", "file", "memory", *OBJECT_STORE_SCHEMES})
"""Every scheme :func:`from_url` accepts; ``""`` is a plain filesystem path."""


def scheme_of(location: str | os.PathLike[str]) -> str:
    """The lower-case URL scheme of ``location``; ``""`` for a plain path (no ``://``)."""
    text = os.fspath(location)
    return urlsplit(text).scheme.lower() if "://" in text else ""


def from_url(url: str | os.PathLike[str], **options: Any) -> Storage:
    """The storage a location names.

    Parameters
    ----------
    url
        One of:

        * a filesystem path (no ``://``; ``~`` expanded, made absolute) or ``file:///path``:
          local filesystem storage;
        * ``memory://``: a new in-memory storage;
        * ``s3://bucket/prefix`` (or ``s3a://``), ``gs://bucket/prefix`` (or ``gcs://``),
          ``az://container/prefix`` (``account=`` required) or
          ``abfs://container@account.dfs.core.windows.net/prefix``: a cloud object store.
    **options
        Keyword arguments of the matching factory (:func:`~icechunk.storage.s3_storage`,
        :func:`~icechunk.storage.gcs_storage`, :func:`~icechunk.storage.azure_storage`),
        except the bucket/container and prefix. Local and in-memory storage take none.

    Raises
    ------
    InvalidInputError
        An unsupported scheme, a URL without a bucket or directory, options where the backend
        takes none, or an Azure URL without an account.
    StorageError
        A cloud scheme while the object-store backend (obstore, the ``s3`` extra) is not
        installed.
    """
    text = os.fspath(url)
    scheme = scheme_of(text)
    if scheme not in SCHEMES:
        raise InvalidInputError(
            f"unsupported storage URL {text!r}: use a path, file://, memory://, s3://, gs:// "
            "or az://"
        )
    if scheme in ("", "file", "memory") and options:
        raise InvalidInputError(
            f"{text!r}: {'in-memory' if scheme == 'memory' else 'local'} storage takes no "
            f"options (got {', '.join(sorted(options))})"
        )
    if scheme == "":
        from icechunk.storage.local import LocalFileSystemStorage

        return LocalFileSystemStorage(Path(text).expanduser().absolute())
    parts = urlsplit(text)
    if scheme == "file":
        from icechunk.storage.local import LocalFileSystemStorage

        if not parts.path:
            raise InvalidInputError(f"{text!r} names no directory: write file:///absolute/path")
        return LocalFileSystemStorage(parts.path)
    if scheme == "memory":
        from icechunk.storage.memory import InMemoryStorage

        return InMemoryStorage()
    try:
        from icechunk.storage import _factories
    except ImportError as exc:
        raise StorageError(
            f"{scheme}:// repositories need the object-store backend: "
            f"pip install 'icechunk-prefect[s3]' ({exc})"
        ) from None
    bucket = _bucket(text, parts.netloc)
    path = parts.path.strip("/")
    if scheme in _S3:
        return _factories.s3_storage(bucket=bucket, prefix=path, **options)
    if scheme in _GCS:
        return _factories.gcs_storage(bucket=bucket, prefix=path, **options)
    if "@" in bucket:
        bucket, host = bucket.split("@", 1)
        options.setdefault("account", host.split(".", 1)[0])
    if "account" not in options:
        raise InvalidInputError(f"{text!r}: pass account=... for Azure storage")
    return _factories.azure_storage(container=bucket, prefix=path, **options)


def _bucket(url: str, netloc: str) -> str:
    if not netloc:
        raise InvalidInputError(f"storage URL {url!r} names no bucket")
    return netloc
