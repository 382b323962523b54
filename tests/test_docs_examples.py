"""The code examples of the user guides run as written.

Each page's ```python blocks are executed in order, in one namespace, from a fresh working
directory (holding a copy of ERA-Interim for the virtual-chunks page), so a guide that drifts
from the API fails here.
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
from pathlib import Path

import pytest

from tests.datasets import SHARED_DATA

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
PAGES = ["virtual-chunks.md", "maintenance.md"]


def blocks(page: str) -> list[str]:
    found = BLOCK.findall((DOCS / page).read_text())
    assert found, f"{page} has no python examples"
    return list(found)


@pytest.mark.parametrize("page", PAGES)
def test_guide_examples_run(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(SHARED_DATA / "eraint_uvz.nc", tmp_path / "eraint_uvz.nc")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs_{page}"}
    with warnings.catch_warnings():
        # ERA-Interim's integer variables carry a NaN _FillValue, which xarray warns about
        warnings.filterwarnings("ignore", "variable .* has non-conforming '_FillValue'")
        for i, code in enumerate(blocks(page)):
            exec(compile(code, f"{page}[block {i}]", "exec"), namespace)  # noqa: S102
    assert os.listdir(tmp_path)
