"""Helpers every storage backend shares: key validation and byte-range arithmetic.

Private: backends import these so that they all accept the same keys and interpret ranges the
same way; users never need them.
"""

from __future__ import annotations

from icechunk.errors import ErrorKind, InvalidInputError
from icechunk.storage.base import ByteRange, OffsetRange, RangeRequest, SuffixRange

__all__ = ["check_byte_range", "resolve_byte_range", "validate_key"]


def _is_valid_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate_key(key: str) -> str:
    """Check that ``key`` is a well-formed object key and return it unchanged.

    A key is a non-empty ``/``-separated relative path whose segments are non-empty and are
    neither ``.`` nor ``..``; it contains no backslash and no NUL character. These rules make
    every key map to exactly one file under a local root (no key can escape it) and to the same
    object name on every object store.

    Raises
    ------
    InvalidInputError
        With kind ``invalid-key``, if ``key`` breaks any of the rules above.
    """
    if not isinstance(key, str):
        raise InvalidInputError(
            f"storage keys must be str, got {type(key).__name__}", ErrorKind.INVALID_KEY
        )
    problem: str | None = None
    if not key:
        problem = "it is empty"
    elif "\x00" in key:
        problem = "it contains a NUL character"
    elif "\\" in key:
        problem = "it contains a backslash"
    elif key.startswith("/"):
        problem = "it is absolute (starts with '/')"
    elif not key.isprintable() and any(ord(c) < 32 for c in key):
        problem = "it contains a control character"
    elif not _is_valid_unicode(key):
        problem = "it is not valid Unicode (it contains a lone surrogate)"
    else:
        for segment in key.split("/"):
            if not segment:
                problem = "it has an empty path segment ('//' or a trailing '/')"
                break
            if segment in (".", ".."):
                problem = f"it has a {segment!r} path segment"
                break
    if problem is not None:
        raise InvalidInputError(f"invalid storage key {key!r}: {problem}", ErrorKind.INVALID_KEY)
    return key


def check_byte_range(byte_range: ByteRange | None) -> None:
    """Reject a malformed range before any I/O.

    Raises
    ------
    InvalidInputError
        If an offset or length is negative, a :class:`RangeRequest` ends before it starts, or
        ``byte_range`` is not one of the range types.
    """
    match byte_range:
        case None:
            return
        case RangeRequest(start=start, end=end):
            if start < 0 or end < start:
                raise InvalidInputError(
                    f"invalid byte range [{start}, {end}): need 0 <= start <= end"
                )
        case OffsetRange(offset=offset):
            if offset < 0:
                raise InvalidInputError(f"invalid byte range: negative offset {offset}")
        case SuffixRange(suffix=suffix):
            if suffix < 0:
                raise InvalidInputError(f"invalid byte range: negative suffix length {suffix}")
        case _:
            raise InvalidInputError(f"not a byte range: {byte_range!r}")


def resolve_byte_range(byte_range: ByteRange | None, size: int) -> tuple[int, int]:
    """Turn ``byte_range`` into absolute offsets ``(start, end)`` within an object of ``size`` bytes.

    The result satisfies ``0 <= start <= end <= size``: a range reaching past the end is clipped,
    and one starting past the end is empty. ``None`` means the whole object.

    Raises
    ------
    InvalidInputError
        If the range is malformed (see :func:`check_byte_range`).
    """
    check_byte_range(byte_range)
    match byte_range:
        case RangeRequest(start=start, end=end):
            return min(start, size), min(end, size)
        case OffsetRange(offset=offset):
            return min(offset, size), size
        case SuffixRange(suffix=suffix):
            return max(size - suffix, 0), size
        case _:
            return 0, size
