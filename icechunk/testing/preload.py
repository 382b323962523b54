"""Wait for the background manifest preloads that opening sessions started.

Sessions preload manifests on a background task (see
:class:`~icechunk.config.ManifestPreloadConfig`); a test that counts storage reads waits for
those tasks with these helpers instead of sleeping.
"""

from __future__ import annotations

from icechunk._core.preload import wait_for_preloads
from icechunk._sync import sync

__all__ = ["wait_for_manifest_preloads", "wait_for_manifest_preloads_async"]


async def wait_for_manifest_preloads_async() -> None:
    """Wait for the preloads started so far on the running event loop (async code)."""
    await wait_for_preloads()


def wait_for_manifest_preloads() -> None:
    """Wait for the preloads started so far by sessions opened with the synchronous API."""
    sync(wait_for_preloads())
