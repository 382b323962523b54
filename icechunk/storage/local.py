"""Storage in a directory of the local filesystem (POSIX only).

Layout and guarantees
---------------------
The key ``snapshots/ABC`` is the file ``<root>/snapshots/ABC``; directories are created on first
write, and the root itself is not created until then. Keys that could name anything outside the
root are rejected (see :func:`~icechunk.storage._common.validate_key`).

* **Atomic writes.** Every put writes a temporary file and moves it into place with one atomic
  system call: readers see the old or the new object, never a torn one, and an interrupted write
  leaves at most a stray temporary file, never a partial object under its key.
* **Durability, ordered.** Keys fall in two classes (see :func:`is_immutable_key`):

  - *immutable objects* (``chunks/``, ``manifests/``, ``snapshots/``, ``transactions/``,
    ``overwritten/``), which have fresh random names and are only ever referenced *after* they
    are written, are moved into place without ``fsync``: a write lost in a crash is garbage
    nobody points to;
  - everything else, notably the mutable ``repo`` object, ``refs/`` and ``config.yaml``, is
    written only after a *durability barrier* (:meth:`LocalFileSystemStorage.barrier`) has made
    every immutable object written so far durable, and is then itself ``fsync``\\ ed, moved
    into place and its directory ``fsync``\\ ed. A ref that survives a crash therefore never
    names an object that did not.

  The barrier is cheap because the objects are made durable *in the background* from the
  moment they are written (:mod:`icechunk.storage._writeback`: ``syncfs(2)`` batches on a
  thread of each writing process, the kernel's flusher threads doing the work); it waits only
  for what is still in flight and flushes what no batch covered yet. Objects written by other
  processes (Dask workers) reach the committing process by the pickled storage of the fork
  they return, which names those the worker had not yet seen durable; the barrier flushes them
  too. ``durable=False`` (``StorageSettings(unsafe_use_fsync=False)``) turns all of this off.

* **Create-only** puts move the temporary file with ``link(2)``, which fails if the key exists.
* **Compare-and-swap** (:class:`~icechunk.storage.base.IfMatch`) is safe across threads *and
  processes* (the real Icechunk turns it off for local storage): the read-compare-replace runs
  under an exclusive ``flock(2)`` on a lock file. Unconditional overwrites and deletes take the
  same lock, so they linearize with compare-and-swap on the same key. Lock files are striped: a
  key's lock is one of :data:`LOCK_STRIPES` files chosen by a hash of the key, so their number
  stays bounded.
* **Versions** are content hashes (128 bits of SHA-256, in hex), identical in every process. Two
  writes of identical bytes share a version; that is harmless for compare-and-swap, whose purpose
  is to detect a change of content. Immutable objects, which never change, are versioned by their
  size instead, so chunk writes spend no CPU on hashing.

Temporary and lock files live in two hidden directories at the root, :data:`TMP_DIR` and
:data:`LOCK_DIR`. :meth:`LocalFileSystemStorage.list` never yields anything inside them and keys
may not start with them. A crash can leave stray temporary files behind; they are never read and
can be deleted at any time no write is in progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import os
import stat
import threading
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from icechunk._sync import may_block
from icechunk.errors import (
    ErrorKind,
    InvalidInputError,
    ObjectNotFoundError,
    PreconditionFailedError,
    StorageError,
)
from icechunk.storage._common import check_byte_range, resolve_byte_range, validate_key
from icechunk.storage._local_keys import (
    EAGER_PREFIXES,
    INLINE_WRITE_MAX,
    LOCK_DIR,
    LOCK_STRIPES,
    TMP_DIR,
    is_immutable_key,
    os_error,
    temp_name,
    version_of,
    write_all,
)
from icechunk.storage._writeback import PendingWrites, _load_syncfs, fsync_dir, writeback_for

if TYPE_CHECKING:
    from icechunk.storage._settings import StorageSettings

from icechunk.storage.base import (
    ByteRange,
    IfMatch,
    ObjectInfo,
    PutMode,
    RangeRequest,
    Storage,
    VersionInfo,
    WriteMode,
)

__all__ = ["LocalFileSystemStorage"]

type _Batch = list[ObjectInfo]
type _Paths = list[str]
_RESERVED = frozenset({TMP_DIR, LOCK_DIR})
_LIST_BATCH = 1000
_NOT_FOUND = (FileNotFoundError, NotADirectoryError, IsADirectoryError)


_syncfs: Callable[[int], int] | None = _load_syncfs()
"""``syncfs(fd)`` returning 0 or -1 (errno set); looked up at call time, so tests can spy."""


def _current_syncfs() -> Callable[[int], int] | None:
    return _syncfs


_TMP_POOL: list[ThreadPoolExecutor] = []
_TMP_POOL_LOCK = threading.Lock()


def _tmp_pool() -> ThreadPoolExecutor:
    """Threads writing the temporary file of a ref while the barrier runs."""
    with _TMP_POOL_LOCK:
        if not _TMP_POOL:
            _TMP_POOL.append(ThreadPoolExecutor(4, thread_name_prefix="icechunk-local-tmp"))
        return _TMP_POOL[0]


def _reset_tmp_pool() -> None:
    global _TMP_POOL_LOCK
    _TMP_POOL_LOCK = threading.Lock()
    _TMP_POOL.clear()


os.register_at_fork(after_in_child=_reset_tmp_pool)


def _restore(
    cls: type[LocalFileSystemStorage], root: str, durable: bool, pending: PendingWrites
) -> LocalFileSystemStorage:
    """Unpickle a storage: the objects its process had not seen durable become this one's."""
    storage = cls(root, durable=durable)
    storage._writeback.adopt(pending)
    return storage


_fsync_dir = fsync_dir


class LocalFileSystemStorage(Storage):
    """Objects as files under a root directory.

    Parameters
    ----------
    root
        The repository directory. Made absolute immediately (so a pickled copy used from another
        working directory reaches the same place) but not created until the first write.
    durable
        ``False`` turns every flush off (no background write-back, no barrier, refs not
        ``fsync``\\ ed): the real Icechunk's behaviour, at the risk that a power loss or kernel
        crash after a commit returned leaves a branch naming chunks or metadata that never
        reached the disk. Chosen per repository with
        ``StorageSettings(unsafe_use_fsync=False)`` (see :meth:`with_durability`).

    Notes
    -----
    File I/O runs in worker threads (:func:`asyncio.to_thread`), except the writes of small
    immutable objects (up to :data:`INLINE_WRITE_MAX` bytes: a few system calls that cost less
    than a thread hop, none of which waits for the device), which run on the calling thread.
    Pickling records the root path, the durability choice and the objects this process wrote
    and has not yet seen durable (see :mod:`icechunk.storage._writeback`); a copy in another
    process reaches the same files, shares their compare-and-swap guarantees, and makes those
    objects durable before any ref it writes can name them. Operating-system errors (permissions, a full disk,
    a key whose parent is a file, ...) become :class:`~icechunk.errors.StorageError` naming the path.
    """

    supports_conditional_update = True

    def __init__(self, root: str | os.PathLike[str], *, durable: bool = True) -> None:
        self._root = os.path.abspath(os.fspath(root))
        self._durable = bool(durable)
        self._writeback = writeback_for(self._root, _current_syncfs)

    @property
    def root(self) -> str:
        """The absolute path of the root directory."""
        return self._root

    @property
    def durable(self) -> bool:
        """Whether writes are made durable before a ref can name them (see ``durable``)."""
        return self._durable

    def with_durability(self, durable: bool) -> LocalFileSystemStorage:
        """This storage, flushing (``durable=True``) or never flushing; ``self`` if unchanged."""
        if bool(durable) == self._durable:
            return self
        return type(self)(self._root, durable=durable)

    def configured(self, settings: StorageSettings) -> LocalFileSystemStorage:
        """This storage as ``settings`` ask (:func:`icechunk.storage.apply_settings`): flushing
        unless ``unsafe_use_fsync`` is ``False``; the other settings have no use here."""
        return self.with_durability(settings.effective_use_fsync)

    def __reduce__(self) -> tuple[Any, ...]:
        pending = self._writeback.transfer() if self._durable else PendingWrites()
        return (_restore, (type(self), self._root, self._durable, pending))

    def __repr__(self) -> str:
        # the real Icechunk's text form
        return f"<icechunk.Storage>\ntype: local filesystem\npath: {self._root}\n"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LocalFileSystemStorage):
            return NotImplemented
        return self._root == other._root

    def __hash__(self) -> int:
        return hash((LocalFileSystemStorage, self._root))

    # -- paths -------------------------------------------------------------------------------

    def _check_key(self, key: str) -> str:
        validate_key(key)
        if key.split("/", 1)[0] in _RESERVED:
            raise InvalidInputError(
                f"invalid storage key {key!r}: {key.split('/', 1)[0]!r} is reserved for "
                "local storage's temporary and lock files",
                ErrorKind.INVALID_KEY,
            )
        return key

    def _inside_root(self, path: str) -> bool:
        return path == self._root or path.startswith(self._root.rstrip(os.sep) + os.sep)

    def _path(self, key: str) -> str:
        """The file of an already validated key."""
        return os.path.join(self._root, *key.split("/"))

    # -- Storage -----------------------------------------------------------------------------

    async def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        # docstring inherited
        self._check_key(key)
        check_byte_range(byte_range)
        return await asyncio.to_thread(self._read, key, byte_range)

    async def get_with_version(self, key: str) -> tuple[bytes, VersionInfo]:
        # docstring inherited
        self._check_key(key)
        return await asyncio.to_thread(self._read_with_version, key)

    async def put(
        self, key: str, data: bytes | memoryview, mode: PutMode = WriteMode.OVERWRITE
    ) -> VersionInfo:
        """Store ``data`` under ``key`` and return the new version (see :meth:`Storage.put`).

        ``data`` may be any flat bytes-like object: it is written as is, without a copy, so
        it must not change until this returns.
        """
        self._check_key(key)
        match mode:
            case WriteMode.OVERWRITE | WriteMode.CREATE | IfMatch():
                pass
            case _:
                raise InvalidInputError(f"unknown put mode: {mode!r}")
        if len(data) <= INLINE_WRITE_MAX and (
            may_block()
            or ((mode is WriteMode.OVERWRITE or mode is WriteMode.CREATE) and is_immutable_key(key))
        ):
            # An immutable object: no fsync, no lock, a handful of fast system calls, cheaper
            # than a thread hop. Anything else (refs, ``repo``: a lock, the durability barrier,
            # an fsync) only where the loop is the caller's own (a commit, see _sync.may_block).
            return self._write(key, data, mode)
        return await asyncio.to_thread(self._write, key, data, mode)

    async def put_copy(self, key: str, data: bytes, *, source: str) -> VersionInfo:
        """Create ``key`` holding ``data`` (see :meth:`Storage.put_copy`): a hard link to
        ``source``'s file when that file still holds ``data``, so the copy costs no new file
        and no bytes written (the real Icechunk backs up ``repo`` the same way); otherwise,
        or where the filesystem cannot link, a create-only put."""
        self._check_key(key)
        self._check_key(source)
        if is_immutable_key(key) and not is_immutable_key(source):
            linked = self._link_copy(key, data, source)
            if linked is not None:
                return linked
        return await self.put(key, data, WriteMode.CREATE)

    def _link_copy(self, key: str, data: bytes, source: str) -> VersionInfo | None:
        path, src = self._path(key), self._path(source)
        new_dirs: list[str] = []
        try:
            try:
                os.link(src, path)
            except FileNotFoundError:
                if not os.path.isfile(src):
                    return None
                self._ensure_parent(path, durable=False, new_entries=new_dirs)
                os.link(src, path)
        except FileExistsError:
            raise PreconditionFailedError(
                f"create-only put failed: {key!r} already exists ({path})"
            ) from None
        except OSError:
            return None  # no hard links here (or a race with a delete): write the bytes
        # The link names whatever ``source`` held at that instant (a ref is replaced by a
        # rename, never rewritten in place): keep it only if that is ``data``.
        try:
            with open(path, "rb") as f:
                same = f.read() == data
        except OSError:
            same = False
        if not same:
            with contextlib.suppress(OSError):
                os.unlink(path)
            return None
        if self._durable:
            self._writeback.written(path, len(data), new_dirs, eager=key.startswith(EAGER_PREFIXES))
        return VersionInfo(version_of(key, data))

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        # docstring inherited
        batches = self._list_batches(prefix)
        try:
            while True:
                batch = await asyncio.to_thread(next, batches, None)
                if batch is None:
                    return
                for info in batch:
                    yield info
        finally:
            # Fails only if a cancelled ``to_thread`` is still running the generator; it is then
            # closed (with its directory handle) when garbage-collected.
            with contextlib.suppress(ValueError):
                batches.close()

    async def delete(self, keys: Iterable[str]) -> None:
        # docstring inherited
        checked = [self._check_key(key) for key in keys]
        if checked:
            await asyncio.to_thread(self._delete, checked)

    async def exists(self, key: str) -> bool:
        # docstring inherited
        self._check_key(key)
        return await asyncio.to_thread(os.path.isfile, self._path(key))

    # -- blocking implementation (runs in worker threads) ------------------------------------

    def _read(self, key: str, byte_range: ByteRange | None) -> bytes:
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except _NOT_FOUND:
            raise ObjectNotFoundError(f"object not found: {key!r} ({path})") from None
        except OSError as exc:
            raise os_error("read", path, exc) from exc
        try:
            if isinstance(byte_range, RangeRequest):
                # clipping at the end of the file happens by itself: no need to stat it
                start, end = byte_range.start, byte_range.end
            else:
                start, end = resolve_byte_range(byte_range, os.fstat(fd).st_size)
            if start >= end and not stat.S_ISREG(os.fstat(fd).st_mode):
                raise IsADirectoryError(errno.EISDIR, "is a directory")
            parts: list[bytes] = []
            while start < end:
                part = os.pread(fd, end - start, start)
                if not part:
                    break
                parts.append(part)
                start += len(part)
            return parts[0] if len(parts) == 1 else b"".join(parts)
        except IsADirectoryError:
            raise ObjectNotFoundError(f"object not found: {key!r} ({path})") from None
        except OSError as exc:
            raise os_error("read", path, exc) from exc
        finally:
            os.close(fd)

    def _read_with_version(self, key: str) -> tuple[bytes, VersionInfo]:
        data = self._read(key, None)
        return data, VersionInfo(version_of(key, data))

    def _lock_path(self, key: str) -> str:
        digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
        stripe = int.from_bytes(digest) % LOCK_STRIPES
        return os.path.join(self._root, LOCK_DIR, f"{stripe:03d}.lock")

    def _create_lock_file(self, key: str) -> None:
        """Create the lock file guarding ``key`` if missing, so that the compare-and-swaps
        of a mutable object created now (``repo``, a ref) only open it."""
        lock_path = self._lock_path(key)
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
        try:
            try:
                fd = os.open(lock_path, flags, 0o644)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(lock_path), exist_ok=True)
                fd = os.open(lock_path, flags, 0o644)
        except OSError as exc:
            raise os_error("create the lock file", lock_path, exc) from exc
        os.close(fd)

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        """Hold the exclusive cross-process lock guarding ``key`` (and its stripe-mates)."""
        lock_path = self._lock_path(key)
        lock_dir = os.path.dirname(lock_path)
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
        try:
            try:
                fd = os.open(lock_path, flags, 0o644)
            except FileNotFoundError:
                os.makedirs(lock_dir, exist_ok=True)
                fd = os.open(lock_path, flags, 0o644)
        except OSError as exc:
            raise os_error("open the lock file", lock_path, exc) from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as exc:
                raise os_error("lock", lock_path, exc) from exc
            yield
        finally:
            os.close(fd)  # closing the only descriptor releases the flock

    def _ensure_parent(
        self, path: str, durable: bool = True, new_entries: _Paths | None = None
    ) -> str:
        """Create the directories above ``path`` that are missing; return the parent.

        With ``durable`` each new directory entry is ``fsync``\\ ed at once; otherwise the
        directories that got a new entry are appended to ``new_entries`` (when given) for the
        write-back to flush.
        """
        parent = os.path.dirname(path)
        if os.path.isdir(parent):
            return parent
        missing: list[str] = []
        current = parent
        while not os.path.isdir(current):
            missing.append(current)
            up = os.path.dirname(current)
            if up == current:
                break
            current = up
        for directory in reversed(missing):
            try:
                os.mkdir(directory)
            except FileExistsError:
                if not os.path.isdir(directory):
                    raise StorageError(
                        f"local storage could not create directory {directory!r}: "
                        "a file of that name exists"
                    ) from None
            except OSError as exc:
                raise os_error("create directory", directory, exc) from exc
            if not durable:
                if new_entries is not None:
                    new_entries.append(os.path.dirname(directory))
                continue
            # The new entry must reach the disk too, or a crash could lose the whole subtree.
            up = os.path.dirname(directory)
            try:
                _fsync_dir(up, required=self._inside_root(up))
            except OSError as exc:
                raise os_error("sync directory", up, exc) from exc
        return parent

    def _write_temp(self, data: bytes | memoryview, durable: bool) -> str:
        """Write ``data`` to a fresh temporary file (``fsync``\\ ed if ``durable``); its path."""
        tmp_dir = os.path.join(self._root, TMP_DIR)
        name = temp_name()
        tmp_path = os.path.join(tmp_dir, name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            try:
                fd = os.open(tmp_path, flags, 0o644)
            except FileNotFoundError:
                self._ensure_parent(tmp_path, durable=False)
                fd = os.open(tmp_path, flags, 0o644)
        except OSError as exc:
            raise os_error("create temporary file", tmp_path, exc) from exc
        try:
            try:
                write_all(fd, data)
                if durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp_path)
            raise os_error("write", tmp_path, exc) from exc
        return tmp_path

    def _write(self, key: str, data: bytes | memoryview, mode: PutMode) -> VersionInfo:
        path = self._path(key)
        version = VersionInfo(version_of(key, data))
        immutable = is_immutable_key(key) and not isinstance(mode, IfMatch)
        flush = self._durable and not immutable
        if flush and not self._writeback.outstanding:
            # nothing this object may point to is still to be made durable: no barrier wait
            tmp_path = self._write_temp(data, durable=True)
        elif flush:
            # Whatever this object may point to must be durable before it is: the barrier,
            # while another thread writes and flushes the temporary file (two device flushes
            # at once instead of one after the other).
            pending = _tmp_pool().submit(self._write_temp, data, True)
            try:
                self.barrier()
            except BaseException:
                with contextlib.suppress(BaseException):
                    os.unlink(pending.result())
                raise
            tmp_path = pending.result()
        else:
            tmp_path = self._write_temp(data, durable=False)
        new_dirs: list[str] = []
        moved = False
        try:
            if isinstance(mode, IfMatch):
                self._replace_if_match(key, path, tmp_path, mode.version)
            elif mode is WriteMode.CREATE:
                parent = self._ensure_parent(path, durable=flush, new_entries=new_dirs)
                try:
                    os.link(tmp_path, path)
                except FileExistsError:
                    raise PreconditionFailedError(
                        f"create-only put failed: {key!r} already exists ({path})"
                    ) from None
                except OSError as exc:
                    raise os_error("create", path, exc) from exc
                if flush:
                    self._sync_dir(parent)
                if not immutable:
                    self._create_lock_file(key)
            elif immutable:
                # written once under a fresh name: no other writer to linearize with. The
                # directory usually exists: create it only when the move says it is missing.
                try:
                    try:
                        os.replace(tmp_path, path)
                    except FileNotFoundError:
                        self._ensure_parent(path, durable=False, new_entries=new_dirs)
                        os.replace(tmp_path, path)
                except OSError as exc:
                    raise os_error("write", path, exc) from exc
                moved = True
            else:
                parent = self._ensure_parent(path, durable=flush)
                with self._locked(key):
                    try:
                        os.replace(tmp_path, path)
                    except OSError as exc:
                        raise os_error("write", path, exc) from exc
                    moved = True
                    if flush:
                        self._sync_dir(parent)
        finally:
            if not moved:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp_path)
        if immutable and self._durable:
            self._writeback.written(path, len(data), new_dirs, eager=key.startswith(EAGER_PREFIXES))
        return version

    def barrier(self) -> None:
        """Make every immutable object this process wrote, or was handed, durable (blocking).

        Called before every write of a key that is not an immutable object (the ``repo``
        object, refs, configuration), so that a ref never reaches the disk before what it
        names. Objects are being made durable in the background since they were written
        (:mod:`icechunk.storage._writeback`): this waits for the batches in flight and flushes
        the rest, which includes the objects that pickled copies of this storage brought from
        other processes (Dask workers). A no-op for a storage with ``durable=False``.

        Raises
        ------
        StorageError
            The operating system reported a write-back error.
        """
        if not self._durable:
            return
        try:
            self._writeback.barrier()
        except OSError as exc:
            raise os_error("sync", self._root, exc) from exc

    def _replace_if_match(self, key: str, path: str, tmp_path: str, expected: VersionInfo) -> None:
        with self._locked(key):
            try:
                with open(path, "rb") as f:
                    current = version_of(key, f.read())
            except _NOT_FOUND:
                raise PreconditionFailedError(
                    f"conditional put failed: {key!r} does not exist "
                    f"(expected version {expected.etag!r})"
                ) from None
            except OSError as exc:
                raise os_error("read", path, exc) from exc
            if current != expected.etag:
                raise PreconditionFailedError(
                    f"conditional put failed: {key!r} is at version {current!r}, "
                    f"not {expected.etag!r}"
                )
            try:
                os.replace(tmp_path, path)
            except OSError as exc:
                raise os_error("write", path, exc) from exc
            if self._durable:
                self._sync_dir(os.path.dirname(path))

    def _sync_dir(self, directory: str) -> None:
        try:
            _fsync_dir(directory)
        except OSError as exc:
            raise os_error("sync directory", directory, exc) from exc

    def _delete(self, keys: Sequence[str]) -> None:
        parents: set[str] = set()
        for key in keys:
            path = self._path(key)
            if not os.path.lexists(path):
                continue  # also keeps a delete on a missing root from creating the lock directory
            with self._locked(key):
                try:
                    os.unlink(path)
                except _NOT_FOUND:
                    continue
                except OSError as exc:
                    if os.path.isdir(path):
                        continue  # a directory is not an object (some systems say EPERM)
                    raise os_error("delete", path, exc) from exc
            parents.add(os.path.dirname(path))
        if self._durable:
            for parent in parents:
                self._sync_dir(parent)

    def _list_batches(self, prefix: str) -> Generator[_Batch]:
        """Walk the tree below the deepest directory ``prefix`` names, in batches of objects."""
        start = prefix.rpartition("/")[0]
        if start:
            try:
                self._check_key(start)
            except InvalidInputError:
                start = ""  # no object can match such a prefix; the filter below drops all
        pending = [start]
        batch: _Batch = []
        while pending:
            dir_key = pending.pop()
            dir_path = self._path(dir_key) if dir_key else self._root
            try:
                entries = os.scandir(dir_path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:
                raise os_error("list", dir_path, exc) from exc
            with entries:
                for entry in entries:
                    if not dir_key and entry.name in _RESERVED:
                        continue
                    key = f"{dir_key}/{entry.name}" if dir_key else entry.name
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            below = key + "/"
                            if below.startswith(prefix) or prefix.startswith(below):
                                pending.append(key)
                            continue
                        if not key.startswith(prefix):
                            continue
                        info = entry.stat()
                    except FileNotFoundError:
                        continue  # deleted while we were listing
                    except OSError as exc:
                        raise os_error("list", entry.path, exc) from exc
                    if not stat.S_ISREG(info.st_mode):
                        continue
                    created_at = datetime.fromtimestamp(info.st_mtime, UTC)
                    batch.append(ObjectInfo(key, info.st_size, created_at))
                    if len(batch) >= _LIST_BATCH:
                        yield batch
                        batch = []
        if batch:
            yield batch
