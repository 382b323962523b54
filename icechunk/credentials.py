"""Credentials for ``authorize_virtual_chunk_access``, keyed by virtual chunk container prefix.

Values are the no-auth sentinels :data:`LocalFileSystemAccess` (``file://`` containers) and
:data:`HttpAccess` (``http(s)://``), or S3 credentials from the ``s3_*_credentials`` factories.
Passing ``None`` still authorizes a container but is deprecated (as in the real Icechunk 2.1+).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from icechunk.errors import ErrorKind, InvalidInputError
from icechunk.storage import (
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
)

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
    "Credentials",
    "GcsBearerCredential",
    "GcsCredentials",
    "GcsStaticCredentials",
    "HttpAccess",
    "LocalFileSystemAccess",
    "S3AnonymousCredentials",
    "S3Credentials",
    "S3FromEnvCredentials",
    "S3RefreshableCredentials",
    "S3StaticCredentials",
    "azure_anonymous_credentials",
    "azure_credentials",
    "azure_from_env_credentials",
    "azure_refreshable_credentials",
    "azure_static_credentials",
    "check_authorizations",
    "containers_credentials",
    "gcs_anonymous_credentials",
    "gcs_credentials",
    "gcs_from_env_credentials",
    "gcs_refreshable_credentials",
    "gcs_static_credentials",
    "s3_anonymous_credentials",
    "s3_credentials",
    "s3_from_env_credentials",
    "s3_refreshable_credentials",
    "s3_static_credentials",
]


def _is_url_prefix(value: object) -> bool:
    return isinstance(value, str) and value.endswith("/")


LocalFileSystemAccess = Credentials.LocalFileSystemAccess()
"""Authorizes a ``file://`` container (local files need no credentials)."""
HttpAccess = Credentials.HttpAccess()
"""Authorizes an ``http(s)://`` container (sent without credentials)."""


def containers_credentials(m: Mapping[str, Any]) -> dict[str, AnyCredential | None]:
    """The ``authorize_virtual_chunk_access`` mapping: container URL prefix -> credentials.

    Each value is wrapped in its :class:`Credentials` variant (an ``S3Credentials`` variant
    becomes ``Credentials.S3(...)``, and so on); the no-auth sentinels and ``None``
    (deprecated) pass through.

    Raises
    ------
    ValueError
        A key is not a string, or a value is not a credential.
    """
    out: dict[str, AnyCredential | None] = {}
    for prefix, cred in m.items():
        if not isinstance(prefix, str):
            raise InvalidInputError(f"container url prefixes must be strings, not {prefix!r}")
        if cred is None or isinstance(cred, Credentials):
            out[prefix] = cred  # type: ignore[assignment]
        elif isinstance(cred, S3Credentials):
            out[prefix] = Credentials.S3(cred)  # type: ignore[arg-type]
        elif isinstance(cred, GcsCredentials):
            out[prefix] = Credentials.Gcs(cred)  # type: ignore[arg-type]
        elif isinstance(cred, AzureCredentials):
            out[prefix] = Credentials.Azure(cred)  # type: ignore[arg-type]
        elif isinstance(cred, S3StaticCredentials):
            out[prefix] = Credentials.S3(S3Credentials.Static(cred))
        else:
            raise InvalidInputError(
                f"Unknown credential type {type(cred)} for container {prefix!r}: pass an "
                "s3_/gcs_/azure_ credential, LocalFileSystemAccess or HttpAccess"
            )
    return out


def check_authorizations(authorized: Mapping[str, Any]) -> None:
    """Validate an ``authorize_virtual_chunk_access`` mapping (keys: container URL prefixes).

    A ``None`` value still authorizes its container but is deprecated, as in the real
    Icechunk 2.1+: a :class:`DeprecationWarning` names the sentinel to pass instead.

    Raises
    ------
    InvalidInputError
        A key is not a URL prefix ending in ``/``.
    """
    for prefix, credentials in authorized.items():
        if not _is_url_prefix(prefix):
            raise InvalidInputError(
                f"authorize_virtual_chunk_access keys are container url prefixes ending in `/`, "
                f"not {prefix!r}",
                ErrorKind.INVALID_ARGUMENT,
            )
        if credentials is None:
            sentinel = (
                "LocalFileSystemAccess"
                if prefix.startswith("file://")
                else "HttpAccess"
                if prefix.startswith(("http://", "https://"))
                else "<credentials>"
            )
            warnings.warn(
                f"Passing `None` in `authorize_virtual_chunk_access` for container `{prefix}` is "
                "deprecated; pass an explicit credential or no-auth sentinel instead, e.g. "
                f"authorize_virtual_chunk_access={{{prefix!r}: "
                f"icechunk.credentials.{sentinel}}}",
                DeprecationWarning,
                stacklevel=4,
            )
