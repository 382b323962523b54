"""Credential values for the cloud storages and the virtual chunk containers.

Plain frozen values, importable without obstore: what a user's ``get_credentials`` callable
returns (:class:`S3StaticCredentials`, :class:`GcsBearerCredential`,
:class:`AzureRefreshableCredential`) and the S3 credential sources that
:mod:`icechunk.credentials` builds (:class:`S3AnonymousCredentials`,
:class:`S3FromEnvCredentials`, :class:`S3RefreshableCredentials`). A new credential type goes
here; the backend that consumes it converts it (``icechunk.storage._obstore``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

__all__ = [
    "AzureRefreshableCredential",
    "GcsBearerCredential",
    "S3AnonymousCredentials",
    "S3FromEnvCredentials",
    "S3RefreshableCredentials",
    "S3StaticCredentials",
    "StoreKind",
    "expiry_utc",
]

type StoreKind = Literal["s3", "gcs", "azure"]
"""The cloud object stores a credential can be for."""


@dataclasses.dataclass(frozen=True, slots=True)
class S3StaticCredentials:
    """S3 credentials returned by a ``get_credentials`` callable (as ``icechunk.credentials``).

    ``expires_after`` is a timezone-aware datetime after which the callable is asked again;
    ``None`` means the credentials never expire.
    """

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    expires_after: datetime | None = None

    def __repr__(self) -> str:
        return (
            f"S3StaticCredentials(access_key_id={self.access_key_id!r}, secret_access_key='***', "
            f"session_token={'***' if self.session_token else None}, "
            f"expires_after={self.expires_after!r})"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class GcsBearerCredential:
    """A GCS OAuth bearer token returned by a ``get_credentials`` callable."""

    bearer: str
    expires_after: datetime | None = None

    def __repr__(self) -> str:
        return f"GcsBearerCredential(bearer='***', expires_after={self.expires_after!r})"


@dataclasses.dataclass(frozen=True, slots=True)
class AzureRefreshableCredential:
    """An Azure credential returned by a ``get_credentials`` callable.

    ``kind`` is ``"access_key"``, ``"sas_token"`` or ``"bearer_token"``.
    """

    kind: Literal["access_key", "sas_token", "bearer_token"]
    value: str
    expires_after: datetime | None = None

    def __repr__(self) -> str:
        return f"AzureRefreshableCredential({self.kind!r}, '***', {self.expires_after!r})"


@dataclasses.dataclass(frozen=True)
class S3AnonymousCredentials:
    """Send unsigned S3 requests (public buckets)."""


@dataclasses.dataclass(frozen=True)
class S3FromEnvCredentials:
    """Take S3 credentials from the environment (``AWS_*`` variables, instance metadata)."""


@dataclasses.dataclass(frozen=True)
class S3RefreshableCredentials:
    """S3 credentials from a picklable callable returning :class:`S3StaticCredentials`.

    The callable is asked again when the credentials it returned expire; with
    ``scatter_initial_credentials`` its first answer travels with every pickled copy.
    """

    get_credentials: Callable[[], Any]
    scatter_initial_credentials: bool = False


def expiry_utc(value: datetime | None) -> datetime | None:
    """``value`` made timezone-aware (a naive datetime is read as UTC); ``None`` stays ``None``."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class _CredentialBridge:
    """Adapts a user's ``get_credentials`` callable to obstore's credential-provider protocol.

    Picklable if the user's callable is. With ``initial`` (``scatter_initial_credentials``) the
    first credentials travel with every pickled copy and are used until they expire.
    """

    def __init__(self, kind: StoreKind, fetch: Callable[[], Any], initial: Any = None) -> None:
        self.kind = kind
        self.fetch = fetch
        self.initial = initial

    def __reduce__(self) -> tuple[Any, ...]:
        return (_CredentialBridge, (self.kind, self.fetch, self.initial))

    def __repr__(self) -> str:
        return f"<credentials from {getattr(self.fetch, '__qualname__', 'a callable')}>"

    def __call__(self) -> Any:
        creds = self.initial
        if creds is not None:
            expires = expiry_utc(getattr(creds, "expires_after", None))
            if expires is not None and expires <= datetime.now(UTC) + timedelta(seconds=10):
                creds = None
            self.initial = None  # used once per process; later calls ask the callable
        if creds is None:
            creds = self.fetch()
        return self._convert(creds)

    def _convert(self, creds: Any) -> dict[str, Any]:
        if isinstance(creds, Mapping):
            return dict(creds)  # already in obstore's shape
        expires = expiry_utc(getattr(creds, "expires_after", None))
        if self.kind == "s3":
            return {
                "access_key_id": creds.access_key_id,
                "secret_access_key": creds.secret_access_key,
                "token": getattr(creds, "session_token", None),
                "expires_at": expires,
            }
        if self.kind == "gcs":
            return {"token": creds.bearer, "expires_at": expires}
        field = {"access_key": "access_key", "sas_token": "sas_token"}.get(creds.kind, "token")
        return {field: creds.value, "expires_at": expires}
