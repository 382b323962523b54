"""Fault injection for storage: latency, transient errors, permanent errors and crashes.

:class:`FaultyStorage` wraps any :class:`~icechunk.storage.base.Storage` and misbehaves on purpose,
deterministically for a given seed, so that tests can check what a repository does when its storage
is slow, flaky, partly broken, or when the writing process dies half-way through an operation::

    inner = local_filesystem_storage(path)
    faulty = FaultyStorage(inner, seed=0, crash_at=nth_put(3))
    repo = Repository.open(faulty)
    ...  # the third put raises InjectedCrash; nothing after it reaches ``inner``

Every call is first recorded as a :class:`StorageCall`; the predicates given as ``fail_keys`` and
``crash_at`` decide from it whether to fail. Helpers build the usual predicates: :func:`nth_put`,
:func:`put_of_key`, :func:`key_startswith`.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

from icechunk.errors import StorageError
from icechunk.storage.base import (
    ByteRange,
    ObjectInfo,
    PutMode,
    Storage,
    VersionInfo,
    WriteMode,
)

__all__ = [
    "CrashMode",
    "FaultStats",
    "FaultyStorage",
    "InjectedCrash",
    "Operation",
    "StorageCall",
    "key_startswith",
    "nth_put",
    "put_of_key",
]

type Operation = Literal["get", "get_with_version", "put", "list", "delete", "exists"]
"""The name of a storage method, as recorded in :attr:`StorageCall.op`."""

_READS: frozenset[str] = frozenset({"get", "get_with_version", "list", "exists"})
_ALL_OPS: frozenset[str] = frozenset({"get", "get_with_version", "put", "list", "delete", "exists"})


class InjectedCrash(BaseException):
    """The simulated death of the process, raised by :class:`FaultyStorage`.

    A :class:`BaseException` (like :class:`KeyboardInterrupt`) so that library code catching
    :class:`Exception` cannot swallow it and carry on as if the process had survived.

    Parameters
    ----------
    call
        The storage call at which the crash was injected.
    """

    def __init__(self, call: StorageCall) -> None:
        super().__init__(f"injected crash at {call.op} #{call.op_index} of {call.key!r}")
        self.call = call


class CrashMode(Enum):
    """How :class:`FaultyStorage` simulates a crash."""

    RAISE = "raise"
    """Raise :class:`InjectedCrash`; the wrapper is dead afterwards (every call raises it)."""
    EXIT = "exit"
    """Call :func:`os._exit` at once: for a child process whose parent inspects the result."""


@dataclass(frozen=True, slots=True)
class StorageCall:
    """One call made through a :class:`FaultyStorage`.

    Attributes
    ----------
    op
        The method called.
    key
        The key (the prefix for ``list``, the first key for ``delete``, ``""`` if none).
    index
        Position of this call among all calls through the wrapper, from 0.
    op_index
        Position of this call among the calls of the same ``op``, from 0.
    mode
        The put mode, for ``put`` calls; ``None`` otherwise.
    """

    op: Operation
    key: str
    index: int
    op_index: int
    mode: PutMode | None = None


@dataclass(slots=True)
class FaultStats:
    """What a :class:`FaultyStorage` has done so far.

    Attributes
    ----------
    calls
        Every call, in order.
    transient_errors
        Number of transient errors injected.
    permanent_errors
        Number of errors injected by ``fail_keys``.
    crashes
        Number of crashes injected (0 or 1 in raise mode: the wrapper is dead after one).
    """

    calls: list[StorageCall] = field(default_factory=list)
    transient_errors: int = 0
    permanent_errors: int = 0
    crashes: int = 0

    def count(self, op: Operation) -> int:
        """Number of calls of ``op`` so far.

        Parameters
        ----------
        op
            The operation to count.

        Returns
        -------
        int
            How many recorded calls have this ``op``.
        """
        return sum(1 for c in self.calls if c.op == op)


def nth_put(n: int) -> Callable[[StorageCall], bool]:
    """A ``crash_at`` predicate matching the ``n``-th put (counting from 0).

    Parameters
    ----------
    n
        Index of the put among all puts through the wrapper.

    Returns
    -------
    Callable[[StorageCall], bool]
        The predicate.
    """

    def predicate(call: StorageCall) -> bool:
        return call.op == "put" and call.op_index == n

    return predicate


def put_of_key(prefix: str) -> Callable[[StorageCall], bool]:
    """A ``crash_at`` predicate matching any put of a key starting with ``prefix``.

    Parameters
    ----------
    prefix
        For example ``"repo"`` (spec 2) or ``"refs/"`` (spec 1) to crash at the branch update.

    Returns
    -------
    Callable[[StorageCall], bool]
        The predicate.
    """

    def predicate(call: StorageCall) -> bool:
        return call.op == "put" and call.key.startswith(prefix)

    return predicate


def key_startswith(prefix: str) -> Callable[[str], bool]:
    """A ``fail_keys`` predicate matching the keys that start with ``prefix``.

    Parameters
    ----------
    prefix
        Key prefix, e.g. ``"manifests/"``.

    Returns
    -------
    Callable[[str], bool]
        The predicate.
    """

    def predicate(key: str) -> bool:
        return key.startswith(prefix)

    return predicate


class FaultyStorage(Storage):
    """A storage wrapper that injects latency, errors and crashes, deterministically.

    Parameters
    ----------
    inner
        The storage that does the real work.
    seed
        Seed of the random generator deciding which calls get a transient error. With the same
        seed and the same sequence of calls, the same calls fail.
    read_latency, write_latency
        Seconds to sleep before each read (``get``, ``get_with_version``, ``list``, ``exists``) or
        write (``put``, ``delete``).
    transient_error_rate
        Probability in ``[0, 1]`` that a call fails with :class:`~icechunk.errors.StorageError`
        before reaching ``inner`` (so a failed write writes nothing).
    transient_ops
        The operations subject to transient errors; all of them by default.
    fail_keys
        Calls on keys for which this returns true always fail with
        :class:`~icechunk.errors.StorageError` (a permanent error, e.g. a lost object).
    crash_at
        The call for which this returns true crashes (see ``crash_mode``).
    crash_after
        Crash after ``inner`` has performed the matching call instead of before it: the write
        happened, but the caller never learns it.
    crash_mode
        :attr:`CrashMode.RAISE` (default) or :attr:`CrashMode.EXIT`.
    exit_code
        The status passed to :func:`os._exit` in exit mode.

    Notes
    -----
    After a crash in raise mode the wrapper is dead: every later call raises
    :class:`InjectedCrash` without reaching ``inner``, as writes still in flight when a process
    dies never happen. Wrap ``inner`` again to "restart". The wrapper does not pickle when its
    predicates are closures or lambdas; it is meant for single-process tests (and for children
    started with ``fork`` in exit mode).
    """

    def __init__(
        self,
        inner: Storage,
        *,
        seed: int,
        read_latency: float = 0,
        write_latency: float = 0,
        transient_error_rate: float = 0.0,
        transient_ops: Iterable[Operation] | None = None,
        fail_keys: Callable[[str], bool] | None = None,
        crash_at: Callable[[StorageCall], bool] | None = None,
        crash_after: bool = False,
        crash_mode: CrashMode = CrashMode.RAISE,
        exit_code: int = 99,
    ) -> None:
        if not 0.0 <= transient_error_rate <= 1.0:
            raise ValueError(f"transient_error_rate must be in [0, 1], got {transient_error_rate}")
        if read_latency < 0 or write_latency < 0:
            raise ValueError("latencies must be non-negative")
        ops = _ALL_OPS if transient_ops is None else frozenset(transient_ops)
        if not ops <= _ALL_OPS:
            raise ValueError(f"unknown operations: {sorted(ops - _ALL_OPS)}")
        self.inner = inner
        self.seed = seed
        self.read_latency = read_latency
        self.write_latency = write_latency
        self.transient_error_rate = transient_error_rate
        self.transient_ops = ops
        self.fail_keys = fail_keys
        self.crash_at = crash_at
        self.crash_after = crash_after
        self.crash_mode = crash_mode
        self.exit_code = exit_code
        self.stats = FaultStats()
        self.supports_conditional_update = inner.supports_conditional_update
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._op_counts: dict[str, int] = {}
        self._dead: StorageCall | None = None

    def __repr__(self) -> str:
        return f"FaultyStorage({self.inner!r}, seed={self.seed})"

    @property
    def crashed(self) -> bool:
        """Whether a crash has been injected (the wrapper is then dead)."""
        return self._dead is not None

    # -- fault decisions -----------------------------------------------------------------

    def _record(self, op: Operation, key: str, mode: PutMode | None = None) -> StorageCall:
        with self._lock:
            if self._dead is not None:
                raise InjectedCrash(self._dead)
            op_index = self._op_counts.get(op, 0)
            self._op_counts[op] = op_index + 1
            call = StorageCall(op, key, len(self.stats.calls), op_index, mode)
            self.stats.calls.append(call)
            # draw for every call, so the sequence of decisions depends only on the seed and
            # the sequence of calls
            draw = self._rng.random()
        return self._decide(call, draw)

    def _decide(self, call: StorageCall, draw: float) -> StorageCall:
        if self.crash_at is not None and not self.crash_after and self.crash_at(call):
            self._crash(call)
        if self.fail_keys is not None and call.key and self.fail_keys(call.key):
            with self._lock:
                self.stats.permanent_errors += 1
            raise StorageError(f"injected permanent error: {call.op} of {call.key!r}")
        if call.op in self.transient_ops and draw < self.transient_error_rate:
            with self._lock:
                self.stats.transient_errors += 1
            raise StorageError(
                f"injected transient error: {call.op} #{call.op_index} of {call.key!r}"
            )
        return call

    def _after(self, call: StorageCall) -> None:
        if self.crash_at is not None and self.crash_after and self.crash_at(call):
            self._crash(call)

    def _crash(self, call: StorageCall) -> None:
        with self._lock:
            self.stats.crashes += 1
            if self._dead is None:
                self._dead = call
        if self.crash_mode is CrashMode.EXIT:
            os._exit(self.exit_code)
        raise InjectedCrash(call)

    async def _delay(self, op: Operation) -> None:
        latency = self.read_latency if op in _READS else self.write_latency
        if latency > 0:
            await asyncio.sleep(latency)

    # -- Storage ---------------------------------------------------------------------------

    async def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        """Read through ``inner``, after the configured faults.

        Parameters
        ----------
        key
            Object key.
        byte_range
            Optional range.

        Returns
        -------
        bytes
            The bytes ``inner`` returned.
        """
        call = self._record("get", key)
        await self._delay("get")
        data = await self.inner.get(key, byte_range)
        self._after(call)
        return data

    async def get_with_version(self, key: str) -> tuple[bytes, VersionInfo]:
        """Read with version through ``inner``, after the configured faults.

        Parameters
        ----------
        key
            Object key.

        Returns
        -------
        tuple[bytes, VersionInfo]
            What ``inner`` returned.
        """
        call = self._record("get_with_version", key)
        await self._delay("get_with_version")
        result = await self.inner.get_with_version(key)
        self._after(call)
        return result

    async def put(self, key: str, data: bytes, mode: PutMode = WriteMode.OVERWRITE) -> VersionInfo:
        """Write through ``inner``, after the configured faults.

        Parameters
        ----------
        key
            Object key.
        data
            The bytes to store.
        mode
            Put mode, passed on.

        Returns
        -------
        VersionInfo
            The version ``inner`` returned.
        """
        call = self._record("put", key, mode)
        await self._delay("put")
        version = await self.inner.put(key, data, mode)
        self._after(call)
        return version

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """List through ``inner``, after the configured faults.

        Parameters
        ----------
        prefix
            Key prefix.

        Yields
        ------
        ObjectInfo
            What ``inner`` yields.
        """
        call = self._record("list", prefix)
        await self._delay("list")
        async for info in self.inner.list(prefix):
            if self._dead is not None:
                raise InjectedCrash(self._dead)
            yield info
        self._after(call)

    async def delete(self, keys: Iterable[str]) -> None:
        """Delete through ``inner``, after the configured faults.

        Parameters
        ----------
        keys
            The keys to delete.
        """
        keys = list(keys)
        call = self._record("delete", keys[0] if keys else "")
        if self.fail_keys is not None:
            for key in keys[1:]:
                if self.fail_keys(key):
                    with self._lock:
                        self.stats.permanent_errors += 1
                    raise StorageError(f"injected permanent error: delete of {key!r}")
        await self._delay("delete")
        await self.inner.delete(keys)
        self._after(call)

    async def exists(self, key: str) -> bool:
        """Check existence through ``inner``, after the configured faults.

        Parameters
        ----------
        key
            Object key.

        Returns
        -------
        bool
            What ``inner`` returned.
        """
        call = self._record("exists", key)
        await self._delay("exists")
        found = await self.inner.exists(key)
        self._after(call)
        return found
