"""Persisted repository features against the real icechunk, in both directions.

``scripts/api2_features.py`` writes and reads each feature under every implementation:

* a config saved by one implementation is fetched identically by the others (spec 1 and 2; the
  real 1.1.21 too for spec 1), and the persisted bytes have the real 2.3.0's layout;
* a read-only status set by one is honoured by the other: every writer refuses with
  ``ReadOnlyError`` (``read-only-repository``) and readers keep working; setting it online again
  lets commits through;
* feature flags set by one are reported and enforced by the other;
* a rearrange (move) commit made by one reads the same in the other: the tree, the data, node
  ids kept across the move, and the moves reported by ``diff``;
* a spec-1 repository (written by 1.1.21, 2.3.0 or us) upgraded by us opens in the real 2.3.0
  with identical history, and one upgraded by the real 2.3.0 opens here the same way.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.interop.conftest import run_script

pytestmark = pytest.mark.interop

SCRIPT = "api2_features.py"


class Runs:
    """Memoized script runs on a small pool, so the module's subprocesses overlap."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._pool = ThreadPoolExecutor(3, thread_name_prefix="api2-interop")
        self._jobs: dict[tuple[Any, ...], Future[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def job(self, key: tuple[Any, ...], fn: Callable[[], dict[str, Any]]) -> Future[dict[str, Any]]:
        with self._lock:
            if key not in self._jobs:
                self._jobs[key] = self._pool.submit(fn)
            return self._jobs[key]

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def write(self, impl: str, cmd: str, name: str, *args: str) -> Future[dict[str, Any]]:
        path = self.path(name)
        return self.job(("write", name), lambda: run_script(impl, SCRIPT, cmd, str(path), *args))

    def read(
        self, impl: str, cmd: str, name: str, written: Future[dict[str, Any]], copy: bool = False
    ) -> Future[dict[str, Any]]:
        """``cmd`` by ``impl`` on repository ``name`` (on a private copy when it mutates)."""

        def run() -> dict[str, Any]:
            written.result()
            path = self.path(name)
            if copy:
                target = self.path(f"{name}~{cmd}-by-{impl}")
                shutil.copytree(path, target)
                path = target
            return run_script(impl, SCRIPT, cmd, str(path))

        return self.job(("read", impl, cmd, name, copy), run)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def runs(oracle_envs: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    r = Runs(tmp_path_factory.mktemp("api2"))
    yield r
    r.close()


def _strip(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "library"}


# ---------------------------------------------------------------------------------------------
# config

EXPECTED_CONFIG = {
    "caching": [9, 8, None],
    "compression_level": 5,
    "get_partial_values_concurrency": 3,
    "inline_chunk_threshold_bytes": 77,
    "max_concurrent_requests": 12,
    "num_updates_per_repo_info_file": 50,
    "previous_file": None,
    "split_sizes": [2],
    "virtual_chunk_containers": [["file:///data/", "file:///data/", None, "LocalFileSystem"]],
}
CONFIG_CASES = [
    ("ours", 2, "ic2"),
    ("ic2", 2, "ours"),
    ("ours", 1, "ic2"),
    ("ic2", 1, "ours"),
    ("ours", 1, "ic1"),
    ("ic1", 1, "ours"),
]


@pytest.mark.parametrize(("writer", "spec", "reader"), CONFIG_CASES)
def test_config_saved_by_one_is_fetched_identically_by_the_other(
    runs: Runs, writer: str, spec: int, reader: str
) -> None:
    name = f"config-{writer}-s{spec}"
    written = runs.write(writer, "config-save", name, "--spec", str(spec))
    by_writer = _strip(runs.read(writer, "config-fetch", name, written).result())
    by_reader = _strip(runs.read(reader, "config-fetch", name, written).result())
    expected = dict(EXPECTED_CONFIG)
    if "ic1" in (writer, reader):
        # 1.1.21 has neither `previous_file` nor `num_updates_per_repo_info_file` (the script
        # reports "missing"), so it neither writes nor reads the latter
        for doc in (by_writer, by_reader):
            doc["config"]["previous_file"] = None
            doc["config"]["num_updates_per_repo_info_file"] = None
        expected["num_updates_per_repo_info_file"] = None
    assert by_writer == by_reader
    assert by_reader["config"] == expected
    assert by_reader["opened_inline"] == 77


def _persisted_config(path: Path, spec: int) -> Any:
    """The persisted config document exactly as stored (YAML for spec 1, FlexBuffers for 2)."""
    if spec == 1:
        from icechunk.config_codec import load_yaml_doc

        return load_yaml_doc((path / "config.yaml").read_bytes())
    from flatbuffers import flexbuffers

    from icechunk.format import decode_repo_info

    info = decode_repo_info((path / "repo").read_bytes(), "repo")
    assert info.config is not None
    return flexbuffers.Loads(info.config)


@pytest.mark.parametrize("spec", [1, 2])
def test_persisted_config_has_the_real_layout(runs: Runs, spec: int) -> None:
    """What we store is what the real 2.3.0 stores for the same config (every key, every
    enum spelling), except the storage settings, which the real one fills from its own storage
    defaults."""
    futures = {
        w: runs.write(w, "config-save", f"config-{w}-s{spec}", "--spec", str(spec))
        for w in ("ours", "ic2")
    }
    docs = {}
    for w, fut in futures.items():
        fut.result()
        docs[w] = _persisted_config(runs.path(f"config-{w}-s{spec}"), spec)
        docs[w].pop("storage", None)
    assert docs["ours"] == docs["ic2"]


# ---------------------------------------------------------------------------------------------
# status and feature flags

EXPECTED_STATUS_OUTCOME = {
    "create_branch": "ReadOnlyError:read-only-repository",
    "create_tag": "ReadOnlyError:read-only-repository",
    "delete_branch": "ReadOnlyError:read-only-repository",
    "delete_tag": "ReadOnlyError:read-only-repository",
    "expire_snapshots": "ReadOnlyError:read-only-repository",
    "garbage_collect": "ReadOnlyError:read-only-repository",
    "readonly_session": "ok",
    "rearrange_session": "ReadOnlyError:read-only-repository",
    "reset_branch": "ReadOnlyError:read-only-repository",
    "rewrite_manifests": "ReadOnlyError:read-only-repository",
    "save_config": "ReadOnlyError:read-only-repository",
    "set_feature_flag": "ReadOnlyError:read-only-repository",
    "set_metadata": "ReadOnlyError:read-only-repository",
    "writable_session": "ReadOnlyError:read-only-repository",
}


@pytest.mark.parametrize(
    ("writer", "checker"), [("ours", "ic2"), ("ic2", "ours"), ("ours", "ours")]
)
def test_status_set_by_one_is_honoured_by_the_other(runs: Runs, writer: str, checker: str) -> None:
    name = f"status-{writer}"
    written = runs.write(writer, "status-set", name)
    doc = _strip(runs.read(checker, "status-check", name, written, copy=True).result())
    assert doc == {
        "availability": "RepoAvailability.read_only",
        "reason": "maintenance",
        "outcome": EXPECTED_STATUS_OUTCOME,
        "after_online": [2, 2, 2, 2],
        "status_after": "RepoAvailability.online",
    }


@pytest.mark.parametrize(
    ("writer", "checker"), [("ours", "ic2"), ("ic2", "ours"), ("ours", "ours")]
)
def test_feature_flags_set_by_one_are_honoured_by_the_other(
    runs: Runs, writer: str, checker: str
) -> None:
    name = f"flags-{writer}"
    written = runs.write(writer, "flags-set", name)
    doc = _strip(runs.read(checker, "flags-check", name, written, copy=True).result())
    assert doc == {
        "flags": [
            [3, "move_node", True, False, False],
            [4, "create_tag", True, False, False],
            [5, "delete_tag", True, True, True],
        ],
        "enabled": ["delete_tag"],
        "disabled": ["create_tag", "move_node"],
        "create_tag": "SessionStateError:feature-flag-disabled",
        "rearrange": "SessionStateError:feature-flag-disabled",
        "delete_tag": "ok",
        "create_tag_after_reset": "ok",
    }


# ---------------------------------------------------------------------------------------------
# moves

EXPECTED_MOVES = [
    ["/grp", "/dest/moved"],
    ["/grp/sub", "/dest/moved/sub"],
    ["/top", "/dest/moved/sub/top2"],
    ["/grp/sub/y", "/dest/moved/sub/y"],
    ["/grp/x", "/xx"],
]


@pytest.mark.parametrize(("writer", "reader"), [("ours", "ic2"), ("ic2", "ours")])
def test_a_move_made_by_one_reads_correctly_in_the_other(
    runs: Runs, writer: str, reader: str
) -> None:
    name = f"move-{writer}"
    written = runs.write(writer, "move-write", name)
    by_writer = _strip(runs.read(writer, "move-read", name, written).result())
    by_reader = _strip(runs.read(reader, "move-read", name, written).result())
    assert by_writer == by_reader
    assert by_reader["moved_nodes"] == EXPECTED_MOVES
    assert by_reader["ids_kept"] == {"/dest/moved": True, "/dest/moved/sub/top2": True, "/xx": True}
    assert by_reader["new_arrays"] == [] and by_reader["deleted_arrays"] == []
    nodes = by_reader["nodes"]
    assert sorted(nodes) == [
        "dest",
        "dest/moved",
        "dest/moved/sub",
        "dest/moved/sub/top2",
        "dest/moved/sub/y",
        "xx",
    ]
    assert nodes["xx"]["data"] == [0, 1, 2, 3, 4, 5]
    assert nodes["dest/moved/sub/top2"]["data"] == [7, 7, 7]
    assert nodes["dest/moved/sub/y"]["data"] == [[0.5] * 3] * 2
    assert nodes["dest/moved"]["attrs"] == {"k": "grp"}


# ---------------------------------------------------------------------------------------------
# spec upgrade

UPGRADE_CASES = [
    ("ic1", "ours", "ic2"),
    ("ic2", "ours", "ic2"),
    ("ours", "ours", "ic2"),
    ("ic1", "ic2", "ours"),
    ("ours", "ic2", "ours"),
]
MIGRATED_OPS = sorted(
    [
        "RepoMigrated",
        "NewCommit",
        "BranchCreated",
        "NewCommit",
        "TagDeleted",
        "TagCreated",
        "TagCreated",
        "NewCommit",
        "RepoInitialized",
    ]
)


@pytest.mark.parametrize(("writer", "upgrader", "reader"), UPGRADE_CASES)
def test_upgraded_repository_keeps_its_history_in_the_other(
    runs: Runs, writer: str, upgrader: str, reader: str
) -> None:
    base = f"v1-{writer}"
    written = runs.write(writer, "v1-write", base)
    before = _strip(runs.read(writer, "history", base, written).result())
    assert before["spec"] == 1

    def upgrade() -> dict[str, Any]:
        written.result()
        target = runs.path(f"{base}~up-{upgrader}")
        shutil.copytree(runs.path(base), target)
        return run_script(upgrader, SCRIPT, "upgrade", str(target))

    upgraded = runs.job(("upgrade", base, upgrader), upgrade)
    assert _strip(upgraded.result()) == {"dry_spec": 1, "spec": 2, "old": "invalidated"}
    after = _strip(runs.read(reader, "history", f"{base}~up-{upgrader}", upgraded).result())
    assert after.pop("spec") == 2
    ops = after.pop("ops")
    assert ops[0] == "RepoMigrated" and ops[-1] == "RepoInitialized"
    assert sorted(ops) == MIGRATED_OPS
    assert after.pop("tag_reuse") == "AlreadyExistsError:tag-previously-deleted"
    before.pop("spec")
    assert after == before
    assert after["inline"] == 5
    # the spec-1 refs and config are gone (local storage may leave empty directories)
    upgraded_path = runs.path(f"{base}~up-{upgrader}")
    assert not [p for p in upgraded_path.joinpath("refs").rglob("*") if p.is_file()]
    assert not upgraded_path.joinpath("config.yaml").exists()
    assert upgraded_path.joinpath("repo").is_file()
