"""What the credential values of every kind share: checks, the refreshable base, errors."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from icechunk.errors import ErrorKind, InvalidInputError

type StoreKind = Literal["s3", "gcs", "azure"]
"""The cloud object stores a credential can be for."""

_MASK = "'***'"


def _masked(value: str | None) -> str:
    return _MASK if value else "None"


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


def expiry_utc(value: datetime | None) -> datetime | None:
    """``value`` made timezone-aware (a naive datetime is read as UTC); ``None`` stays ``None``."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


_HOME = "icechunk.storage._credentials"
"""The module pickles name these classes by (where they were first defined; it re-exports them)."""


def register_variants(*outers: type) -> None:
    """Register each outer class's nested variants as its subclasses, named ``Outer.Variant``.

    Every class keeps :data:`_HOME` as its ``__module__`` so that pickles find it by the path
    they have always used.
    """
    for outer in outers:
        outer.__module__ = _HOME
        for name, variant in list(vars(outer).items()):
            if isinstance(variant, type) and not name.startswith("_"):
                outer.register(variant)  # type: ignore[attr-defined]
                variant.__qualname__ = f"{outer.__name__}.{name}"
                variant.__module__ = _HOME
