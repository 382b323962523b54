"""Credentials for ``authorize_virtual_chunk_access`` (see :mod:`icechunk.virtual`).

Values of that mapping, keyed by virtual chunk container URL prefix: the no-auth sentinels
:data:`LocalFileSystemAccess` (``file://``) and :data:`HttpAccess` (``http(s)://``), or S3
credentials from the ``s3_*_credentials`` factories.
"""

from __future__ import annotations

from icechunk.virtual import (
    HttpAccess,
    LocalFileSystemAccess,
    containers_credentials,
    s3_anonymous_credentials,
    s3_credentials,
    s3_from_env_credentials,
    s3_refreshable_credentials,
    s3_static_credentials,
)

__all__ = [
    "HttpAccess",
    "LocalFileSystemAccess",
    "containers_credentials",
    "s3_anonymous_credentials",
    "s3_credentials",
    "s3_from_env_credentials",
    "s3_refreshable_credentials",
    "s3_static_credentials",
]
