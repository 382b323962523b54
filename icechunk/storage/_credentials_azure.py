"""Azure credential values and the ``azure_*_credentials`` helpers that build them."""

from __future__ import annotations

import dataclasses
from abc import ABC
from collections.abc import Callable
from datetime import datetime

from icechunk.storage._credentials_base import (
    _check_instance,
    _check_pickled,
    _conflict,
    _pickled,
    _Refreshable,
    register_variants,
)


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


register_variants(AzureRefreshableCredential, AzureStaticCredentials, AzureCredentials)

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
