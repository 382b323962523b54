"""Repository maintenance: snapshot expiration, garbage collection and chunk storage statistics.

These follow the rules of the real Icechunk **2.x** (2.1+ for ``pruned_ancestor_tx_logs``), for
both on-disk spec versions:

Expiration (:func:`expire_snapshots`) rewrites history only; it deletes no object.

* A snapshot is *expired* when its commit time (``written_at``/``flushed_at``) is strictly
  earlier than ``older_than`` (an exclusive bound) and it is not a root (the initial snapshot
  is never expired).
* **Spec 2**: every expired snapshot listed in the ``repo`` object is *released*, i.e. removed
  from the history, except the tips of tags (unless ``delete_expired_tags``), the tips of branches
  (unless ``delete_expired_branches``) and the tip of ``main`` (always kept). A retained snapshot
  whose parent was released is re-parented to the root of its history, and its
  ``pruned_ancestor_tx_logs`` lists, oldest first, the transaction logs of every ancestor cut out
  of its path (spec 2.1), so ``diff`` and rebases can still see those changes. Tags and branches
  (never ``main``) whose tip is expired are deleted when the flags say so. Everything happens in
  one compare-and-swap of the ``repo`` object, recorded as an ``ExpirationRan`` ops-log entry; if
  the object changed since expiration read it, the computation starts again.
* **Spec 1** (no ``repo`` object: parents live in the snapshot files): refs are processed tags
  first, then branches, each in lexicographic order. Along each ref's ancestry the oldest
  non-expired snapshot is rewritten *in place* (same id, same contents) with the root as its
  parent, cutting the expired ones out of the history. As in real Icechunk 2.x for spec-1
  repositories, the returned set holds the snapshots cut out of some ref's history, which includes
  a ref's tip when the tip itself is expired (it is then the snapshot rewritten), and refs whose
  tip is expired are deleted when the flags say so.

Garbage collection (:func:`garbage_collect`) deletes the chunks, manifests, snapshots and
transaction logs that are **unreachable from every branch and tag and were created strictly
before the cutoff** (creation time = the object's last-modified time in the storage listing).
Spec-2 snapshots in the ``repo`` object that are newer than the cutoff (e.g. a branch reset
away a moment ago, a flushed detached snapshot) are kept with their manifests and chunks, though
not their unreachable older ancestors, and the transaction logs named by any retained snapshot's
``pruned_ancestor_tx_logs`` are kept. In spec 2 the dropped snapshots are also removed from the
``repo`` object (a ``GCRan`` ops-log entry) before anything is deleted: a kept snapshot whose
parent is dropped is re-parented to its nearest kept ancestor (or the root), recording the cut
ancestors' transaction logs in its ``pruned_ancestor_tx_logs``; and the update starts the whole
collection again when a ref or a new snapshot appeared that needs a snapshot about to be
dropped. Snapshots committed while the collection ran are kept with what they reference. In
spec 1 (which has no such protection in the real Icechunk) the refs are read again after the
reachability walk, and whatever a new or moved ref reaches is walked and kept too, until the refs
hold still. ``dry_run`` counts what would be deleted and changes nothing.

The cutoff must be older than the oldest session still writing: chunks written by a session that
has not committed yet are referenced by nothing, and are deleted once older than the cutoff.
"""

from icechunk._core.maintenance.common import ChunkStorageStats, GCSummary, Progress
from icechunk._core.maintenance.expire import expire_snapshots
from icechunk._core.maintenance.gc import garbage_collect
from icechunk._core.maintenance.stats import chunk_storage_stats

__all__ = [
    "ChunkStorageStats",
    "GCSummary",
    "Progress",
    "chunk_storage_stats",
    "expire_snapshots",
    "garbage_collect",
]
