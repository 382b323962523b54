"""How the obstore backend classifies and describes the errors obstore raises.

Which exceptions are permanent, which are transient (worth a retry), whether obstore already
retried a request, and the patterns that pull a status code and the server's error code and
message out of obstore's text (which is all it exposes), so that messages can be rebuilt
without secrets.
"""

from __future__ import annotations

import re

from obstore import exceptions as obx

_SECRET_CONFIG_KEYS = frozenset(
    {
        "secret_access_key",
        "session_token",
        "token",
        "bearer_token",
        "service_account_key",
        "account_key",
        "access_key",
        "sas_key",
        "sas_token",
        "client_secret",
    }
)
# obstore raises the builtin FileNotFoundError for a missing object.
_NOT_FOUND: tuple[type[BaseException], ...] = (obx.NotFoundError, FileNotFoundError)
_CONFLICT: tuple[type[BaseException], ...] = (
    obx.AlreadyExistsError,
    obx.PreconditionError,
    FileExistsError,
)
_PERMANENT: tuple[type[BaseException], ...] = (
    *_NOT_FOUND,
    *_CONFLICT,
    obx.NotModifiedError,
    obx.PermissionDeniedError,
    obx.UnauthenticatedError,
    obx.InvalidPathError,
    obx.NotSupportedError,
    obx.UnknownConfigurationKeyError,
)
_STATUS_RE = re.compile(r"status code: (\d{3})")
_XML_CODE_RE = re.compile(r"<Code>([^<]{1,200})</Code>")
_XML_MESSAGE_RE = re.compile(r"<Message>([^<]{1,500})</Message>")
_QUERY_RE = re.compile(r"(https?://[^\s?]+)\?\S*")  # query strings may carry SAS tokens
_RETRIED_RE = re.compile(r"after (\d+) retries")
_TRANSPORT_MARKERS = (
    "http error",
    "error sending request",
    "timed out",
    "timeout",
    "connection",
    "error decoding",
    "body",
    "broken pipe",
    "reset by peer",
)


# -- error handling ---------------------------------------------------------------------------


def _status_of(text: str) -> int | None:
    match = _STATUS_RE.search(text)
    return int(match.group(1)) if match else None


def _is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a network failure or a server-side (5xx, 408, 429) error."""
    if isinstance(exc, _PERMANENT):
        return False
    if not isinstance(exc, obx.BaseError):
        return isinstance(exc, ConnectionError | TimeoutError)
    text = str(exc)
    status = _status_of(text)
    if status is not None:
        return status >= 500 or status in (408, 429)
    lowered = text.lower()
    return any(marker in lowered for marker in _TRANSPORT_MARKERS)


def _already_retried(exc: BaseException) -> bool:
    """Whether obstore's own retry loop already retried the request that raised ``exc``."""
    match = _RETRIED_RE.search(str(exc))
    return match is not None and int(match.group(1)) > 0


def _never_sent(exc: BaseException) -> bool:
    """Whether the request failed while connecting, so the server cannot have applied it."""
    return "kind: Connect" in str(exc)


def _is_range_refusal(exc: BaseException) -> bool:
    text = str(exc)
    return _status_of(text) == 416 or "NotPartial" in text or "non-partial" in text


def _is_missing_bucket(exc: BaseException) -> bool:
    text = str(exc)
    return any(
        code in text for code in ("NoSuchBucket", "ContainerNotFound", "The specified bucket")
    )
