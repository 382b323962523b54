"""Virtual chunks across implementations: the real icechunk 2.3.0 and ours read each other's.

``scripts/virtual_repo.py`` writes a repository of virtual references into local files
(checksummed by last-modified time and by ETag, unchecked, missing, and a block set with
``set_virtual_refs_arr``); ours additionally references the ERA-Interim netCDF file in place.
Both implementations then read the repository with a container and its authorization, and must
see the same arrays; after the source file is touched both refuse the checksummed chunk.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.datasets import ERAINT
from tests.interop.conftest import run_script

pytestmark = pytest.mark.interop

ERA = ERAINT


def _write(impl: str, tmp_path: Path, spec: int, netcdf: bool) -> tuple[Path, Path]:
    repo, data = tmp_path / "repo", tmp_path / "data"
    data.mkdir()
    args = ["write", str(repo), str(data), "--spec", str(spec)]
    if netcdf:
        copy = data / ERA.name
        shutil.copyfile(ERA, copy)
        args += ["--netcdf", str(copy)]
    run_script(impl, "virtual_repo.py", *args)
    return repo, data


def _expected_small_arrays(doc: dict[str, Any], spec: int = 2) -> None:
    arrays = doc["arrays"]
    if spec >= 2:
        assert arrays["/c"]["values"] == list(range(40, 50))
    assert arrays["/a"]["values"] == [*range(10), *range(10, 20), *range(30, 40), *[-1] * 10]
    b = np.array(arrays["/b"]["values"])
    np.testing.assert_array_equal(
        b, [[0, 1, 4, 5], [2, 3, 6, 7], [-1, -1, 12, 13], [-1, -1, 14, 15]]
    )


def _check_stale(doc: dict[str, Any]) -> None:
    results = doc["results"]
    assert "error" in results["checksummed"], results
    assert "checksum" in results["checksummed"]["message"], results
    assert results["unchecked"]["values"] == list(range(30, 40))


@pytest.mark.parametrize("spec", [1, 2])
def test_real_icechunk_reads_our_virtual_refs(tmp_path: Path, spec: int) -> None:
    repo, data = _write("ours", tmp_path, spec, netcdf=True)
    real = run_script("ic2", "virtual_repo.py", "read", str(repo), str(data))
    ours = run_script("ours", "virtual_repo.py", "read", str(repo), str(data))
    _expected_small_arrays(real, spec)
    assert real["arrays"] == ours["arrays"]
    assert {"/era/z", "/era/u", "/era/v", "/era/latitude"} <= set(real["arrays"])
    assert real["locations"] == ours["locations"]
    assert real["locations"] == [f"file://{data}/{ERA.name}", f"file://{data}/values.bin"]
    _check_stale(run_script("ic2", "virtual_repo.py", "stale", str(repo), str(data)))
    if spec == 2:  # we persist the containers: the real icechunk needs no config to find them
        persisted = run_script(
            "ic2", "virtual_repo.py", "read", str(repo), str(data), "--persisted-config"
        )
        assert persisted["arrays"] == real["arrays"]


def test_we_read_virtual_refs_the_real_icechunk_wrote(tmp_path: Path) -> None:
    repo, data = _write("ic2", tmp_path, 2, netcdf=False)
    real = run_script("ic2", "virtual_repo.py", "read", str(repo), str(data))
    ours = run_script("ours", "virtual_repo.py", "read", str(repo), str(data))
    _expected_small_arrays(ours)
    assert ours["arrays"] == real["arrays"]
    assert ours["locations"] == real["locations"]
    # the real icechunk persists its containers in the repository: we find them there too
    persisted = run_script(
        "ours", "virtual_repo.py", "read", str(repo), str(data), "--persisted-config"
    )
    assert persisted["arrays"] == real["arrays"]
    _check_stale(run_script("ours", "virtual_repo.py", "stale", str(repo), str(data)))
