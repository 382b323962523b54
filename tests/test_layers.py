"""The package's layering rules, checked the way ``scripts/dev lint`` checks them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from icechunk.errors import InvalidInputError
from icechunk.storage import InMemoryStorage, LocalFileSystemStorage, from_url

ROOT = Path(__file__).resolve().parents[1]


def test_no_private_names_used_across_packages() -> None:
    proc = subprocess.run(
        [sys.executable, "scripts/check_private_access.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_private_access_check_reports_a_violation(tmp_path: Path) -> None:
    pkg = tmp_path / "icechunk"
    (pkg / "inner").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "inner" / "__init__.py").write_text("")
    (pkg / "inner" / "_hidden.py").write_text("def _helper():\n    return 1\n")
    (pkg / "user.py").write_text("from icechunk.inner._hidden import _helper\n")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts/check_private_access.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "icechunk/user.py:1: imports icechunk.inner._hidden" in proc.stdout


def test_old_module_paths_are_aliases_of_the_engine_modules() -> None:
    import icechunk._core.change_set
    import icechunk.change_set

    assert icechunk.change_set is icechunk._core.change_set
    from icechunk.conflicts import BasicConflictSolver, Conflict  # noqa: F401
    from icechunk.refs import RefStoreV2  # noqa: F401


def test_from_url_is_the_one_location_parser(tmp_path: Path) -> None:
    local = from_url(str(tmp_path / "repo"))
    assert isinstance(local, LocalFileSystemStorage) and local.root == str(tmp_path / "repo")
    assert isinstance(from_url("memory://"), InMemoryStorage)
    with pytest.raises(InvalidInputError, match="names no directory"):
        from_url("file://")
    with pytest.raises(InvalidInputError, match="takes no options"):
        from_url(str(tmp_path), region="x")
    with pytest.raises(InvalidInputError, match="unsupported storage URL"):
        from_url("ftp://host/p")
