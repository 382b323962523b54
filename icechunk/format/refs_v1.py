"""Spec-1 ref files (``refs/branch.<name>/ref.json``, ``refs/tag.<name>/ref.json``).

Each holds the compact JSON object ``{"snapshot":"<20-character id>"}`` with no trailing
newline (35 bytes), exactly as real Icechunk writes it.
"""

from __future__ import annotations

import json

from icechunk.errors import FormatError, InvalidInputError
from icechunk.format.flatbuf import check_id
from icechunk.format.ids import encode_id, parse_snapshot_id

__all__ = ["decode_ref", "encode_ref"]


def encode_ref(snapshot_id: bytes) -> bytes:
    """The bytes of a ref file pointing at ``snapshot_id`` (12 bytes).

    Raises
    ------
    InvalidInputError
        ``snapshot_id`` is not 12 bytes.
    """
    text = encode_id(check_id(snapshot_id, 12, "snapshot id"))
    return b'{"snapshot":"' + text.encode("ascii") + b'"}'


def decode_ref(data: bytes, name: str) -> bytes:
    """The snapshot id (12 bytes) in the ref file ``data`` stored at key ``name``.

    Raises
    ------
    FormatError
        ``data`` is not a JSON object with a valid ``snapshot`` id; the message names ``name``.
    """
    try:
        doc = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise FormatError(f"corrupt ref `{name}`: not a JSON document") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("snapshot"), str):
        raise FormatError(f'corrupt ref `{name}`: expected {{"snapshot": "<id>"}}')
    try:
        return parse_snapshot_id(doc["snapshot"])
    except InvalidInputError as e:
        raise FormatError(f"corrupt ref `{name}`: {e.message}") from None
