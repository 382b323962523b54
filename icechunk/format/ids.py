"""Object ids and their Crockford base32 text form.

Snapshot, manifest and chunk ids are 12 random bytes (20 characters); node ids are 8 random bytes
(13 characters). The text form uses the upper-case alphabet ``0123456789ABCDEFGHJKMNPQRSTVWXYZ``,
no padding, the bit string padded on the right with zero bits to a multiple of five.
"""

from __future__ import annotations

import os

from icechunk.errors import ErrorKind, InvalidInputError

__all__ = [
    "INITIAL_SNAPSHOT_ID",
    "decode_id",
    "encode_id",
    "new_id12",
    "new_id8",
    "parse_node_id",
    "parse_snapshot_id",
]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {c: i for i, c in enumerate(_ALPHABET)}
# Crockford's decoding is forgiving about look-alike letters and case.
_DECODE.update({c.lower(): i for c, i in list(_DECODE.items())})
_DECODE.update({"O": 0, "o": 0, "I": 1, "i": 1, "L": 1, "l": 1})

INITIAL_SNAPSHOT_ID = bytes.fromhex("0b1cc8d6787580f0e33a6534")
"""The fixed id of every repository's root snapshot, ``1CECHNKREP0F1RSTCMT0``."""


def encode_id(raw: bytes) -> str:
    """Crockford base32 of ``raw`` (no padding)."""
    nbits = len(raw) * 8
    value = int.from_bytes(raw, "big")
    nchars = -(-nbits // 5)
    value <<= nchars * 5 - nbits
    out = []
    for _ in range(nchars):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def decode_id(text: object, size: int) -> bytes:
    """Inverse of :func:`encode_id` for an id of ``size`` bytes.

    Raises
    ------
    InvalidInputError
        ``text`` is not the base32 form of a ``size``-byte id.
    """
    nbits = size * 8
    nchars = -(-nbits // 5)
    if not isinstance(text, str) or len(text) != nchars:
        raise InvalidInputError(
            f"invalid object id {text!r}: expected {nchars} Crockford base32 characters",
            ErrorKind.INVALID_SNAPSHOT_ID,
        )
    value = 0
    for ch in text:
        digit = _DECODE.get(ch)
        if digit is None:
            raise InvalidInputError(
                f"invalid object id {text!r}: {ch!r} is not a Crockford base32 character",
                ErrorKind.INVALID_SNAPSHOT_ID,
            )
        value = (value << 5) | digit
    pad = nchars * 5 - nbits
    if value & ((1 << pad) - 1):
        raise InvalidInputError(
            f"invalid object id {text!r}: non-zero padding bits", ErrorKind.INVALID_SNAPSHOT_ID
        )
    return (value >> pad).to_bytes(size, "big")


def parse_snapshot_id(text: str) -> bytes:
    """Decode a 20-character snapshot (or manifest, chunk) id."""
    return decode_id(text, 12)


def parse_node_id(text: str) -> bytes:
    """Decode a 13-character node id."""
    return decode_id(text, 8)


def new_id12() -> bytes:
    """A fresh random 12-byte id (snapshots, manifests, chunks)."""
    return os.urandom(12)


def new_id8() -> bytes:
    """A fresh random 8-byte id (nodes)."""
    return os.urandom(8)
