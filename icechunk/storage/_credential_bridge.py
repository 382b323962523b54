"""The bridge from a user's ``get_credentials`` callable to obstore's credential providers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from icechunk.storage._credentials_azure import AzureRefreshableCredential
from icechunk.storage._credentials_base import (
    _HOME,
    StoreKind,
    _check_instance,
    _Refreshable,
    expiry_utc,
    refreshable_function,
)
from icechunk.storage._credentials_gcs import GcsBearerCredential
from icechunk.storage._credentials_s3 import S3Credentials, S3StaticCredentials


class _CredentialBridge:
    """Adapts a user's ``get_credentials`` callable to obstore's credential-provider protocol.

    Picklable if the user's callable is. With ``initial`` (``scatter_initial_credentials``) the
    first credentials travel with every pickled copy and are used until they expire.
    """

    def __init__(self, kind: StoreKind, fetch: Callable[[], Any], initial: Any = None) -> None:
        self.kind = kind
        self.fetch = fetch
        self.initial = initial

    @classmethod
    def of(cls, kind: StoreKind, credentials: _Refreshable) -> _CredentialBridge:
        """The bridge for a ``*.Refreshable`` credential value."""
        return cls(kind, refreshable_function(credentials), credentials.current)

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
            if isinstance(creds, S3Credentials.Static):
                creds = creds._0
            _check_instance("get_credentials (S3)", creds, S3StaticCredentials)
            return {
                "access_key_id": creds.access_key_id,
                "secret_access_key": creds.secret_access_key,
                "token": creds.session_token,
                "expires_at": expires,
            }
        if self.kind == "gcs":
            _check_instance("get_credentials (GCS)", creds, GcsBearerCredential)
            return {"token": creds.bearer, "expires_at": expires}
        if isinstance(creds, AzureRefreshableCredential.AccessKey):
            return {"access_key": creds.key, "expires_at": expires}
        if isinstance(creds, AzureRefreshableCredential.SasToken):
            return {"sas_token": creds.token, "expires_at": expires}
        _check_instance("get_credentials (Azure)", creds, AzureRefreshableCredential.BearerToken)
        return {"token": creds.bearer, "expires_at": expires}


_CredentialBridge.__module__ = _HOME
