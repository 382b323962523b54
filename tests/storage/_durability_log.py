"""A cross-process log of local storage's durability-relevant system calls, and its power-loss model.

:func:`install` wraps ``os.fsync``, ``os.fdatasync``, ``os.replace``, ``os.link``, ``os.mkdir``
and local storage's ``syncfs`` in the calling process (any thread) so that each call appends
one JSON line (start and end on the system-wide monotonic clock, pid, call, path relative to
the repository root) to a shared file opened with ``O_APPEND``. Child processes (spawned Dask
workers, writers that die) install it too, so the log holds every process's calls.

:class:`PowerLossModel` answers, from the log alone: had the power failed at time ``t``, which
objects and directory entries would be guaranteed to be on disk? An entry made at ``t0`` (a
rename/link into place, a ``mkdir``) is durable at ``t`` if a ``syncfs`` of the filesystem
started after ``t0`` and returned before ``t``, or if (for a file) its data were flushed
(``fsync``/``fdatasync`` started after ``t0``, returned before ``t``) *and* its directory was
``fsync``\\ ed in the same way, recursively for directories created on the way.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from icechunk.storage import local as local_module


@dataclass(frozen=True)
class Event:
    start: int
    end: int
    pid: int
    call: str
    path: str
    dest: str = ""


def install(log_path: str, root: str) -> Callable[[], None]:
    """Record this process's calls into ``log_path``; returns a function that uninstalls."""
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    lock = threading.Lock()
    real = {
        "fsync": os.fsync,
        "fdatasync": os.fdatasync,
        "replace": os.replace,
        "link": os.link,
        "mkdir": os.mkdir,
    }
    real_syncfs = local_module._syncfs
    assert real_syncfs is not None, "these tests need Linux's syncfs(2)"

    def rel(path: str) -> str:
        r = os.path.relpath(path, root)
        return "." if r == "." else r.replace(os.sep, "/")

    def emit(start: int, call: str, path: str, dest: str = "") -> None:
        line = json.dumps([start, time.monotonic_ns(), os.getpid(), call, path, dest]) + "\n"
        with lock:
            os.write(fd, line.encode())

    def fd_path(f: int) -> str:
        return rel(os.readlink(f"/proc/self/fd/{f}"))

    def fsync(f: int) -> None:
        t = time.monotonic_ns()
        real["fsync"](f)
        emit(t, "fsync", fd_path(f))

    def fdatasync(f: int) -> None:
        t = time.monotonic_ns()
        real["fdatasync"](f)
        emit(t, "fsync", fd_path(f))

    def replace(src: Any, dst: Any) -> None:
        t = time.monotonic_ns()
        real["replace"](src, dst)
        emit(t, "move", rel(os.fspath(src)), rel(os.fspath(dst)))

    def link(src: Any, dst: Any) -> None:
        t = time.monotonic_ns()
        real["link"](src, dst)
        emit(t, "move", rel(os.fspath(src)), rel(os.fspath(dst)))

    def mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
        t = time.monotonic_ns()
        real["mkdir"](path, *args, **kwargs)
        emit(t, "mkdir", rel(os.fspath(path)))

    def syncfs(f: int) -> int:
        t = time.monotonic_ns()
        rc = real_syncfs(f)
        if rc == 0:
            emit(t, "syncfs", ".")
        return rc

    os.fsync, os.fdatasync = fsync, fdatasync
    os.replace, os.link, os.mkdir = replace, link, mkdir  # type: ignore[assignment]
    local_module._syncfs = syncfs

    def uninstall() -> None:
        os.fsync, os.fdatasync = real["fsync"], real["fdatasync"]
        os.replace, os.link, os.mkdir = real["replace"], real["link"], real["mkdir"]  # type: ignore[assignment]
        local_module._syncfs = real_syncfs
        os.close(fd)

    return uninstall


def read(log_path: str) -> list[Event]:
    """Every event of the log, by end time."""
    with open(log_path) as f:
        events = [Event(*json.loads(line)) for line in f if line.strip()]
    return sorted(events, key=lambda e: e.end)


def _parent(path: str) -> str:
    return path.rpartition("/")[0] or "."


class PowerLossModel:
    """What a power loss at a given moment would keep, by the log (see the module docstring)."""

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self.syncfs = [e for e in events if e.call == "syncfs"]
        self.flushes: dict[str, list[Event]] = {}
        for e in events:
            if e.call == "fsync":
                self.flushes.setdefault(e.path, []).append(e)
        self.created: dict[str, int] = {}
        """Directory -> end of its mkdir."""
        for e in events:
            if e.call == "mkdir":
                self.created.setdefault(e.path, e.end)

    def moves(self) -> Iterator[Event]:
        return (e for e in self.events if e.call == "move")

    def _covered(self, made: int, at: int, flushes: list[Event]) -> bool:
        return any(made < s.start and s.end < at for s in [*self.syncfs, *flushes])

    def entry_durable(self, path: str, made: int, at: int) -> bool:
        """The directory entry ``path`` (made at ``made``) survives a power loss at ``at``.

        The root's own entry, in a directory outside the repository, is not modelled.
        """
        if path == "." or path.startswith(".."):
            return True
        parent = _parent(path)
        if not self._covered(made, at, self.flushes.get(parent, [])):
            return False
        return parent not in self.created or self.entry_durable(parent, self.created[parent], at)

    def object_durable(self, move: Event, at: int) -> bool:
        """The object moved into place by ``move`` survives, content and name, at ``at``."""
        data_ok = self._covered(move.end, at, self.flushes.get(move.dest, [])) or any(
            # flushed under its temporary name, before the move
            f.end < move.start
            for f in self.flushes.get(move.path, [])
        )
        return data_ok and self.entry_durable(move.dest, move.end, at)
