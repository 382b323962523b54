"""S3 credential values and the ``s3_*_credentials`` helpers that build them."""

from __future__ import annotations

import dataclasses
from abc import ABC
from collections.abc import Callable
from datetime import datetime

from icechunk.storage._credentials_base import (
    _HOME,
    _check_instance,
    _check_pickled,
    _conflict,
    _pickled,
    _Refreshable,
    register_variants,
)


@dataclasses.dataclass(frozen=True, slots=True)
class S3StaticCredentials:
    """S3 credentials: a key pair, an optional session token and an optional expiry.

    What a ``get_credentials`` callable returns, and what :class:`S3Credentials.Static` wraps.
    ``expires_after`` is a datetime after which the callable is asked again (a naive one is read
    as UTC); ``None`` means the credentials never expire.
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


class S3Credentials(ABC):  # noqa: B024 - an ABC only so that the variants register as subclasses
    """Credentials for an S3 storage backend: one of the nested variants."""

    __slots__ = ()

    @dataclasses.dataclass(frozen=True)
    class FromEnv:
        """Uses credentials from the environment (``AWS_*`` variables, instance metadata)."""

    @dataclasses.dataclass(frozen=True)
    class Anonymous:
        """Does not sign requests (public buckets)."""

    @dataclasses.dataclass(frozen=True)
    class Static:
        """Uses the given :class:`S3StaticCredentials`."""

        _0: S3StaticCredentials

        def __post_init__(self) -> None:
            _check_instance("S3Credentials.Static", self._0, S3StaticCredentials)

        def __repr__(self) -> str:
            return f"S3Credentials.Static({self._0!r})"

    @dataclasses.dataclass(frozen=True, repr=False)
    class Refreshable(_Refreshable):
        """Credentials from a pickled callable returning :class:`S3StaticCredentials`.

        ``current``, when given, is returned the first time credentials are needed (and used
        until it expires); after that the callable is asked.
        """

        pickled_function: bytes
        current: S3StaticCredentials | None

        def __post_init__(self) -> None:
            _check_pickled("S3Credentials.Refreshable", self.pickled_function)
            if self.current is not None:
                _check_instance("S3Credentials.Refreshable", self.current, S3StaticCredentials)

        def __repr__(self) -> str:
            return f"S3Credentials.Refreshable(<pickled function>, current={self.current!r})"


register_variants(S3Credentials)
S3StaticCredentials.__module__ = _HOME

AnyS3Credential = (
    S3Credentials.Static
    | S3Credentials.Anonymous
    | S3Credentials.FromEnv
    | S3Credentials.Refreshable
)

# Earlier names of this package.
S3AnonymousCredentials = S3Credentials.Anonymous
S3FromEnvCredentials = S3Credentials.FromEnv
S3RefreshableCredentials = S3Credentials.Refreshable


def s3_static_credentials(
    *,
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None = None,
    expires_after: datetime | None = None,
) -> S3Credentials.Static:
    """Fixed S3 credentials (an ``S3Credentials.Static``)."""
    return S3Credentials.Static(
        S3StaticCredentials(access_key_id, secret_access_key, session_token, expires_after)
    )


def s3_anonymous_credentials() -> S3Credentials.Anonymous:
    """Unsigned S3 requests (public buckets)."""
    return S3Credentials.Anonymous()


def s3_from_env_credentials() -> S3Credentials.FromEnv:
    """S3 credentials from the environment (``AWS_*`` variables, instance metadata)."""
    return S3Credentials.FromEnv()


def s3_refreshable_credentials(
    get_credentials: Callable[[], S3StaticCredentials], scatter_initial_credentials: bool = False
) -> S3Credentials.Refreshable:
    """S3 credentials from a picklable callable returning :class:`S3StaticCredentials`.

    The callable is asked again when the credentials it returned expire. With
    ``scatter_initial_credentials`` it is called once now and its answer travels with every
    pickled copy (until it expires).

    Raises
    ------
    TypeError
        ``get_credentials`` is not a picklable callable.
    """
    pickled = _pickled("s3_refreshable_credentials", get_credentials)
    return S3Credentials.Refreshable(
        pickled, get_credentials() if scatter_initial_credentials else None
    )


def s3_credentials(
    *,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    expires_after: datetime | None = None,
    anonymous: bool | None = None,
    from_env: bool | None = None,
    get_credentials: Callable[[], S3StaticCredentials] | None = None,
    scatter_initial_credentials: bool = False,
) -> AnyS3Credential:
    """S3 credentials from exactly one source; with no arguments, from the environment.

    Raises
    ------
    InvalidInputError
        (a ``ValueError``) ``Conflicting arguments to s3_credentials function``: several sources, half a key pair,
        or a session token / expiry without keys (as the real one).
    """
    static_part = (
        access_key_id is not None
        or secret_access_key is not None
        or session_token is not None
        or expires_after is not None
    )
    if (
        (from_env is None or from_env)
        and not static_part
        and not anonymous
        and get_credentials is None
    ):
        return s3_from_env_credentials()
    if anonymous and not static_part and not from_env and get_credentials is None:
        return s3_anonymous_credentials()
    if get_credentials is not None and not static_part and not from_env and not anonymous:
        return s3_refreshable_credentials(get_credentials, scatter_initial_credentials)
    if (
        access_key_id
        and secret_access_key
        and not from_env
        and not anonymous
        and get_credentials is None
    ):
        return s3_static_credentials(
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            session_token=session_token,
            expires_after=expires_after,
        )
    raise _conflict("s3_credentials")
