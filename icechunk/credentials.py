"""Credentials for ``authorize_virtual_chunk_access``, keyed by virtual chunk container prefix.

Values are the no-auth sentinels :data:`LocalFileSystemAccess` (``file://`` containers) and
:data:`HttpAccess` (``http(s)://``), or S3 credentials from the ``s3_*_credentials`` factories.
Passing ``None`` still authorizes a container but is deprecated (as in the real Icechunk 2.1+).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from icechunk.errors import ErrorKind, InvalidInputError
from icechunk.storage import (
    S3AnonymousCredentials,
    S3FromEnvCredentials,
    S3RefreshableCredentials,
    S3StaticCredentials,
)

__all__ = [
    "HttpAccess",
    "LocalFileSystemAccess",
    "S3AnonymousCredentials",
    "S3FromEnvCredentials",
    "S3RefreshableCredentials",
    "S3StaticCredentials",
    "check_authorizations",
    "containers_credentials",
    "s3_anonymous_credentials",
    "s3_credentials",
    "s3_from_env_credentials",
    "s3_refreshable_credentials",
    "s3_static_credentials",
]


def _is_url_prefix(value: object) -> bool:
    return isinstance(value, str) and value.endswith("/")


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return f"icechunk.credentials.{self._name}"

    def __reduce__(self) -> str:
        return self._name


LocalFileSystemAccess = _Sentinel("LocalFileSystemAccess")
"""Authorizes a ``file://`` container (local files need no credentials)."""
HttpAccess = _Sentinel("HttpAccess")
"""Authorizes an ``http(s)://`` container (sent without credentials)."""


def s3_static_credentials(
    *,
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None = None,
    expires_after: datetime | None = None,
) -> S3StaticCredentials:
    """Static S3 credentials (an ``S3StaticCredentials``)."""
    return S3StaticCredentials(access_key_id, secret_access_key, session_token, expires_after)


def s3_anonymous_credentials() -> S3AnonymousCredentials:
    """Unsigned S3 requests (public buckets)."""
    return S3AnonymousCredentials()


def s3_from_env_credentials() -> S3FromEnvCredentials:
    """S3 credentials from the environment (``AWS_*`` variables, instance metadata)."""
    return S3FromEnvCredentials()


def s3_refreshable_credentials(
    get_credentials: Callable[[], Any], scatter_initial_credentials: bool = False
) -> S3RefreshableCredentials:
    """S3 credentials from a picklable callable returning ``S3StaticCredentials``."""
    return S3RefreshableCredentials(get_credentials, scatter_initial_credentials)


def s3_credentials(
    *,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    expires_after: datetime | None = None,
    anonymous: bool | None = None,
    from_env: bool | None = None,
    get_credentials: Callable[[], Any] | None = None,
    scatter_initial_credentials: bool = False,
) -> Any:
    """S3 credentials from exactly one source (static keys, anonymous, env or a callable).

    Raises
    ------
    InvalidInputError
        Several sources, or half a key pair, were given.
    """
    given = [
        n
        for n, v in (
            ("static keys", access_key_id or secret_access_key),
            ("anonymous", anonymous),
            ("from_env", from_env),
            ("get_credentials", get_credentials),
        )
        if v
    ]
    if len(given) > 1:
        raise InvalidInputError(f"choose one credential source, not {' and '.join(given)}")
    if access_key_id or secret_access_key:
        if not (access_key_id and secret_access_key):
            raise InvalidInputError("access_key_id and secret_access_key must be given together")
        return s3_static_credentials(
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            session_token=session_token,
            expires_after=expires_after,
        )
    if anonymous:
        return S3AnonymousCredentials()
    if get_credentials is not None:
        return S3RefreshableCredentials(get_credentials, scatter_initial_credentials)
    return S3FromEnvCredentials()


def containers_credentials(m: Mapping[str, Any]) -> dict[str, Any]:
    """The ``authorize_virtual_chunk_access`` mapping: container URL prefix -> credentials."""
    out = dict(m)
    for prefix in out:
        if not isinstance(prefix, str):
            raise InvalidInputError(f"container url prefixes must be strings, not {prefix!r}")
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
