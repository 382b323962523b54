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
from typing import Literal

import numpy as np
import xarray as xr

from icechunk import StorageError
from tasks.sources import DatasetSource

__all__ = ["FaultySource"]

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
