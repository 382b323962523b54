"""Repository methods for maintenance and inspection (expire, GC, statistics, inspect).

Part of :class:`icechunk.repository.Repository` (a base class of it); the work is done by
:mod:`icechunk._core.maintenance` and :mod:`icechunk._core.inspect`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from icechunk._repo_base import RepositoryBase
from icechunk._sync import sync_twin

if TYPE_CHECKING:
    from icechunk._core.inspect import AncestryGraph
    from icechunk._core.maintenance import ChunkStorageStats, GCSummary


class RepositoryMaintenanceMethods(RepositoryBase):
    """The maintenance and inspection methods of :class:`Repository`."""

    # -- maintenance and inspection (icechunk.maintenance, icechunk.inspect) -----------------

    async def expire_snapshots_async(
        self,
        older_than: datetime,
        *,
        delete_expired_branches: bool = False,
        delete_expired_tags: bool = False,
    ) -> set[str]:
        """Cut the snapshots committed strictly before ``older_than`` out of the history.

        The root snapshot and the tip of ``main`` are never expired; other ref tips are kept
        unless ``delete_expired_branches`` / ``delete_expired_tags`` delete those refs. Nothing
        is deleted from storage (see :meth:`garbage_collect`). The full rules, per spec
        version, are in :mod:`icechunk.maintenance`.

        Returns
        -------
        set[str]
            The ids of the snapshots released from the history.

        Raises
        ------
        InvalidInputError
            ``older_than`` is not a datetime.
        ReadOnlyError
            The repository is not online (spec 2).
        """
        from icechunk._core import maintenance

        return await maintenance.expire_snapshots(
            self._objects,
            older_than,
            delete_expired_branches=delete_expired_branches,
            delete_expired_tags=delete_expired_tags,
        )

    expire_snapshots = sync_twin(expire_snapshots_async)

    async def garbage_collect_async(
        self,
        delete_object_older_than: datetime,
        *,
        dry_run: bool = False,
        max_snapshots_in_memory: int = 50,
        max_compressed_manifest_mem_bytes: int = 512 * 1024 * 1024,
        max_decoded_manifest_mem_bytes: int = 4 * 1024 * 1024 * 1024,
        max_concurrent_manifest_fetches: int = 500,
        max_concurrent_deletes: int = 10,
        max_consecutive_delete_failures: int = 50,
        max_concurrent_listings: int | None = None,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> GCSummary:
        """Delete the objects unreachable from every branch and tag created before the cutoff.

        ``dry_run`` only counts. ``progress(phase, done, total)`` is called as the collection
        advances. The full rules are in :mod:`icechunk.maintenance`.

        Raises
        ------
        InvalidInputError
            Bad arguments.
        ReadOnlyError
            The repository is not online (spec 2).
        """
        from icechunk._core import maintenance

        return await maintenance.garbage_collect(
            self._objects,
            delete_object_older_than,
            dry_run=dry_run,
            max_snapshots_in_memory=max_snapshots_in_memory,
            max_compressed_manifest_mem_bytes=max_compressed_manifest_mem_bytes,
            max_decoded_manifest_mem_bytes=max_decoded_manifest_mem_bytes,
            max_concurrent_manifest_fetches=max_concurrent_manifest_fetches,
            max_concurrent_deletes=max_concurrent_deletes,
            max_consecutive_delete_failures=max_consecutive_delete_failures,
            max_concurrent_listings=max_concurrent_listings,
            progress=progress,
        )

    garbage_collect = sync_twin(garbage_collect_async)

    async def chunk_storage_stats_async(
        self,
        *,
        max_snapshots_in_memory: int = 50,
        max_compressed_manifest_mem_bytes: int = 512 * 1024 * 1024,
        max_decoded_manifest_mem_bytes: int = 4 * 1024 * 1024 * 1024,
        max_concurrent_manifest_fetches: int = 500,
    ) -> ChunkStorageStats:
        """Chunk bytes (native, virtual, inline) referenced from every branch and tag."""
        from icechunk._core import maintenance

        return await maintenance.chunk_storage_stats(
            self._objects,
            max_snapshots_in_memory=max_snapshots_in_memory,
            max_compressed_manifest_mem_bytes=max_compressed_manifest_mem_bytes,
            max_decoded_manifest_mem_bytes=max_decoded_manifest_mem_bytes,
            max_concurrent_manifest_fetches=max_concurrent_manifest_fetches,
        )

    chunk_storage_stats = sync_twin(chunk_storage_stats_async)

    def total_chunks_storage(
        self,
        *,
        max_snapshots_in_memory: int = 50,
        max_compressed_manifest_mem_bytes: int = 512 * 1024 * 1024,
        max_decoded_manifest_mem_bytes: int = 4 * 1024 * 1024 * 1024,
        max_concurrent_manifest_fetches: int = 500,
    ) -> int:
        """Deprecated: ``chunk_storage_stats(...).native_bytes``."""
        warnings.warn(
            "`total_chunks_storage` is deprecated: use `chunk_storage_stats(...).native_bytes`",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.chunk_storage_stats(
            max_snapshots_in_memory=max_snapshots_in_memory,
            max_compressed_manifest_mem_bytes=max_compressed_manifest_mem_bytes,
            max_decoded_manifest_mem_bytes=max_decoded_manifest_mem_bytes,
            max_concurrent_manifest_fetches=max_concurrent_manifest_fetches,
        ).native_bytes

    async def total_chunks_storage_async(
        self,
        *,
        max_snapshots_in_memory: int = 50,
        max_compressed_manifest_mem_bytes: int = 512 * 1024 * 1024,
        max_decoded_manifest_mem_bytes: int = 4 * 1024 * 1024 * 1024,
        max_concurrent_manifest_fetches: int = 500,
    ) -> int:
        """Deprecated: ``(await chunk_storage_stats_async(...)).native_bytes``."""
        warnings.warn(
            "`total_chunks_storage_async` is deprecated: use "
            "`chunk_storage_stats_async(...).native_bytes`",
            DeprecationWarning,
            stacklevel=2,
        )
        stats = await self.chunk_storage_stats_async(
            max_snapshots_in_memory=max_snapshots_in_memory,
            max_compressed_manifest_mem_bytes=max_compressed_manifest_mem_bytes,
            max_decoded_manifest_mem_bytes=max_decoded_manifest_mem_bytes,
            max_concurrent_manifest_fetches=max_concurrent_manifest_fetches,
        )
        return stats.native_bytes

    async def inspect_snapshot_async(self, snapshot_id: str) -> dict[str, Any]:
        """The snapshot file as a dict (see :func:`icechunk.inspect.inspect_snapshot`)."""
        from icechunk._core import inspect

        return await inspect.inspect_snapshot(self._objects, snapshot_id)

    inspect_snapshot = sync_twin(inspect_snapshot_async)

    async def inspect_manifest_async(self, manifest_id: str) -> dict[str, Any]:
        """The manifest file as a dict (see :func:`icechunk.inspect.inspect_manifest`)."""
        from icechunk._core import inspect

        return await inspect.inspect_manifest(self._objects, manifest_id)

    inspect_manifest = sync_twin(inspect_manifest_async)

    async def inspect_transaction_log_async(self, snapshot_id: str) -> dict[str, Any]:
        """A transaction log as a dict (see :func:`icechunk.inspect.inspect_transaction_log`)."""
        from icechunk._core import inspect

        return await inspect.inspect_transaction_log(self._objects, snapshot_id)

    inspect_transaction_log = sync_twin(inspect_transaction_log_async)

    async def inspect_repo_info_async(self) -> dict[str, Any]:
        """The spec-2 ``repo`` object as a dict (see :func:`icechunk.inspect.inspect_repo_info`)."""
        from icechunk._core import inspect

        return await inspect.inspect_repo_info(self._objects)

    inspect_repo_info = sync_twin(inspect_repo_info_async)

    async def ancestry_graph_async(
        self,
        *,
        branch: str | None = None,
        tag: str | None = None,
        snapshot_id: str | None = None,
        plain: bool = False,
    ) -> AncestryGraph:
        """The history of every branch as a tree, or of one ref or snapshot as a line.

        ``print()`` it for text (ANSI colours unless ``plain``); Jupyter shows it as SVG.
        """
        from icechunk._core import inspect

        return await inspect.ancestry_graph(
            self._objects, branch=branch, tag=tag, snapshot_id=snapshot_id, plain=plain
        )

    ancestry_graph = sync_twin(ancestry_graph_async)
