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


MAX_MODULE_LINES = 700


def test_no_icechunk_module_is_over_700_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in sorted((ROOT / "icechunk").rglob("*.py"))
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, (
        f"split these modules along what they own (over {MAX_MODULE_LINES} lines): {long}"
    )


def test_split_facades_keep_every_method_on_the_public_classes() -> None:
    from icechunk.repository import Repository
    from icechunk.session import Session

    for cls, names in (
        (
            Repository,
            [
                "create_branch",
                "list_tags",
                "ancestry",
                "save_config",
                "get_status",
                "set_metadata",
                "expire_snapshots",
                "garbage_collect",
                "inspect_snapshot",
            ],
        ),
        (Session, ["get_chunk", "set_chunk", "list_nodes", "move", "reindex_array", "commit"]),
    ):
        for name in names:
            method = getattr(cls, name)
            assert method.__doc__, f"{cls.__name__}.{name} has no docstring"


# -- import graph: no cycles, every module in the layers contract ------------------------------


def _import_graph() -> dict[str, set[str]]:
    """Every ``icechunk`` module's imports of other ``icechunk`` modules.

    grimp (import-linter's graph builder) counts module-level, function-level and
    ``TYPE_CHECKING`` imports alike.
    """
    import grimp

    graph = grimp.build_graph("icechunk", exclude_type_checking_imports=False, cache_dir=None)
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}


def _collapse(edges: dict[str, set[str]], prefix: str) -> dict[str, set[str]]:
    """The graph between the direct children of package ``prefix`` (``a.b.c`` counts as ``a.b``)."""
    depth = prefix.count(".") + 2

    def child(module: str) -> str | None:
        if not module.startswith(prefix + "."):
            return None
        return ".".join(module.split(".")[:depth])

    out: dict[str, set[str]] = {}
    for source, targets in edges.items():
        a = child(source)
        if a is None:
            continue
        out.setdefault(a, set())
        for target in targets:
            b = child(target)
            if b is not None and b != a:
                out[a].add(b)
    return out


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    nodes = set(edges) | {t for ts in edges.values() for t in ts}

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return found


def test_cycle_finder_reports_a_planted_cycle() -> None:
    edges = {
        "icechunk.a": {"icechunk.b.x"},
        "icechunk.b.x": {"icechunk.b.y"},
        "icechunk.b.y": {"icechunk.c"},
        "icechunk.c": {"icechunk.a", "icechunk.errors"},
        "icechunk.errors": set(),
    }
    assert _cycles(_collapse(edges, "icechunk")) == [["icechunk.a", "icechunk.b", "icechunk.c"]]
    # inside package b there is no cycle, and removing one edge breaks the top-level one
    assert _cycles(_collapse(edges, "icechunk.b")) == []
    edges["icechunk.c"] = {"icechunk.errors"}
    assert _cycles(_collapse(edges, "icechunk")) == []


def test_no_import_cycles_counting_type_checking_imports() -> None:
    edges = _import_graph()
    subpackages = {m for m in edges if (ROOT / m.replace(".", "/") / "__init__.py").exists()}
    packages = ["icechunk", *sorted(subpackages - {"icechunk"})]
    cycles = {pkg: c for pkg in packages if (c := _cycles(_collapse(edges, pkg)))}
    assert "icechunk._core" in packages
    assert not cycles, f"import cycles (TYPE_CHECKING imports included): {cycles}"


def _contract_layers() -> set[str]:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c for c in config["contracts"] if c["type"] == "layers"]
    assert layers["containers"] == ["icechunk"]
    assert "ignore_imports" not in layers, "the layers contract ignores imports"
    return {name.strip() for layer in layers["layers"] for name in layer.split(":")}


def test_every_top_level_module_is_in_the_layers_contract() -> None:
    modules = {
        p.stem if p.is_file() else p.name
        for p in (ROOT / "icechunk").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()
    }
    assert {"store", "session", "_core", "attribution"} <= modules
    missing = modules - _contract_layers()
    assert not missing, f"add these icechunk modules to the layers contract: {sorted(missing)}"


def test_store_session_is_the_real_session() -> None:
    import pickle

    from icechunk.repository import Repository
    from icechunk.session import ForkSession, Session
    from icechunk.store import IcechunkStore

    repo = Repository.create(InMemoryStorage())
    session = repo.writable_session("main")
    store = session.store
    assert isinstance(store, IcechunkStore) and store.session is session
    assert type(store.session) is Session
    fork = session.fork()
    clone = pickle.loads(pickle.dumps(fork.store))
    assert type(clone.session) is ForkSession and isinstance(clone.session, Session)
    assert clone.session.snapshot_id == session.snapshot_id
