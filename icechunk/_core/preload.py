"""Manifest preloading: fetch the manifests a new session will likely read, in the background.

When a session opens, :func:`start_preload` picks manifests of the session's snapshot with the
repository's :class:`~icechunk.config.ManifestPreloadConfig` and fetches them concurrently into
the process-wide object cache on a background task, so that the first chunk reads find them
loaded. Opening the session never waits for that task, and a failed fetch is logged and
forgotten (the manifest is fetched on first use instead).

Selection follows the real Icechunk: arrays in path order, at most ``max_arrays_to_scan`` of them
(matching or not); each manifest of an array, once, when the condition matches the array's path
and the manifest's number of chunk references and the refs selected so far plus its own stay
within ``max_total_refs``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from icechunk._core.cache import default_cache
from icechunk.format.ids import encode_id
from icechunk.manifest_preload import condition_matches, effective_preload, never_matches

if TYPE_CHECKING:
    from icechunk._core.objects import RepoObjects
    from icechunk.format.model import Snapshot

__all__ = ["select_manifests", "start_preload", "wait_for_preloads"]

_log = logging.getLogger(__name__)

_running: set[asyncio.Task[list[bytes]]] = set()
"""Preload tasks not finished yet (strong references: the event loop keeps only weak ones)."""


def select_manifests(objects: RepoObjects, snapshot: Snapshot) -> list[bytes]:
    """Ids of the manifests of ``snapshot`` that the repository's preload config selects."""
    manifest = objects.config.manifest
    max_refs, max_arrays, condition = effective_preload(
        None if manifest is None else manifest.preload
    )
    if max_refs == 0 or never_matches(condition):
        return []
    infos = {info.id: info for info in snapshot.manifest_files}
    chosen: list[bytes] = []
    seen: set[bytes] = set()
    total = 0
    scanned = 0
    for node in sorted((n for n in snapshot.nodes if n.array is not None), key=lambda n: n.path):
        if scanned >= max_arrays:
            break
        scanned += 1
        assert node.array is not None
        for ref in node.array.manifests:
            info = infos.get(ref.object_id)
            if info is None or ref.object_id in seen:
                continue
            if total + info.num_chunk_refs <= max_refs and condition_matches(
                condition, node.path, info.num_chunk_refs
            ):
                seen.add(ref.object_id)
                chosen.append(ref.object_id)
                total += info.num_chunk_refs
    return chosen


async def _preload(objects: RepoObjects, manifest_ids: list[bytes]) -> list[bytes]:
    async def one(manifest_id: bytes) -> bytes | None:
        if (
            default_cache.get("manifestview", manifest_id) is not None
            or default_cache.get("manifest", manifest_id) is not None
        ):
            return manifest_id
        try:
            await objects.manifest_view(manifest_id)
        except Exception as exc:  # noqa: BLE001 - a failed preload must not fail anything
            _log.warning("failure preloading manifest %s: %s", encode_id(manifest_id), exc)
            return None
        return manifest_id

    done = await asyncio.gather(*(one(m) for m in manifest_ids))
    return [m for m in done if m is not None]


def start_preload(objects: RepoObjects, snapshot: Snapshot) -> asyncio.Task[list[bytes]] | None:
    """Start preloading ``snapshot``'s selected manifests on the running loop; do not wait.

    Returns the background task (its result: the ids of the manifests now cached), or ``None``
    when nothing is selected. Must be called from a coroutine.
    """
    try:
        manifest_ids = select_manifests(objects, snapshot)
    except Exception as exc:  # noqa: BLE001 - nor a bad condition the session
        _log.warning("failure selecting manifests to preload: %s", exc)
        return None
    if not manifest_ids:
        return None
    task = asyncio.get_running_loop().create_task(_preload(objects, manifest_ids))
    _running.add(task)
    task.add_done_callback(_running.discard)
    return task


async def wait_for_preloads() -> None:
    """Wait until the preload tasks started on the running loop so far have finished."""
    loop = asyncio.get_running_loop()
    mine = [t for t in _running if t.get_loop() is loop]
    if mine:
        await asyncio.gather(*mine)
