"""Credential values for the cloud storages and the virtual chunk containers.

Plain values, importable without obstore, shaped like the real Icechunk's PyO3 classes: one
outer class per kind (:class:`S3Credentials`, :class:`GcsCredentials`, :class:`AzureCredentials`,
:class:`GcsStaticCredentials`, :class:`AzureStaticCredentials`,
:class:`AzureRefreshableCredential`, :class:`Credentials`) whose variants are nested classes
(``S3Credentials.Static(...)``); ``isinstance(variant, Outer)`` holds, as in the real one. The
``*_credentials`` helpers that build them live here too (re-exported by
:mod:`icechunk.credentials`). Unlike the real ones these values pickle: a storage holding them
must travel to worker processes. The backend that consumes them converts them
(``icechunk.storage._obstore``).
"""

from __future__ import annotations

import dataclasses
from abc import ABC

from icechunk.storage._credential_bridge import _CredentialBridge  # noqa: F401 - re-exported
from icechunk.storage._credentials_azure import (
    AnyAzureCredential,
    AnyAzureRefreshableCredential,  # noqa: F401 - re-exported
    AnyAzureStaticCredential,
    AzureCredentials,
    AzureRefreshableCredential,
    AzureStaticCredentials,
    azure_anonymous_credentials,
    azure_credentials,
    azure_from_env_credentials,
    azure_refreshable_credentials,
    azure_static_credentials,
)
from icechunk.storage._credentials_base import (
    StoreKind,
    _check_instance,
    expiry_utc,
    refreshable_function,
    register_variants,
    wrapped_credentials,
)
from icechunk.storage._credentials_gcs import (
    AnyGcsCredential,
    AnyGcsStaticCredential,
    GcsBearerCredential,
    GcsCredentials,
    GcsStaticCredentials,
    gcs_anonymous_credentials,
    gcs_credentials,
    gcs_from_env_credentials,
    gcs_refreshable_credentials,
    gcs_static_credentials,
)
from icechunk.storage._credentials_s3 import (
    AnyS3Credential,
    S3AnonymousCredentials,
    S3Credentials,
    S3FromEnvCredentials,
    S3RefreshableCredentials,
    S3StaticCredentials,
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
    "S3AnonymousCredentials",
    "S3Credentials",
    "S3FromEnvCredentials",
    "S3RefreshableCredentials",
    "S3StaticCredentials",
    "StoreKind",
    "azure_anonymous_credentials",
    "azure_credentials",
    "azure_from_env_credentials",
    "azure_refreshable_credentials",
    "azure_static_credentials",
    "expiry_utc",
    "refreshable_function",
    "wrapped_credentials",
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


class Credentials(ABC):  # noqa: B024
    """Credentials of a virtual chunk container, of any kind (see ``containers_credentials``)."""

    __slots__ = ()

    @dataclasses.dataclass(frozen=True)
    class S3:
        """S3 credentials (an :class:`S3Credentials` variant)."""

        _0: AnyS3Credential

        def __post_init__(self) -> None:
            _check_instance("Credentials.S3", self._0, S3Credentials)

    @dataclasses.dataclass(frozen=True)
    class Gcs:
        """GCS credentials (a :class:`GcsCredentials` variant)."""

        _0: AnyGcsCredential

        def __post_init__(self) -> None:
            _check_instance("Credentials.Gcs", self._0, GcsCredentials)

    @dataclasses.dataclass(frozen=True)
    class Azure:
        """Azure credentials (an :class:`AzureCredentials` variant)."""

        _0: AnyAzureCredential

        def __post_init__(self) -> None:
            _check_instance("Credentials.Azure", self._0, AzureCredentials)

    @dataclasses.dataclass(frozen=True)
    class LocalFileSystemAccess:
        """Authorizes a ``file://`` container, which needs no credentials."""

        def __repr__(self) -> str:
            return "icechunk.credentials.LocalFileSystemAccess"

    @dataclasses.dataclass(frozen=True)
    class HttpAccess:
        """Authorizes an ``http(s)://`` container, which needs no credentials."""

        def __repr__(self) -> str:
            return "icechunk.credentials.HttpAccess"


register_variants(Credentials)

AnyCredential = (
    Credentials.S3
    | Credentials.Gcs
    | Credentials.Azure
    | Credentials.LocalFileSystemAccess
    | Credentials.HttpAccess
)
