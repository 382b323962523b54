"""Sources that misbehave on purpose, for the fault-injection tests.

They live in an importable module (not a test file) because Dask worker processes unpickle
them. State that must survive retries on another worker process ("the first time") is kept
in files under a directory the test owns.
"""

from __future__ import annotations

import os
import signal
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr

from icechunk import Repository, StorageError, local_filesystem_storage
from icechunk.storage import WriteMode
from icechunk.testing.faults import FaultyStorage
from tasks.blocks import IcechunkRepositoryBlock
from tasks.sources import DatasetSource

__all__ = ["CommitFaultBlock", "CommitFaultStorage", "FaultySource"]

Fault = Literal["storage", "value", "kill"]


@dataclass(frozen=True)
class FaultySource:
    """``inner``, except that loading exactly ``[start, stop)`` fails the first ``times``
    times (``times=-1``: always) with ``fault``:

    * ``"storage"``: a transient :class:`icechunk.StorageError`;
    * ``"value"``: a ``ValueError`` (bad data: must not be retried);
    * ``"kill"``: SIGKILL of the loading process (a Dask worker dying mid-task).

    Every such load is recorded as a file in ``marker_dir`` (see :meth:`attempts`).
    """

    inner: DatasetSource
    start: int
    stop: int
    fault: Fault
    marker_dir: str
    times: int = 1
    # the test process itself is never killed, whatever goes wrong in the test
    protected_pid: int = field(default_factory=os.getpid)

    @property
    def dim(self) -> str:
        return self.inner.dim

    def describe(self) -> str:
        return self.inner.describe()

    def coordinate(self) -> np.ndarray:
        return self.inner.coordinate()

    def attempts(self) -> int:
        """How many times the faulty region was loaded (in any process)."""
        return len(list(Path(self.marker_dir).glob("attempt-*")))

    def load(self, start: int, stop: int) -> xr.Dataset:
        if (start, stop) == (self.start, self.stop):
            Path(self.marker_dir).mkdir(parents=True, exist_ok=True)
            (Path(self.marker_dir) / f"attempt-{uuid.uuid4().hex}").touch()
            if self.times < 0 or self.attempts() <= self.times:
                self._fail(start, stop)
        return self.inner.load(start, stop)

    def _fail(self, start: int, stop: int) -> None:
        if self.fault == "storage":
            raise StorageError(f"injected transient storage failure loading [{start}, {stop})")
        if self.fault == "value":
            raise ValueError(f"injected bad data in [{start}, {stop})")
        if os.getpid() == self.protected_pid:
            raise RuntimeError("refusing to kill the test process: the fault ran in the flow")
        os.kill(os.getpid(), signal.SIGKILL)


# --- faults at the commit: the fault-injecting storage, armed by the data commit ---------------

CommitFault = Literal["kill-before-snapshot", "kill-before-ref", "kill-after-ref", "lost-response"]
"""Where :class:`CommitFaultStorage` strikes, in the data commit's sequence of writes:

* ``kill-before-snapshot``: SIGKILL before the snapshot object is written (nothing published);
* ``kill-before-ref``: SIGKILL before the branch update (objects written, nothing visible);
* ``kill-after-ref``: SIGKILL right after the branch update landed, before anyone learns it;
* ``lost-response``: the branch update lands, then a transient ``StorageError`` is raised (the
  response was lost); with ``unreadable_after`` every later read of this storage fails too, so
  the committing process cannot tell whether its commit landed.
"""


def _is_ref_update(key: str) -> bool:
    return key == "repo" or key.startswith("refs/")  # spec 2 repo object; spec 1 branch refs


class CommitFaultStorage(FaultyStorage):
    """Local storage that misbehaves once, at the first commit made through it (the data
    commit of a flow run on a repository that already holds the schema), the first time in
    any process, as recorded in ``marker``.

    When it strikes it writes ``flow_run_id`` to ``marker`` (so the test knows which run
    died). A new instance (a re-opened repository) is healthy once ``marker`` exists.
    """

    def __init__(
        self,
        path: str,
        fault: CommitFault,
        marker: str,
        *,
        unreadable_after: bool = False,
        flow_run_id: str | None = None,
    ) -> None:
        super().__init__(local_filesystem_storage(path), seed=0)
        self.fault = fault
        self.marker = Path(marker)
        self.unreadable_after = unreadable_after
        self.flow_run_id = flow_run_id
        self.unreadable = False

    def _strike(self, key: str) -> bool:
        if self.marker.exists():
            return False
        if self.fault == "kill-before-snapshot":
            hit = key.startswith("snapshots/")
        else:
            hit = _is_ref_update(key)
        if hit:
            self.marker.write_text(self.flow_run_id or "")
        return hit

    async def put(self, key: str, data: bytes, mode: Any = WriteMode.OVERWRITE) -> Any:
        strike = self._strike(key)
        if strike and self.fault in ("kill-before-snapshot", "kill-before-ref"):
            os.kill(os.getpid(), signal.SIGKILL)
        version = await super().put(key, data, mode)
        if strike and self.fault == "kill-after-ref":
            os.kill(os.getpid(), signal.SIGKILL)
        if strike and self.fault == "lost-response":
            self.unreadable = self.unreadable_after
            raise StorageError(f"injected lost response: the update of {key!r} landed")
        return version

    def _check_readable(self, key: str) -> None:
        if self.unreadable:
            raise StorageError(f"injected outage: cannot read {key!r}")

    async def get(self, key: str, byte_range: Any = None) -> bytes:
        self._check_readable(key)
        return await super().get(key, byte_range)

    async def get_with_version(self, key: str) -> Any:
        self._check_readable(key)
        return await super().get_with_version(key)


class CommitFaultBlock(IcechunkRepositoryBlock):
    """A repository block whose storage is :class:`CommitFaultStorage` (for flow tests: the
    flows accept a block, and a re-opened repository is a new storage instance)."""

    _block_type_name = "Icechunk Repository With Commit Faults"
    _block_type_slug = "icechunk-repository-commit-faults"

    fault: str = "kill-after-ref"
    marker: str = ""
    unreadable_after: bool = False

    def open_repository(self, *, create: bool = True) -> Repository:
        """Open the repository, which must exist and hold the schema already (the first
        commit through this storage is then the data commit)."""
        from prefect.runtime import flow_run

        storage = CommitFaultStorage(
            self.location,
            self.fault,  # type: ignore[arg-type]
            self.marker,
            unreadable_after=self.unreadable_after,
            flow_run_id=flow_run.id,
        )
        return Repository.open(storage)
