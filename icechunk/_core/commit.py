"""The commit writer: a change set on a base tree becomes manifests, a log and a snapshot.

:func:`write_commit` is the one path by which commits, amends, flushes and manifest rewrites
write new repository objects; it calls :meth:`RepoObjects.check_writable
<icechunk._core.objects.RepoObjects.check_writable>` first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np

from icechunk._core.change_set import ChangeSet
from icechunk._core.manifest_writer import THREAD_ENCODE_MIN_REFS, ArrayManifestJob, ManifestWriter
from icechunk._core.objects import RepoObjects
from icechunk._core.refs import now_us
from icechunk._core.staged_changes import changed_coords
from icechunk._core.tree import Node, ReadTree
from icechunk.errors import ErrorKind, SessionStateError
from icechunk.format import layout
from icechunk.format.ids import encode_id, new_id12
from icechunk.format.model import (
    ArrayData,
    ManifestFileInfo,
    MoveOperation,
    NodeSnapshot,
    Snapshot,
    TransactionLog,
)
from icechunk.format.transaction_log import ChunkList, encode_transaction_log
from icechunk.storage.base import WriteMode

__all__ = ["write_commit"]


async def write_commit(
    objects: RepoObjects,
    base: ReadTree,
    change_set: ChangeSet,
    live: Sequence[Node],
    *,
    message: str,
    props: dict[str, Any],
    rewrite: bool,
    tx_parent: bytes | None = None,
    moves: Sequence[MoveOperation] = (),
) -> tuple[Snapshot, TransactionLog]:
    """Write the commit objects of ``change_set`` on ``base``; return the snapshot and the log.

    ``live`` are the nodes the snapshot lists (the base overlaid by the change set),
    sorted by path. Nothing is published: the caller moves the branch (or not).

    The manifests and the transaction log are encoded and stored concurrently (large ones
    in worker threads), each exactly once; the snapshot, which lists the manifests, is
    stored last. Chunk coordinates stay numpy arrays from the change set to the encoders,
    so the returned log's ``updated_chunks`` is empty (except for an amend, which folds in
    the replaced commit's log): read the log back for the coordinates. ``moves`` (a
    rearrange session's net moves) go to the log's ``moved_nodes``.
    """
    objects.check_writable()
    spec = objects.spec_version
    cs = change_set
    snapshot_id = new_id12()
    new_manifests: dict[bytes, ManifestFileInfo] = {}
    nodes: list[NodeSnapshot] = []
    updated_chunks: dict[bytes, ChunkList] = {}

    # Arrays' manifests are laid out (split per the config) and stored by the
    # ManifestWriter, all arrays concurrently; with ``rewrite`` (Repository.rewrite_manifests)
    # every array's manifests are rewritten.
    array_jobs: list[tuple[int, Node, ArrayManifestJob]] = []
    for node in live:
        path = node.path
        nodes.append(NodeSnapshot(node.node_id, path, node.user_data, None))
        if not node.meta.is_array:
            continue
        meta = node.meta
        old_refs = node.base.array.manifests if node.base and node.base.array else ()
        changes = cs.chunks.get(node.node_id)
        coords = None
        if changes:
            coords = changed_coords(changes, len(meta.num_chunks))
            updated_chunks[node.node_id] = coords
        job = ArrayManifestJob(
            node_id=node.node_id,
            path=path,
            num_chunks=meta.num_chunks,
            dimension_names=meta.dimension_names,
            base_refs=old_refs,
            changes=changes,
            rewrite=rewrite,
            changed=coords,
        )
        array_jobs.append((len(nodes) - 1, node, job))

    tx = TransactionLog(id=snapshot_id, spec_version=spec)
    for change in cs.nodes.values():
        if change.is_new:
            (tx.new_arrays if change.is_array else tx.new_groups).append(change.node_id)
        else:
            (tx.updated_arrays if change.is_array else tx.updated_groups).append(change.node_id)
    for node_id, is_array in cs.deleted.values():
        (tx.deleted_arrays if is_array else tx.deleted_groups).append(node_id)
    tx.moved_nodes = list(moves)

    async def write_transaction_log() -> None:
        chunk_coords: dict[bytes, ChunkList] = updated_chunks
        if tx_parent is not None:
            # An amend replaces the tip: its log must also carry the replaced commit's
            # changes, or diffs and rebases over the amended commit would miss them.
            tx.updated_chunks = {
                k: list(map(tuple, np.asarray(v).tolist())) for k, v in updated_chunks.items()
            }
            tx.absorb(await objects.load_transaction_log(tx_parent))
            chunk_coords = dict(tx.updated_chunks)
        for lst in (
            tx.new_groups,
            tx.new_arrays,
            tx.deleted_groups,
            tx.deleted_arrays,
            tx.updated_arrays,
            tx.updated_groups,
        ):
            lst.sort()
        if sum(len(c) for c in chunk_coords.values()) >= THREAD_ENCODE_MIN_REFS:
            data = await asyncio.to_thread(
                encode_transaction_log, tx, spec, chunk_coords=chunk_coords
            )
        else:
            data = encode_transaction_log(tx, spec, chunk_coords=chunk_coords)
        await objects.storage.put(layout.transaction_key(snapshot_id), data, WriteMode.OVERWRITE)

    manifest_config = objects.config.manifest
    writer = ManifestWriter(
        objects,
        base,
        objects.config.splitting,
        max_fetches=manifest_config.max_concurrent_manifest_fetches_during_commit
        if manifest_config is not None
        else None,
    )
    # manifests and the transaction log are independent: write them concurrently
    array_refs, _ = await asyncio.gather(
        writer.write_arrays([job for _, _, job in array_jobs]), write_transaction_log()
    )
    for (i, node, _), manifest_refs in zip(array_jobs, array_refs, strict=True):
        meta = node.meta
        array = ArrayData(meta.dimension_shapes(), meta.dimension_names, manifest_refs)
        nodes[i] = NodeSnapshot(node.node_id, node.path, node.user_data, array)
    new_manifests.update(writer.new_manifests)

    used: dict[bytes, ManifestFileInfo] = {}
    for n in nodes:
        if n.array is not None:
            for mref in n.array.manifests:
                info = new_manifests.get(mref.object_id)
                if info is None:
                    info = base.manifest_files.get(mref.object_id)
                if info is None:
                    raise SessionStateError(
                        f"manifest {encode_id(mref.object_id)} is referenced by "
                        f"`{n.path}` but missing from the base snapshot's manifest list",
                        ErrorKind.FORMAT,
                    )
                used[mref.object_id] = info
    flushed_at = max(now_us(), base.snapshot.flushed_at + 1)
    snapshot = Snapshot(
        id=snapshot_id,
        parent_id=base.snapshot.id if spec == 1 else None,
        nodes=nodes,
        flushed_at=flushed_at,
        message=message,
        metadata=props,
        manifest_files=sorted(used.values(), key=lambda m: m.id),
        spec_version=spec,
    )
    await objects.storage.put(
        layout.snapshot_key(snapshot_id),
        objects.encode_snapshot(snapshot),
        WriteMode.CREATE,
    )
    objects.cache_snapshot(snapshot)
    return snapshot, tx
