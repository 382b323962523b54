"""Branches, tags and the history of snapshots, for both on-disk spec versions.

Spec 1 keeps one small JSON object per ref (``refs/branch.<name>/ref.json``) and the history in
the snapshots themselves (``parent_id``); spec 2 keeps all of it in the single mutable ``repo``
object, updated by compare-and-swap with an operations log and backups under ``overwritten/``.
:class:`RefStore` (:mod:`.base`) hides the difference; :mod:`.v1` and :mod:`.v2` implement it.
"""

from icechunk._core.refs.base import MAIN, RefStore, SnapshotLoader, now_us, validate_ref_name
from icechunk._core.refs.v1 import RefStoreV1
from icechunk._core.refs.v2 import RefStoreV2

__all__ = [
    "MAIN",
    "RefStore",
    "RefStoreV1",
    "RefStoreV2",
    "SnapshotLoader",
    "now_us",
    "validate_ref_name",
]
