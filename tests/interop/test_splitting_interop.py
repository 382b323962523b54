"""Split manifests interoperate with the real, Rust-backed icechunk (1.1.21 and 2.3.0).

``scripts/split_write.py`` writes a repository under a manifest-splitting config (every
condition kind), appends along the split dimension, overwrites, shrinks, and rewrites the
manifests on a branch with ``rewrite_manifests``. ``scripts/split_read.py`` prints, per commit,
the metadata, the chunk-ref count of every manifest file (the layout) and all array data.

* Every reader that can open a repository (1.1.21 only spec 1) prints the same document.
* Ours writes exactly the layout (manifest files and their ref counts), data and metadata that
  the real 2.3.0 writes for the same operations, in both spec versions.
* 1.1.21 writes the same layout and data (its ``rewrite_manifests`` records
  ``"splitting_config"`` at the top level of the metadata instead of under ``"__icechunk"``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.interop import oracle
from tests.interop.conftest import run_script

pytestmark = pytest.mark.interop

WRITERS = (("ours", 1), ("ours", 2), ("ic2", 1), ("ic2", 2), ("ic1", 1))


def readers(spec: int) -> tuple[str, ...]:
    return ("ic1", "ic2", "ours") if spec == 1 else ("ic2", "ours")


class SplitRuns:
    """Every write and read of this module, started at once on a small thread pool."""

    def __init__(self, root: Path) -> None:
        self._pool = ThreadPoolExecutor(max(2, min(4, os.cpu_count() or 2)))
        self.written: dict[tuple[str, int], Future[dict[str, Any]]] = {}
        self.read: dict[tuple[str, str, int], Future[dict[str, Any]]] = {}
        for writer, spec in WRITERS:
            path = root / f"{writer}-spec{spec}"
            write = self._pool.submit(
                run_script, writer, "split_write.py", str(path), "--spec", str(spec)
            )
            self.written[writer, spec] = write
            for reader in readers(spec):
                self.read[reader, writer, spec] = self._pool.submit(self._read, write, reader, path)

    @staticmethod
    def _read(write: Future[dict[str, Any]], reader: str, path: Path) -> dict[str, Any]:
        write.result()
        return run_script(reader, "split_read.py", str(path))

    def commits(self, reader: str, writer: str, spec: int) -> dict[str, Any]:
        doc = self.read[reader, writer, spec].result()
        commits: dict[str, Any] = doc["commits"]
        return commits

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def runs(
    oracle_envs: dict[str, oracle.Oracle], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SplitRuns]:
    runner = SplitRuns(tmp_path_factory.mktemp("splitting"))
    yield runner
    runner.close()


@pytest.mark.parametrize(
    ("writer", "spec", "reader"),
    [(w, s, r) for w, s in WRITERS for r in readers(s) if r != "ours"],
    ids=lambda v: str(v),
)
def test_readers_agree(runs: SplitRuns, writer: str, spec: int, reader: str) -> None:
    """Ours reads every split repository exactly as the real ``reader`` does."""
    ours = runs.commits("ours", writer, spec)
    real = runs.commits(reader, writer, spec)
    assert sorted(ours) == sorted(real) == ["append", "initial", "overwrite", "rewrite"]
    for message in real:
        assert ours[message] == real[message], message


@pytest.mark.parametrize("spec", [1, 2], ids=["spec1", "spec2"])
def test_ours_writes_the_real_layout(runs: SplitRuns, spec: int) -> None:
    """Same operations, same config: same manifests, ref counts, data and metadata as 2.3.0."""
    ours = runs.commits("ic2", "ours", spec)
    real = runs.commits("ic2", "ic2", spec)
    for message in ("initial", "append", "overwrite", "rewrite"):
        assert ours[message] == real[message], message
    # the append only added a manifest for the new rows: one more file, same counts otherwise
    assert len(real["append"]["manifest_refs"]) == len(real["initial"]["manifest_refs"]) + 1
    assert ours["rewrite"]["metadata"]["__icechunk"]["splitting_config"] == {
        "split_sizes": [["any_array", [{"condition": "Any", "num_chunks": 2}]]]
    }


def test_ours_matches_icechunk1_layout(runs: SplitRuns) -> None:
    ours = runs.commits("ic1", "ours", 1)
    real = runs.commits("ic1", "ic1", 1)
    for message in ("initial", "append", "overwrite", "rewrite"):
        assert ours[message]["data"] == real[message]["data"], message
        assert ours[message]["manifest_refs"] == real[message]["manifest_refs"], message
    assert (
        ours["rewrite"]["metadata"]["__icechunk"]["splitting_config"]
        == real["rewrite"]["metadata"]["splitting_config"]
    )
