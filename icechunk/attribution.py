"""Request attribution: labels a repository adds to the User-Agent of its storage requests.

As the real Icechunk 2.3's ``Attribution``: ``client`` says which software is talking to the
bucket (``name`` or ``name/version`` in HTTP token characters), ``workload`` what the requests are
for and ``principal`` on whose behalf (printable ASCII without ``( ) \\ ; = "``); each at most
128 bytes. :func:`user_agent_suffix` renders them for the object-store clients.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["Attribution", "user_agent_suffix"]

_MAX_BYTES: Final = 128
_TCHAR: Final = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_CLIENT: Final = re.compile(rf"{_TCHAR}(?:/{_TCHAR})?")
_FORBIDDEN: Final = frozenset('()\\;="')


def _rust_str_debug(value: str) -> str:
    """``value`` quoted and escaped as Rust's ``{:?}`` prints a string (the real messages)."""
    return '"' + "".join(_rust_escape(ch, in_string=True) for ch in value) + '"'


def _rust_escape(ch: str, *, in_string: bool) -> str:
    simple = {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\\": "\\\\", "\0": "\\0"}
    if ch in simple:
        return simple[ch]
    if ch == '"' and in_string:
        return '\\"'
    if ch == "'" and not in_string:
        return "\\'"
    if not ch.isprintable():
        return f"\\u{{{ord(ch):x}}}"
    return ch


def _check_client(value: str) -> None:
    if len(value.encode("utf-8")) > _MAX_BYTES:
        raise ValueError("attribution `client` is longer than 128 bytes")
    if not _CLIENT.fullmatch(value):
        raise ValueError(
            "attribution `client` must be `name` or `name/version` in token characters, "
            f"got {_rust_str_debug(value)}"
        )


def _check_label(field: str, value: str) -> None:
    if len(value.encode("utf-8")) > _MAX_BYTES:
        raise ValueError(f"attribution `{field}` is longer than 128 bytes")
    for ch in value:
        if ch in _FORBIDDEN or not (" " <= ch <= "~"):
            raise ValueError(
                f"attribution `{field}` contains the forbidden character "
                f"'{_rust_escape(ch, in_string=False)}'"
            )


class Attribution:
    """Labels for the User-Agent header of every request a repository makes.

    Parameters
    ----------
    client
        The software talking to the bucket, ``name`` or ``name/version`` (``weatherlib/0.9``).
    workload
        What the requests are for (``nightly-ingest``).
    principal
        On whose behalf they are made (a user, service account or tenant).

    Raises
    ------
    ValueError
        A value is longer than 128 bytes or has a character its field does not allow.
    TypeError
        A value is not a string.
    """

    __slots__ = ("_client", "_principal", "_workload")
    __hash__ = None  # type: ignore[assignment]  # unhashable, as the real one

    def __init__(
        self,
        *,
        client: str | None = None,
        workload: str | None = None,
        principal: str | None = None,
    ) -> None:
        for value in (client, workload, principal):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"'{type(value).__name__}' object is not an instance of 'str'")
        if client is not None:
            _check_client(client)
        if workload is not None:
            _check_label("workload", workload)
        if principal is not None:
            _check_label("principal", principal)
        self._client = client
        self._workload = workload
        self._principal = principal

    @property
    def client(self) -> str | None:
        return self._client

    @property
    def workload(self) -> str | None:
        return self._workload

    @property
    def principal(self) -> str | None:
        return self._principal

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Attribution):
            return NotImplemented
        return (self._client, self._workload, self._principal) == (
            other._client,
            other._workload,
            other._principal,
        )

    def __repr__(self) -> str:
        def show(v: str | None) -> str:
            return "None" if v is None else _rust_str_debug(v)

        return (
            "icechunk.Attribution(\n"
            f"    client={show(self._client)},\n"
            f"    workload={show(self._workload)},\n"
            f"    principal={show(self._principal)},\n"
            ")"
        )

    def _repr_html_(self) -> str:
        from html import escape

        return f"<pre>{escape(repr(self))}</pre>"

    def __reduce__(self) -> tuple[object, ...]:
        return (_make, (self._client, self._workload, self._principal))


def _make(client: str | None, workload: str | None, principal: str | None) -> Attribution:
    return Attribution(client=client, workload=workload, principal=principal)


def user_agent_suffix(attribution: Attribution | None) -> str:
    """The labels as User-Agent product comments (``""`` when there are none)."""
    if attribution is None:
        return ""
    parts = []
    if attribution.client:
        parts.append(attribution.client)
    comments = [
        f"{name}={value}"
        for name, value in (
            ("workload", attribution.workload),
            ("principal", attribution.principal),
        )
        if value
    ]
    if comments:
        parts.append("(" + "; ".join(comments) + ")")
    return " ".join(parts)
