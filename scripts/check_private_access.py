"""Fail if a module under ``icechunk/`` uses another package's private names.

A name starting with one underscore (not a dunder) belongs to the package whose modules define
it. This check walks every module's syntax tree and reports, outside that package:

* imports of private names or private modules (``from icechunk.storage._url import x``,
  ``from icechunk.x import _y``), unless the private module lives in a package that contains
  the importer (``icechunk/repository.py`` may import ``icechunk._core``);
* attribute accesses ``obj._name`` (``obj`` not ``self``/``cls``) of a name that some
  module under ``ROOT`` defines (as a function, class, module-level name, class attribute or
  ``obj._name = ...``) but no module of the accessor's own package does. Private names of
  other libraries are not this check's business.

Old import paths kept as aliases (``sys.modules[__name__] = ...``) are exempt.

Usage: ``python scripts/check_private_access.py [ROOT]`` (default ``icechunk``); exit status 1
and one line per finding when something is wrong.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_name(path: Path) -> str:
    parts = list(path.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package_of(path: Path) -> str:
    return ".".join(path.parent.parts)


def _defined_names(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return {n for n in names if _private(n)}


def _is_alias_module(tree: ast.Module) -> bool:
    return "sys.modules[__name__]" in ast.unparse(tree)


def main(root: str = "icechunk") -> int:
    files = sorted(Path(root).rglob("*.py"))
    trees = {path: ast.parse(path.read_text(), str(path)) for path in files}
    defined: dict[str, set[str]] = defaultdict(set)
    for path, tree in trees.items():
        defined[_package_of(path)] |= _defined_names(tree)
    problems: list[str] = []
    for path, tree in trees.items():
        if _is_alias_module(tree):
            continue
        package = _package_of(path)
        for node in ast.walk(tree):
            # (dotted path, private-looking name, the package that owns the name): a module
            # belongs to its parent package, a name to the package of its module.
            targets: list[tuple[list[str], str, list[str]]] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                mod = node.module.split(".")
                targets = [(mod[: i + 1], mod[i], mod[:i]) for i in range(len(mod))]
                targets += [([*mod, a.name], a.name, mod[:-1]) for a in node.names]
            elif isinstance(node, ast.Import):
                for a in node.names:
                    mod = a.name.split(".")
                    targets += [(mod[: i + 1], mod[i], mod[:i]) for i in range(len(mod))]
            for dotted, name, owner_parts in targets:
                if not _private(name) or dotted[0] != root:
                    continue
                owner = ".".join(owner_parts)
                if not (package == owner or package.startswith(owner + ".")):
                    problems.append(
                        f"{path}:{node.lineno}: imports {'.'.join(dotted)}, private to {owner}"
                    )
            if (
                isinstance(node, ast.Attribute)
                and _private(node.attr)
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
                and node.attr not in defined[package]
                and any(node.attr in names for names in defined.values())
            ):
                problems.append(
                    f"{path}:{node.lineno}: uses {ast.unparse(node)}, private to another package"
                )
    for line in problems:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
