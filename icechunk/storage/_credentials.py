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
import pickle
from abc import ABC
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from icechunk.errors import ErrorKind, InvalidInputError

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

type StoreKind = Literal["s3", "gcs", "azure"]
"""The cloud object stores a credential can be for."""

_MASK = "'***'"


def _masked(value: str | None) -> str:
    return _MASK if value else "None"


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


def refreshable_function(credentials: Any) -> Callable[[], Any]:
    """The user's callable inside a ``*.Refreshable`` credential value, unpickled.

    Raises
    ------
    TypeError
        The pickled object is not callable.
    """
    function = pickle.loads(credentials.pickled_function)
    if not callable(function):
        raise TypeError(f"the pickled credentials function is not callable: {function!r}")
    return function  # type: ignore[no-any-return]


def wrapped_credentials(credentials: Any) -> Any:
    """The value a one-field variant wraps (``Credentials.S3(x)`` -> ``x``); others unchanged."""
    return getattr(credentials, "_0", credentials)


def _check_pickled(owner: str, pickled_function: object) -> None:
    if not isinstance(pickled_function, bytes):
        raise TypeError(
            f"{owner}: pickled_function must be the bytes of a pickled callable "
            f"(pickle.dumps(get_credentials)), not {type(pickled_function).__name__}"
        )


def _check_instance(owner: str, value: object, kind: type | tuple[type, ...]) -> None:
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise TypeError(f"{owner}: expected {names}, got {type(value).__name__}")


class _Refreshable:
    """Shared behaviour of the ``*.Refreshable`` variants: a pickled callable and a first answer."""

    pickled_function: bytes
    current: Any


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


class AzureRefreshableCredential(ABC):  # noqa: B024
    """An Azure credential with an optional expiry (what a ``get_credentials`` returns)."""

    __slots__ = ()

    @dataclasses.dataclass(frozen=True)
    class AccessKey:
        """A storage account access key."""

        key: str
        expires_after: datetime | None

        def __repr__(self) -> str:
            return f"AzureRefreshableCredential.AccessKey('***', {self.expires_after!r})"

    @dataclasses.dataclass(frozen=True)
    class SasToken:
        """A shared access signature token."""

        token: str
        expires_after: datetime | None

        def __repr__(self) -> str:
            return f"AzureRefreshableCredential.SasToken('***', {self.expires_after!r})"

    @dataclasses.dataclass(frozen=True)
    class BearerToken:
        """An OAuth bearer token."""

        bearer: str
        expires_after: datetime | None

        def __repr__(self) -> str:
            return f"AzureRefreshableCredential.BearerToken('***', {self.expires_after!r})"


class AzureStaticCredentials(ABC):  # noqa: B024
    """Fixed credentials for Azure Blob Storage: one of the nested variants."""

    __slots__ = ()

    @dataclasses.dataclass(frozen=True)
    class AccessKey:
        """A storage account access key."""

        _0: str

        def __repr__(self) -> str:
            return "AzureStaticCredentials.AccessKey('***')"

    @dataclasses.dataclass(frozen=True)
    class SasToken:
        """A shared access signature token."""

        _0: str

        def __repr__(self) -> str:
            return "AzureStaticCredentials.SasToken('***')"

    @dataclasses.dataclass(frozen=True)
    class BearerToken:
        """An OAuth bearer token."""

        _0: str

        def __repr__(self) -> str:
            return "AzureStaticCredentials.BearerToken('***')"


class AzureCredentials(ABC):  # noqa: B024
    """Credentials for Azure Blob Storage: one of the nested variants."""

    __slots__ = ()

    @dataclasses.dataclass(frozen=True)
    class Anonymous:
        """Does not sign requests (public containers)."""

    @dataclasses.dataclass(frozen=True)
    class FromEnv:
        """Uses credentials from the environment (``AZURE_*`` variables, managed identity)."""

    @dataclasses.dataclass(frozen=True)
    class Static:
        """Uses fixed credentials (an :class:`AzureStaticCredentials` variant)."""

        _0: AnyAzureStaticCredential

        def __post_init__(self) -> None:
            _check_instance("AzureCredentials.Static", self._0, AzureStaticCredentials)

    @dataclasses.dataclass(frozen=True, repr=False)
    class Refreshable(_Refreshable):
        """Credentials from a pickled callable returning an :class:`AzureRefreshableCredential`."""

        pickled_function: bytes
        current: AnyAzureRefreshableCredential | None

        def __post_init__(self) -> None:
            _check_pickled("AzureCredentials.Refreshable", self.pickled_function)
            if self.current is not None:
                _check_instance(
                    "AzureCredentials.Refreshable", self.current, AzureRefreshableCredential
                )

        def __repr__(self) -> str:
            return f"AzureCredentials.Refreshable(<pickled function>, current={self.current!r})"


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


for _outer in (
    S3Credentials,
    GcsStaticCredentials,
    GcsCredentials,
    AzureRefreshableCredential,
    AzureStaticCredentials,
    AzureCredentials,
    Credentials,
):
    for _name, _variant in list(vars(_outer).items()):
        if isinstance(_variant, type) and not _name.startswith("_"):
            _outer.register(_variant)
            _variant.__qualname__ = f"{_outer.__name__}.{_name}"

AnyS3Credential = (
    S3Credentials.Static
    | S3Credentials.Anonymous
    | S3Credentials.FromEnv
    | S3Credentials.Refreshable
)
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
AnyAzureStaticCredential = (
    AzureStaticCredentials.AccessKey
    | AzureStaticCredentials.SasToken
    | AzureStaticCredentials.BearerToken
)
AnyAzureRefreshableCredential = (
    AzureRefreshableCredential.AccessKey
    | AzureRefreshableCredential.SasToken
    | AzureRefreshableCredential.BearerToken
)
AnyAzureCredential = (
    AzureCredentials.FromEnv
    | AzureCredentials.Anonymous
    | AzureCredentials.Static
    | AzureCredentials.Refreshable
)
AnyCredential = (
    Credentials.S3
    | Credentials.Gcs
    | Credentials.Azure
    | Credentials.LocalFileSystemAccess
    | Credentials.HttpAccess
)

# Earlier names of this package.
S3AnonymousCredentials = S3Credentials.Anonymous
S3FromEnvCredentials = S3Credentials.FromEnv
S3RefreshableCredentials = S3Credentials.Refreshable


# -- helpers (the real icechunk.credentials functions) -------------------------------------------


_CHOICES = {
    "s3_credentials": "give exactly one source: access_key_id and secret_access_key together "
    "(with an optional session_token/expires_after), anonymous=True, from_env=True or "
    "get_credentials",
    "gcs_static_credentials": "give one of service_account_file, service_account_key, "
    "application_credentials or bearer_token",
    "gcs_credentials": "static credentials cannot be combined with from_env=True",
    "azure_static_credentials": "give exactly one of access_key, sas_token or bearer_token",
    "azure_credentials": "give one of the static credentials, or from_env=True, not both",
}


def _conflict(function: str) -> InvalidInputError:
    # The real one's ValueError message, then what to do (InvalidInputError is a ValueError).
    return InvalidInputError(
        f"Conflicting arguments to {function} function: {_CHOICES[function]}",
        ErrorKind.INVALID_ARGUMENT,
    )


def _pickled(function: str, get_credentials: object) -> bytes:
    if not callable(get_credentials):
        raise TypeError(f"{function}: get_credentials must be a callable, not {get_credentials!r}")
    try:
        return pickle.dumps(get_credentials)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise TypeError(
            f"{function}: get_credentials must be picklable (a module-level function or a "
            f"picklable callable object): {exc}"
        ) from None


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


def azure_static_credentials(
    *,
    access_key: str | None = None,
    sas_token: str | None = None,
    bearer_token: str | None = None,
) -> AnyAzureStaticCredential:
    """Fixed Azure credentials: exactly one of an access key, a SAS token or a bearer token.

    Raises
    ------
    ValueError
        None or several of them were given.
    """
    if [access_key, sas_token, bearer_token].count(None) != 2:
        raise _conflict("azure_static_credentials")
    if access_key is not None:
        return AzureStaticCredentials.AccessKey(access_key)
    if sas_token is not None:
        return AzureStaticCredentials.SasToken(sas_token)
    assert bearer_token is not None
    return AzureStaticCredentials.BearerToken(bearer_token)


def azure_refreshable_credentials(
    get_credentials: Callable[[], AnyAzureRefreshableCredential],
    scatter_initial_credentials: bool = False,
) -> AzureCredentials.Refreshable:
    """Azure credentials from a picklable callable returning an
    :class:`AzureRefreshableCredential` variant.

    Raises
    ------
    TypeError
        ``get_credentials`` is not a picklable callable.
    """
    pickled = _pickled("azure_refreshable_credentials", get_credentials)
    return AzureCredentials.Refreshable(
        pickled, get_credentials() if scatter_initial_credentials else None
    )


def azure_from_env_credentials() -> AzureCredentials.FromEnv:
    """Azure credentials from the environment."""
    return AzureCredentials.FromEnv()


def azure_anonymous_credentials() -> AzureCredentials.Anonymous:
    """Unsigned Azure requests (public containers)."""
    return AzureCredentials.Anonymous()


def azure_credentials(
    *,
    access_key: str | None = None,
    sas_token: str | None = None,
    bearer_token: str | None = None,
    from_env: bool | None = None,
    anonymous: bool | None = None,
    get_credentials: Callable[[], AnyAzureRefreshableCredential] | None = None,
    scatter_initial_credentials: bool = False,
) -> AnyAzureCredential:
    """Azure credentials; ``anonymous`` wins, then ``get_credentials``, then static ones; with
    no arguments, from the environment.

    Raises
    ------
    ValueError
        Static credentials with ``from_env=True``, or several static credentials.
    """
    if anonymous:
        return azure_anonymous_credentials()
    if get_credentials is not None:
        return azure_refreshable_credentials(get_credentials, scatter_initial_credentials)
    has_static = any(v is not None for v in (access_key, sas_token, bearer_token))
    if (from_env is None or from_env) and not has_static:
        return azure_from_env_credentials()
    if has_static and not from_env:
        return AzureCredentials.Static(
            azure_static_credentials(
                access_key=access_key, sas_token=sas_token, bearer_token=bearer_token
            )
        )
    raise _conflict("azure_credentials")


# -- conversion for obstore -------------------------------------------------------------------


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
