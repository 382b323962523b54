"""A process-wide, byte-bounded cache of decoded immutable objects (snapshots, manifests).

Snapshot, manifest and transaction-log objects never change once written and their ids are 96
random bits, so a decoded object can be cached under its id alone, shared by every repository
handle and session of the process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

__all__ = ["ObjectCache", "default_cache"]


class ObjectCache:
    """LRU cache bounded by the sum of the callers' size estimates."""

    def __init__(self, max_bytes: int = 512 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, bytes], tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, kind: str, key: bytes) -> Any | None:
        with self._lock:
            item = self._items.get((kind, key))
            if item is None:
                return None
            self._items.move_to_end((kind, key))
            return item[0]

    def put(self, kind: str, key: bytes, value: Any, size: int) -> None:
        if size > self.max_bytes // 4:
            return  # too large to be worth evicting everything else for
        with self._lock:
            old = self._items.pop((kind, key), None)
            if old is not None:
                self._bytes -= old[1]
            self._items[(kind, key)] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes and self._items:
                _, (_, evicted) = self._items.popitem(last=False)
                self._bytes -= evicted

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


default_cache = ObjectCache()
