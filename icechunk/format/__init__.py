"""The on-disk format: binary metadata objects (spec 1 and 2) and spec-1 ref files.

Every ``encode_*`` function returns the complete bytes of an object (header included) and every
``decode_*`` function takes them back, raising :class:`~icechunk.errors.FormatError` naming the
object for anything corrupt, truncated or unsupported. The records are in
:mod:`icechunk.format.model`; object keys in :mod:`icechunk.format.layout`.
"""

from __future__ import annotations

from icechunk.format.manifest import decode_manifest, encode_manifest
from icechunk.format.refs_v1 import decode_ref, encode_ref
from icechunk.format.repo_info import decode_repo_info, encode_repo_info
from icechunk.format.snapshot import decode_snapshot, encode_snapshot
from icechunk.format.transaction_log import decode_transaction_log, encode_transaction_log

__all__ = [
    "decode_manifest",
    "decode_ref",
    "decode_repo_info",
    "decode_snapshot",
    "decode_transaction_log",
    "encode_manifest",
    "encode_ref",
    "encode_repo_info",
    "encode_snapshot",
    "encode_transaction_log",
]
