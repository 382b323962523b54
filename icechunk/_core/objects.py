"""The object service of one repository: load, cache, encode and resolve its objects.

:class:`RepoObjects` is what :class:`~icechunk.Repository` does privately: it reads snapshots,
manifests and transaction logs through the process-wide cache (:mod:`icechunk._core.cache`),
serves chunk bytes (native, inline, virtual), encodes objects in the repository's spec version,
and holds the repository's ref store. Sessions, the commit writer, conflicts, diff and
maintenance all work on a ``RepoObjects``, never on the ``Repository`` facade.

Extension points
----------------
* :meth:`RepoObjects.check_writable` is the one call every writer (commit, amend, flush, ref
  updates, maintenance) passes through before it changes the repository: a repository-wide
  check (for example a read-only status) goes there, once.
* :attr:`RepoObjects.config` is the one place the repository's configuration lives; persisted
  repository configuration is read into and written from it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from icechunk._core.cache import default_cache
from icechunk._core.chunk_refs import RefIndex, payload_at
from icechunk._core.refs import RefStore, RefStoreV1, RefStoreV2
from icechunk._core.tree import ReadTree
from icechunk.errors import ErrorKind, FormatError, ObjectNotFoundError, SnapshotNotFoundError
from icechunk.format import (
    decode_snapshot,
    decode_transaction_log,
    encode_manifest,
    encode_snapshot,
    layout,
)
from icechunk.format.ids import encode_id, parse_snapshot_id
from icechunk.format.manifest import ManifestView
from icechunk.format.model import ManifestFileInfo, Snapshot, TransactionLog
from icechunk.manifest_preload import location_compression
from icechunk.storage import resolve_byte_range
from icechunk.storage.base import ByteRange, RangeRequest, Storage

if TYPE_CHECKING:
    from icechunk._core.change_set import ChunkPayload
    from icechunk.config import RepositoryConfig

__all__ = ["LAZY_MANIFEST_LOOKUPS", "RepoObjects"]

LAZY_MANIFEST_LOOKUPS = 32
"""Chunk lookups served from a manifest's flatbuffer by binary search before it is decoded."""


class RepoObjects:
    """The objects of the repository in ``storage``, read and written in ``spec_version``.

    Parameters
    ----------
    storage
        Where the repository lives.
    spec_version
        The on-disk format version (1 or 2) of the repository.
    config
        The repository configuration in effect (persisted and runtime settings merged).
    authorized
        Credentials per virtual chunk container URL prefix (``authorize_virtual_chunk_access``).
    """

    def __init__(
        self,
        storage: Storage,
        spec_version: int,
        config: RepositoryConfig,
        authorized: dict[str, Any],
    ) -> None:
        self.storage = storage
        self.spec_version = spec_version
        self.config = config
        self.authorized = authorized
        self.refs: RefStore = self._make_refs()
        """Branches, tags and history (spec-version specific)."""
        self._fetching: dict[bytes, asyncio.Task[ManifestView]] = {}
        """Manifest fetches in flight, shared by concurrent readers (preload and first reads)."""

    def check_writable(self) -> None:
        """Raise if the repository must not be changed now; every writer calls this first.

        Nothing refuses writes today; a repository-wide check (a read-only status, for
        example) belongs here so that commits, ref updates and maintenance all honour it.
        """

    def _make_refs(self) -> RefStore:
        if self.spec_version == 1:
            return RefStoreV1(self.storage, self.load_snapshot)
        return RefStoreV2(
            self.storage,
            self.load_snapshot,
            num_updates_per_file=self.config.effective_num_updates_per_repo_info_file,
        )

    async def load_snapshot(self, snapshot_id: bytes) -> Snapshot:
        cached = default_cache.get("snapshot", snapshot_id)
        if cached is not None:
            assert isinstance(cached, Snapshot)
            return cached
        key = layout.snapshot_key(snapshot_id)
        try:
            data = await self.storage.get(key)
        except ObjectNotFoundError:
            raise SnapshotNotFoundError(
                f"snapshot id not found `{encode_id(snapshot_id)}`", ErrorKind.SNAPSHOT_NOT_FOUND
            ) from None
        snap = decode_snapshot(data, key)
        if snap.id != snapshot_id:
            raise FormatError(f"{key}: the snapshot inside has id {encode_id(snap.id)}")
        default_cache.put("snapshot", snapshot_id, snap, 4 * len(data) + 1000)
        return snap

    def cache_snapshot(self, snap: Snapshot) -> None:
        default_cache.put("snapshot", snap.id, snap, 2000 + 300 * len(snap.nodes))

    def tree_for(self, snapshot: Snapshot) -> ReadTree:
        tree = default_cache.get("tree", snapshot.id)
        if tree is None:
            tree = ReadTree(snapshot)
            default_cache.put("tree", snapshot.id, tree, 1000 + 400 * len(snapshot.nodes))
        assert isinstance(tree, ReadTree)
        return tree

    async def manifest_view(self, manifest_id: bytes) -> ManifestView:
        """Fetch and open (not decode) a manifest; it is cached for :meth:`manifest_ref`.

        Concurrent calls for one manifest on one event loop share a single storage read (a
        session's first chunk read joins the fetch its background preload started).
        """
        loop = asyncio.get_running_loop()
        task = self._fetching.get(manifest_id)
        if task is None or task.get_loop() is not loop:
            task = loop.create_task(self._fetch_manifest_view(manifest_id))
            self._fetching[manifest_id] = task
            task.add_done_callback(lambda done: self._forget_fetch(manifest_id, done))
        return await asyncio.shield(task)

    def _forget_fetch(self, manifest_id: bytes, task: asyncio.Task[ManifestView]) -> None:
        if self._fetching.get(manifest_id) is task:
            del self._fetching[manifest_id]

    async def _fetch_manifest_view(self, manifest_id: bytes) -> ManifestView:
        mkey = layout.manifest_key(manifest_id)
        try:
            data = await self.storage.get(mkey)
        except ObjectNotFoundError:
            raise FormatError(
                f"manifest {encode_id(manifest_id)} referenced by the snapshot is missing",
                ErrorKind.FORMAT,
            ) from None
        view = ManifestView(data, mkey)
        default_cache.put("manifestview", manifest_id, view, view.nbytes + 1000)
        return view

    async def manifest_ref(
        self,
        manifest_id: bytes,
        node_id: bytes,
        info: ManifestFileInfo | None,
        coords: tuple[int, ...],
    ) -> ChunkPayload | None:
        """The payload of chunk ``coords`` of array ``node_id`` in a manifest, or ``None``.

        The first :data:`LAZY_MANIFEST_LOOKUPS` lookups in a manifest that is not decoded yet
        binary-search its flatbuffer and decode the one ref found (opening a session to read
        a chunk does not decode a 100k-ref manifest); later ones decode the whole manifest
        once and use its index.
        """
        index = default_cache.get("refindex", manifest_id + node_id)
        if index is None and default_cache.get("manifest", manifest_id) is None:
            view = default_cache.get("manifestview", manifest_id)
            if not isinstance(view, ManifestView):
                view = await self.manifest_view(manifest_id)
            if view.lookups < LAZY_MANIFEST_LOOKUPS:
                view.lookups += 1
                ref = view.lookup(node_id, coords)
                return None if ref is None else payload_at(ref, 0)
        index = await self.manifest_index(manifest_id, node_id, info)
        if index is None:
            return None
        i = index.find(coords)
        return None if i is None else payload_at(index.refs, i)

    async def manifest_index(
        self, manifest_id: bytes, node_id: bytes, info: ManifestFileInfo | None
    ) -> RefIndex | None:
        key = manifest_id + node_id
        index = default_cache.get("refindex", key)
        if index is not None:
            assert isinstance(index, RefIndex)
            return index
        manifest = default_cache.get("manifest", manifest_id)
        if manifest is None:
            view = default_cache.get("manifestview", manifest_id)
            if not isinstance(view, ManifestView):
                view = await self.manifest_view(manifest_id)
            manifest = view.decode()
            default_cache.put("manifest", manifest_id, manifest, 3 * view.nbytes + 1000)
        for array in manifest.arrays:
            if array.node_id == node_id:
                index = RefIndex(array.refs)
                default_cache.put("refindex", key, index, 64 * len(array.refs) + 1000)
                return index
        return None

    async def load_transaction_log(self, snapshot_id: bytes) -> TransactionLog:
        cached = default_cache.get("txlog", snapshot_id)
        if cached is not None:
            assert isinstance(cached, TransactionLog)
            return cached
        key = layout.transaction_key(snapshot_id)
        data = await self.storage.get(key)
        tx = decode_transaction_log(data, key)
        default_cache.put("txlog", snapshot_id, tx, 4 * len(data) + 1000)
        return tx

    async def history_transaction_log(self, snapshot_id: bytes) -> TransactionLog:
        """What changed between ``snapshot_id``'s parent in history and ``snapshot_id``.

        That is the snapshot's own transaction log, merged (oldest first) with the logs of the
        ancestors that expiration cut out between it and its parent (spec 2.1
        ``pruned_ancestor_tx_logs``); logs already collected are skipped. Diff and rebase walk
        history with this, so changes made in expired commits are not forgotten.
        """
        own = await self.load_transaction_log(snapshot_id)
        refs = self.refs
        if not isinstance(refs, RefStoreV2):
            return own
        pruned: tuple[bytes, ...] = ()
        for rec in (await refs.read()).snapshots:
            if rec.id == snapshot_id:
                pruned = tuple(rec.pruned_ancestor_tx_logs or ())
                break
        if not pruned:
            return own
        logs: list[TransactionLog] = []
        for pid in pruned:
            try:
                logs.append(await self.load_transaction_log(pid))
            except ObjectNotFoundError:
                continue
        return TransactionLog.merged([*logs, own])

    async def fetch_payload(self, payload: ChunkPayload, byte_range: ByteRange | None) -> bytes:
        from icechunk._core.change_set import InlinePayload, NativePayload

        if isinstance(payload, InlinePayload):
            start, end = resolve_byte_range(byte_range, len(payload.data))
            return payload.data[start:end]
        start, end = resolve_byte_range(byte_range, payload.length)
        if isinstance(payload, NativePayload):
            if start >= end:
                return b""
            return await self.storage.get(
                layout.chunk_key(payload.chunk_id),
                RangeRequest(payload.offset + start, payload.offset + end),
            )
        from icechunk._core.virtual_fetch import fetch

        return await fetch(self, payload, start, end)

    def encode_snapshot(self, snap: Snapshot) -> bytes:
        return encode_snapshot(snap, self.spec_version)

    def encode_manifest(self, manifest: Any) -> bytes:
        """``manifest`` encoded in the repository's spec version, locations compressed as the
        config's ``ManifestVirtualChunkLocationCompressionConfig`` says (spec 2)."""
        settings = self.config.manifest
        compression = location_compression(
            None if settings is None else settings.virtual_chunk_location_compression
        )
        return encode_manifest(manifest, self.spec_version, compression)

    async def resolve(self, branch: str | None, tag: str | None, snapshot_id: str | None) -> bytes:
        given = [x is not None for x in (branch, tag, snapshot_id)]
        if sum(given) != 1:
            raise ValueError("Must provide one of branch, tag, or snapshot_id")
        if branch is not None:
            return await self.refs.branch_tip(branch)
        if tag is not None:
            return await self.refs.tag_target(tag)
        assert snapshot_id is not None
        return parse_snapshot_id(snapshot_id)
