"""Background write-back of the immutable objects local storage writes (one per process and root).

Local storage moves immutable objects (chunks, manifests, snapshots, transaction logs) into
place without flushing them; before a ref or the ``repo`` object may name them they must be
durable. Doing all of that at commit time (one ``syncfs(2)`` of the whole filesystem) made the
commit wait for every byte written since the last one, and for everything else dirty on the
machine. A :class:`WriteBack` instead starts making the objects durable as soon as they are
written, on a background thread, and its :meth:`~WriteBack.barrier` (run before a ref moves)
waits only for what is still in flight and flushes the few objects no batch covered yet.

Which objects are not yet known to be durable travels with the storage when it is pickled
(:meth:`WriteBack.transfer` and :meth:`WriteBack.adopt`): a fork returned from a Dask worker
brings the names of the chunks the worker wrote and had not yet seen durable, and the process
that commits flushes those itself (they are normally clean by then, so it costs little). So
the guarantee holds whichever process wrote the chunks, even one that died after returning its
fork, and no process ever waits for another.

Background modes (:data:`MODE`, from the ``ICECHUNK_LOCAL_WRITEBACK`` environment variable; the
default is ``syncfs`` where the system has it, else ``fdatasync``):

``syncfs``
    The background thread calls ``syncfs(2)`` on the root; the kernel's flusher threads do the
    write-back, so the writing process spends no CPU on it. An object is durable once a
    ``syncfs`` that started after it was moved into place has returned. Directory entries are
    covered too.
``fdatasync``
    The background thread ``fdatasync``\\ s each object, then ``fsync``\\ s their directories
    (the write-back then runs, and is accounted, in the writing process).
``commit``
    No background work: the barrier calls ``syncfs(2)`` (the design before this module; kept to
    measure against).

Objects a commit itself writes (manifests, transaction logs, snapshots, the ``repo`` backup)
are needed durable within milliseconds, by the ref write that follows them: those are written
with ``eager=True`` and flushed at once on a flush thread (the object, then its directory), while
the committing thread encodes the next one, instead of joining the next batch.
A barrier then waits for whatever of that is still in flight, and flushes everything else it
finds in one round (objects and directories together).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

__all__ = ["MODE", "PendingWrites", "WriteBack", "fsync_dir", "writeback_for"]

BARRIER_SYNCFS_OVER: Final = 64
"""A barrier left with more than this many objects to flush makes one ``syncfs(2)`` instead of
``fdatasync``\\ -ing them one by one (each costs a device cache flush, about 0.3 ms here)."""
TRANSFER_MAX: Final = 4096
"""Pickling a storage whose process has more objects than this in flight flushes them first,
so a pickled storage stays small."""
_FLUSH_THREADS: Final = 8
BATCH_BYTES: Final = 64 << 20
"""The background thread starts a batch once this many bytes are queued ..."""
BATCH_DELAY: Final = 0.1
"""... or this many seconds after the first object of the batch was queued. Every ``syncfs``
forces a journal commit and costs the caller CPU in proportion to the filesystem's inodes;
one per chunk (or per 5 ms) slowed writes of many small chunks and raised the writers' CPU.
A barrier finds at most this much not yet started, and flushes it itself."""


def _load_syncfs() -> Callable[[int], int] | None:
    """The C library's ``syncfs(2)``, or ``None`` where there is none (non-Linux systems)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    found: Callable[[int], int] = fn
    return found


def _mode_from_env() -> str:
    wanted = os.environ.get("ICECHUNK_LOCAL_WRITEBACK", "").strip().lower()
    if wanted in ("syncfs", "fdatasync", "commit"):
        return wanted
    return "syncfs" if _load_syncfs() is not None else "fdatasync"


MODE: str = _mode_from_env()
"""The background write-back mode of this process (see the module docstring)."""


@dataclass(frozen=True)
class PendingWrites:
    """Objects (absolute paths) and directories not yet known to be durable, to hand over."""

    paths: tuple[str, ...] = ()
    dirs: tuple[str, ...] = ()


@dataclass(eq=False)
class _Batch:
    paths: list[str]
    dirs: set[str]
    done: bool = False
    error: OSError | None = None
    left: int = 0
    """Flush tasks of an eager batch still running."""


def fsync_dir(path: str, *, required: bool = True) -> None:
    """Flush a directory's entries to disk.

    Filesystems that cannot sync directories (EINVAL, ENOTSUP) are tolerated, and so is a
    directory that no longer exists. With ``required=False`` (directories outside the root) a
    directory we may not open is tolerated too.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    except PermissionError:
        if required:
            raise
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _fdatasync_path(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return  # deleted since (garbage collection): nothing to make durable
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def _run_all(calls: Iterable[Callable[[], None]]) -> None:
    for call in calls:
        call()


_POOL: list[ThreadPoolExecutor] = []
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(
                ThreadPoolExecutor(_FLUSH_THREADS, thread_name_prefix="icechunk-local-flush")
            )
        return _POOL[0]


class WriteBack:
    """The objects one process wrote (or was handed) under one root and not yet saw durable.

    Parameters
    ----------
    root
        The storage root (absolute).
    syncfs
        Returns the ``syncfs(2)`` function to use, or ``None`` (looked up at each call, so
        tests can record the calls).
    """

    def __init__(self, root: str, syncfs: Callable[[], Callable[[int], int] | None]) -> None:
        self.root = root
        self._syncfs = syncfs
        self._cond = threading.Condition()
        self._pending: dict[str, None] = {}
        """Objects not in any batch yet (insertion ordered)."""
        self._dirs: set[str] = set()
        """Directories with new entries not in any batch yet."""
        self._inflight: list[_Batch] = []
        self._queued_bytes = 0
        self._queued_since = 0.0
        self._thread: threading.Thread | None = None
        self._failed: OSError | None = None
        """A background batch failed: the background thread stopped; barriers do it all."""

    # -- recording ---------------------------------------------------------------------------

    def written(
        self, path: str, nbytes: int = 0, new_dirs: Iterable[str] = (), *, eager: bool = False
    ) -> None:
        """Record that ``path`` (``nbytes`` long) was moved into place (and ``new_dirs`` got
        new entries).

        With ``eager`` the object (and its directory, and ``new_dirs``) are flushed at once on
        the flush threads rather than with the next batch: for objects a barrier will soon
        wait for (a commit's manifests, log and snapshot).
        """
        if eager and MODE != "commit":
            self._flush_now(path, new_dirs)
            self._hurry()
            return
        with self._cond:
            first = not self._pending
            if first:
                self._queued_since = time.monotonic()
            self._queued_bytes += nbytes
            self._pending[path] = None
            self._dirs.add(os.path.dirname(path))
            self._dirs.update(new_dirs)
            if MODE != "commit" and self._failed is None:
                if self._thread is None:
                    self._start()
                if first or self._queued_bytes >= BATCH_BYTES:
                    self._cond.notify_all()

    def adopt(self, pending: PendingWrites) -> None:
        """Take over objects another process wrote and did not see durable.

        They join the next background batch: the worker that wrote them has its own batch
        in flight (flushing them here too, at once and one by one, measured no faster: it
        only adds threads competing with the commit for the interpreter).
        """
        if not pending.paths and not pending.dirs:
            return
        with self._cond:
            if not self._pending:
                self._queued_since = time.monotonic()
            self._pending.update(dict.fromkeys(pending.paths))
            self._dirs.update(pending.dirs)
            if MODE != "commit" and self._failed is None:
                if self._thread is None:
                    self._start()
                self._cond.notify_all()

    def transfer(self) -> PendingWrites:
        """What a copy of the storage in another process must still make durable."""
        with self._cond:
            count = len(self._pending) + sum(len(b.paths) for b in self._inflight)
        if count > TRANSFER_MAX:
            self.barrier()
        with self._cond:
            paths = list(self._pending)
            dirs = set(self._dirs)
            for batch in self._inflight:
                paths += batch.paths
                dirs |= batch.dirs
        # another process will soon wait for these (a fork on its way to the committer)
        self._hurry()
        return PendingWrites(tuple(paths), tuple(sorted(dirs)))

    def _hurry(self) -> None:
        """Start the pending batch now rather than at the end of its delay: a barrier is near
        (a commit has begun writing its own objects, or a fork is on its way to one).

        Only where the batch is one ``syncfs(2)``: a batch of ``fdatasync`` calls runs one by
        one on the background thread, and a barrier does better flushing them in parallel.
        """
        if MODE != "syncfs" or self._syncfs() is None:
            return
        with self._cond:
            if self._pending and self._thread is not None:
                # (-inf, not 0: time.monotonic() may be smaller than the delay on a fresh machine)
                self._queued_since = -math.inf
                self._cond.notify_all()

    @property
    def outstanding(self) -> int:
        """Objects not yet known to be durable (queued or in flight)."""
        with self._cond:
            return len(self._pending) + sum(len(b.paths) for b in self._inflight)

    # -- the background thread ---------------------------------------------------------------

    def _start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="icechunk-local-writeback", daemon=True
        )
        self._thread.start()

    def _flush_calls(self, paths: Iterable[str], dirs: Iterable[str]) -> list[Callable[[], None]]:
        """One call per flush: ``fdatasync`` each object, ``fsync`` each directory."""
        calls: list[Callable[[], None]] = [functools.partial(_fdatasync_path, p) for p in paths]
        return calls + [functools.partial(self._fsync_dir, d) for d in dirs]

    def _flush_now(self, path: str, new_dirs: Iterable[str]) -> None:
        """Start flushing ``path``, then its directories, now on one flush thread.

        One task per object, not one per flush: every task is a thread taking the interpreter
        lock from the committing thread two or three times, and with one task per flush those
        hand-overs cost a commit after a Dask write about 1 ms (of 6-7) on a two-core machine;
        the directory's flush right after the object's usually finds the journal committed.
        """
        batch = _Batch([path], {os.path.dirname(path), *new_dirs})
        calls = self._flush_calls(batch.paths, sorted(batch.dirs, key=len, reverse=True))
        batch.left = 1
        with self._cond:
            self._inflight.append(batch)
        _pool().submit(self._run_eager, batch, functools.partial(_run_all, calls))

    def _run_eager(self, batch: _Batch, task: Callable[[], None]) -> None:
        error: OSError | None = None
        try:
            task()
        except OSError as exc:
            error = exc
        with self._cond:
            if error is not None and batch.error is None:
                batch.error = error
            batch.left -= 1
            if batch.left == 0:
                failed = batch.error
                self._finish(batch, failed)
                if failed is not None and self._failed is None:
                    self._failed = failed

    def _take(self) -> _Batch:
        """Move everything queued into a new in-flight batch (caller holds the lock)."""
        batch = _Batch(list(self._pending), self._dirs)
        self._pending = {}
        self._dirs = set()
        self._queued_bytes = 0
        self._inflight.append(batch)
        return batch

    def _finish(self, batch: _Batch, error: OSError | None) -> None:
        """Settle ``batch`` (caller holds the lock): on failure its objects are queued again."""
        self._inflight.remove(batch)
        batch.error = error
        batch.done = True
        if error is not None:
            self._pending.update(dict.fromkeys(batch.paths))
            self._dirs |= batch.dirs
        self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._dirs:
                    self._cond.wait()
                # let a batch fill up a little (see BATCH_BYTES / BATCH_DELAY)
                while self._pending and self._queued_bytes < BATCH_BYTES:
                    left = self._queued_since + BATCH_DELAY - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                if not self._pending and not self._dirs:
                    continue  # a barrier took them
                batch = self._take()
            error: OSError | None = None
            try:
                if MODE == "syncfs" and self._syncfs() is not None:
                    self._sync_filesystem()
                else:
                    self._sync_each(batch, parallel=False)
            except OSError as exc:
                error = exc
            with self._cond:
                self._finish(batch, error)
                if error is not None:
                    self._failed = error
                    self._thread = None
                    return

    # -- flushing ----------------------------------------------------------------------------

    def _sync_filesystem(self) -> None:
        syncfs = self._syncfs()
        assert syncfs is not None
        try:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        try:
            if syncfs(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
        finally:
            os.close(fd)

    def _sync_each(self, batch: _Batch, *, parallel: bool) -> None:
        """``fdatasync`` the batch's objects and ``fsync`` its directories.

        ``parallel``: all of them at once on the flush threads (one round of device flushes;
        the order among them does not matter, only that all are done before a ref moves).
        """
        dirs = sorted(batch.dirs, key=len, reverse=True)
        if parallel and len(batch.paths) + len(dirs) > 1:
            pool = _pool()
            futures = [pool.submit(call) for call in self._flush_calls(batch.paths, dirs)]
            errors: list[OSError] = []
            for fut in futures:
                try:
                    fut.result()
                except OSError as exc:
                    errors.append(exc)
            if errors:
                raise errors[0]
            return
        for call in self._flush_calls(batch.paths, dirs):
            call()

    def _fsync_dir(self, path: str) -> None:
        inside = path == self.root or path.startswith(self.root.rstrip(os.sep) + os.sep)
        fsync_dir(path, required=inside)

    def barrier(self) -> None:
        """Block until every object recorded or adopted so far is durable.

        Flushes what no batch covers yet (``fdatasync`` of each, or one ``syncfs(2)`` when
        there are many), then waits for the batches in flight.

        Raises
        ------
        OSError
            The operating system reported a write-back error, here or in a background batch
            since the last barrier; the objects stay queued.
        """
        with self._cond:
            self._raise_failure()
            waiting = list(self._inflight)
            mine = self._take() if (self._pending or self._dirs) else None
        error: OSError | None = None
        if mine is not None:
            try:
                use_syncfs = self._syncfs() is not None and (
                    MODE == "commit" or len(mine.paths) > BARRIER_SYNCFS_OVER
                )
                if use_syncfs:
                    self._sync_filesystem()
                else:
                    self._sync_each(mine, parallel=True)
            except OSError as exc:
                error = exc
            with self._cond:
                self._finish(mine, error)
        if error is not None:
            raise error
        with self._cond:
            while not all(b.done for b in waiting):
                self._cond.wait()
            if any(b.error is not None for b in waiting):
                self._raise_failure()

    def _raise_failure(self) -> None:
        """Report a failed background batch once (caller holds the lock).

        Its objects were queued again: the next barrier flushes them itself, and the background
        thread starts again with the next write.
        """
        failed, self._failed = self._failed, None
        if failed is not None:
            raise failed

    def after_fork_in_child(self) -> None:
        """Reset the threads' state in a forked child; what was in flight is queued again."""
        self._cond = threading.Condition()
        for batch in self._inflight:
            self._pending.update(dict.fromkeys(batch.paths))
            self._dirs |= batch.dirs
        self._inflight = []
        self._thread = None


_REGISTRY: dict[str, WriteBack] = {}
_REGISTRY_LOCK = threading.Lock()


def writeback_for(root: str, syncfs: Callable[[], Callable[[int], int] | None]) -> WriteBack:
    """The process's :class:`WriteBack` of ``root`` (one per root, shared by its storages)."""
    with _REGISTRY_LOCK:
        wb = _REGISTRY.get(root)
        if wb is None:
            wb = _REGISTRY[root] = WriteBack(root, syncfs)
        return wb


def _after_fork_in_child() -> None:
    global _REGISTRY_LOCK, _POOL_LOCK
    _REGISTRY_LOCK = threading.Lock()
    _POOL_LOCK = threading.Lock()
    _POOL.clear()
    for wb in _REGISTRY.values():
        with contextlib.suppress(Exception):
            wb.after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
