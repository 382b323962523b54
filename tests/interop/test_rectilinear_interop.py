"""Rectilinear chunk grids interoperate with the real icechunk 2.3.0, both ways (spec 2).

``scripts/rectilinear.py`` writes arrays with explicit, run-length-encoded and past-the-end
(after a shrinking resize) chunk edges; every reader prints the same metadata, chunk keys and
data whichever implementation wrote the repository. Spec 1 refuses rectilinear grids in both.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.interop import oracle
from tests.interop.conftest import run_script

pytestmark = pytest.mark.interop

PAIRS = [(w, r) for w in ("ours", "ic2") for r in ("ours", "ic2")]


@pytest.mark.parametrize(("writer", "reader"), PAIRS, ids=lambda v: str(v))
def test_rectilinear_arrays_read_the_same_whoever_wrote_them(
    oracle_envs: dict[str, oracle.Oracle], tmp_path: Path, writer: str, reader: str
) -> None:
    repo = tmp_path / "repo"
    run_script(writer, "rectilinear.py", "write", str(repo))
    got = run_script(reader, "rectilinear.py", "read", str(repo))
    # the real writer read by the real reader is the reference
    reference_repo = tmp_path / "reference"
    run_script("ic2", "rectilinear.py", "write", str(reference_repo))
    expected = run_script("ic2", "rectilinear.py", "read", str(reference_repo))
    got.pop("library")
    expected.pop("library")
    assert got == expected
    assert got["shrunk"]["shape"] == [2, 6]


@pytest.mark.parametrize("impl", ["ours", "ic2"])
def test_spec1_refuses_rectilinear_grids(
    oracle_envs: dict[str, oracle.Oracle], tmp_path: Path, impl: str
) -> None:
    doc = run_script(impl, "rectilinear.py", "spec1", str(tmp_path / "repo"))
    assert doc["accepted"] is False
    assert doc["spec_hint"] is True
