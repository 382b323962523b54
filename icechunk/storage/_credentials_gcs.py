"""GCS credential values and the ``gcs_*_credentials`` helpers that build them."""

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


@dataclasses.dataclass(frozen=True)
class GcsBearerCredential:
    """A GCS OAuth bearer token with an optional expiry (what a ``get_credentials`` returns)."""

    bearer: str
    _: dataclasses.KW_ONLY
    expires_after: datetime | None = None

    def __repr__(self) -> str:
        return f"GcsBearerCredential(bearer='***', expires_after={self.expires_after!r})"


class GcsStaticCredentials(ABC):  # noqa: B024
    """Fixed credentials for Google Cloud Storage: one of the nested variants."""

    __slots__ = ()

    @dataclasses.dataclass(frozen=True)
    class ServiceAccount:
        """A service account JSON file, by path."""

        _0: str

    @dataclasses.dataclass(frozen=True)
    class ServiceAccountKey:
        """A serialized service account key."""

        _0: str

        def __repr__(self) -> str:
            return "GcsStaticCredentials.ServiceAccountKey('***')"

    @dataclasses.dataclass(frozen=True)
    class ApplicationCredentials:
        """An application default credentials (ADC) file, by path."""

        _0: str

    @dataclasses.dataclass(frozen=True)
    class BearerToken:
        """An OAuth bearer token."""

        _0: str

        def __repr__(self) -> str:
            return "GcsStaticCredentials.BearerToken('***')"


class GcsCredentials(ABC):  # noqa: B024
    """Credentials for Google Cloud Storage: one of the nested variants."""

    __slots__ = ()

    @dataclasses.dataclass(frozen=True)
    class Anonymous:
        """Does not sign requests (public buckets)."""

    @dataclasses.dataclass(frozen=True)
    class FromEnv:
        """Uses credentials from the environment (``GOOGLE_*`` variables, metadata server)."""

    @dataclasses.dataclass(frozen=True)
    class Static:
        """Uses fixed credentials (a :class:`GcsStaticCredentials` variant)."""

        _0: AnyGcsStaticCredential

        def __post_init__(self) -> None:
            _check_instance("GcsCredentials.Static", self._0, GcsStaticCredentials)

    @dataclasses.dataclass(frozen=True, repr=False)
    class Refreshable(_Refreshable):
        """Credentials from a pickled callable returning :class:`GcsBearerCredential`."""

        pickled_function: bytes
        current: GcsBearerCredential | None

        def __post_init__(self) -> None:
            _check_pickled("GcsCredentials.Refreshable", self.pickled_function)
            if self.current is not None:
                _check_instance("GcsCredentials.Refreshable", self.current, GcsBearerCredential)

        def __repr__(self) -> str:
            return f"GcsCredentials.Refreshable(<pickled function>, current={self.current!r})"


register_variants(GcsStaticCredentials, GcsCredentials)
GcsBearerCredential.__module__ = _HOME

AnyGcsStaticCredential = (
    GcsStaticCredentials.ServiceAccount
    | GcsStaticCredentials.ServiceAccountKey
    | GcsStaticCredentials.ApplicationCredentials
    | GcsStaticCredentials.BearerToken
)
AnyGcsCredential = (
    GcsCredentials.Anonymous
    | GcsCredentials.FromEnv
    | GcsCredentials.Static
    | GcsCredentials.Refreshable
)


def gcs_static_credentials(
    *,
    service_account_file: str | None = None,
    service_account_key: str | None = None,
    application_credentials: str | None = None,
    bearer_token: str | None = None,
) -> AnyGcsStaticCredential:
    """Fixed GCS credentials: the first given of a service account file, a service account key,
    an application-credentials file or a bearer token.

    Raises
    ------
    ValueError
        None of them was given.
    """
    if service_account_file is not None:
        return GcsStaticCredentials.ServiceAccount(service_account_file)
    if service_account_key is not None:
        return GcsStaticCredentials.ServiceAccountKey(service_account_key)
    if application_credentials is not None:
        return GcsStaticCredentials.ApplicationCredentials(application_credentials)
    if bearer_token is not None:
        return GcsStaticCredentials.BearerToken(bearer_token)
    raise _conflict("gcs_static_credentials")


def gcs_anonymous_credentials() -> GcsCredentials.Anonymous:
    """Unsigned GCS requests (public buckets)."""
    return GcsCredentials.Anonymous()


def gcs_from_env_credentials() -> GcsCredentials.FromEnv:
    """GCS credentials from the environment."""
    return GcsCredentials.FromEnv()


def gcs_refreshable_credentials(
    get_credentials: Callable[[], GcsBearerCredential], scatter_initial_credentials: bool = False
) -> GcsCredentials.Refreshable:
    """GCS credentials from a picklable callable returning :class:`GcsBearerCredential`.

    Raises
    ------
    TypeError
        ``get_credentials`` is not a picklable callable, or (with
        ``scatter_initial_credentials``) its answer is not a :class:`GcsBearerCredential`.
    """
    pickled = _pickled("gcs_refreshable_credentials", get_credentials)
    return GcsCredentials.Refreshable(
        pickled, get_credentials() if scatter_initial_credentials else None
    )


def gcs_credentials(
    *,
    service_account_file: str | None = None,
    service_account_key: str | None = None,
    application_credentials: str | None = None,
    bearer_token: str | None = None,
    from_env: bool | None = None,
    anonymous: bool | None = None,
    get_credentials: Callable[[], GcsBearerCredential] | None = None,
    scatter_initial_credentials: bool = False,
) -> AnyGcsCredential:
    """GCS credentials; ``anonymous`` wins, then static ones, then ``get_credentials``; with no
    arguments, from the environment.

    Raises
    ------
    ValueError
        Static credentials together with ``from_env=True``.
    """
    static = (service_account_file, service_account_key, application_credentials, bearer_token)
    has_static = any(value is not None for value in static)
    if anonymous:
        return gcs_anonymous_credentials()
    if get_credentials is not None and not has_static and not from_env:
        return gcs_refreshable_credentials(get_credentials, scatter_initial_credentials)
    if (from_env is None or from_env) and not has_static:
        return gcs_from_env_credentials()
    if has_static and not from_env:
        return GcsCredentials.Static(
            gcs_static_credentials(
                service_account_file=service_account_file,
                service_account_key=service_account_key,
                application_credentials=application_credentials,
                bearer_token=bearer_token,
            )
        )
    raise _conflict("gcs_credentials")
