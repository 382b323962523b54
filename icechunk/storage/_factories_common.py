"""What every cloud storage factory shares: client options, headers and option records."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from icechunk.errors import ErrorKind, InvalidInputError, StorageError


def _client_options(
    allow_http: bool, network_stream_timeout_seconds: int | None, headers: Mapping[str, str]
) -> dict[str, Any]:
    options: dict[str, Any] = {
        "allow_http": bool(allow_http),
        "connect_timeout": timedelta(seconds=5),
        "timeout": timedelta(minutes=10),
    }
    if network_stream_timeout_seconds:
        options["read_timeout"] = timedelta(seconds=network_stream_timeout_seconds)
    if headers:
        options["default_headers"] = dict(headers)
    return options


def _headers(
    read_headers: Mapping[str, str] | None,
    write_headers: Mapping[str, str] | None,
    headers: Mapping[str, str] | None,
) -> dict[str, str]:
    """One header set for every request: obstore has no per-operation headers, so read and
    write headers are both sent on every request (``read_headers`` win over ``write_headers``,
    both over ``headers``)."""
    out: dict[str, str] = {}
    for part in (headers, write_headers, read_headers):
        for name, value in (part or {}).items():
            if not isinstance(name, str) or not isinstance(value, str):  # type: ignore[redundant-expr]
                raise InvalidInputError(
                    f"HTTP headers must map str to str, got {name!r}: {value!r}",
                    ErrorKind.INVALID_ARGUMENT,
                )
            out[name] = value
    return out


def _check_rooted(legacy_rooted_keys: bool | None, prefix: str | None) -> None:
    if legacy_rooted_keys and (prefix or "").strip("/"):
        raise StorageError("storage error: legacy_rooted_keys is only valid with an empty prefix")
    if legacy_rooted_keys:
        raise StorageError(
            "legacy_rooted_keys=True (the leading-slash key layout of old bucket-root "
            "repositories) is not supported by this library; open the repository with the "
            "real icechunk, or leave legacy_rooted_keys unset"
        )


def _options(
    region: str | None,
    endpoint_url: str | None,
    allow_http: bool,
    anonymous: bool | None,
    force_path_style: bool,
    network_stream_timeout_seconds: int | None,
    requester_pays: bool = False,
) -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(
        region=region,
        endpoint_url=endpoint_url,
        allow_http=allow_http,
        anonymous=bool(anonymous),
        force_path_style=force_path_style,
        network_stream_timeout_seconds=network_stream_timeout_seconds,
        requester_pays=requester_pays,
    )
