"""Describe a package's public surface: names, kinds and call signatures.

Run as a script with the real icechunk 2.3.0 to regenerate the checked-in reference; the
``ic2bench`` oracle is icechunk 2.3.0 with dask and xarray installed, which the ``xarray`` and
``dask`` submodules need (the bare ``ic2`` oracle lacks them)::

    /work/main/.cache/oracles/ic2bench/bin/python tests/surface/dump_surface.py

which writes ``tests/surface/real_icechunk_2_3_0.json``. ``tests/surface/test_public_surface.py``
runs :func:`collect` on our ``icechunk`` and compares the two on every test run.

The description of a package is a flat mapping from dotted paths (``"Repository.open"``,
``"S3Credentials.Static"``) to entries ``{"kind": ..., "params": [...]}``:

- top-level names (everything public in ``dir(package)``),
- every public member of each public class (and of classes nested in them, such as
  ``S3Credentials.Static``) that the package itself defines: members inherited from ``object``,
  builtin exceptions, ``enum``, ``zarr`` and other third-party bases are not part of the surface,
- the public functions and classes of the submodules listed in :data:`SUBMODULES`.

Only stdlib is used, so the same code runs under the oracle's Python 3.12 and ours.
"""

from __future__ import annotations

import builtins
import importlib
import inspect
import json
import re
import sys
import types
from pathlib import Path
from typing import Any

#: Submodules whose public functions and classes are part of the surface (not imported by
#: ``import icechunk`` in the real package, so listed explicitly).
SUBMODULES = ("xarray", "dask", "distributed")

#: Third-party / stdlib base modules whose members are not the package's surface.
_FOREIGN_ROOTS = frozenset(
    {"abc", "builtins", "collections", "enum", "typing", "zarr", "numcodecs", "dataclasses"}
)

REFERENCE = Path(__file__).with_name("real_icechunk_2_3_0.json")

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _is_foreign_class(klass: type) -> bool:
    """True for bases whose members belong to Python or a dependency, not to the package."""
    module = getattr(klass, "__module__", "") or ""
    if module == "builtins":
        # A real builtin (object, int, Exception, ...): PyO3 classes also report
        # ``builtins`` but are not attributes of the builtins module.
        return getattr(builtins, klass.__name__, None) is klass
    return module.split(".")[0] in _FOREIGN_ROOTS


def _param_kind(kind: inspect._ParameterKind) -> str:
    return {
        inspect.Parameter.POSITIONAL_ONLY: "positional",
        inspect.Parameter.POSITIONAL_OR_KEYWORD: "positional_or_keyword",
        inspect.Parameter.VAR_POSITIONAL: "var_positional",
        inspect.Parameter.KEYWORD_ONLY: "keyword",
        inspect.Parameter.VAR_KEYWORD: "var_keyword",
    }[kind]


def _default(value: Any) -> str | None:
    if value is inspect.Parameter.empty:
        return None
    return _ADDRESS.sub("", repr(value))


def _params(obj: Any, *, drop_first: bool) -> list[list[Any]] | None:
    """``[name, kind, default-repr-or-None]`` per parameter; ``None`` when not introspectable."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    params = list(sig.parameters.values())
    if (
        drop_first
        and params
        and params[0].kind
        in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        )
    ):
        params = params[1:]
    return [[p.name, _param_kind(p.kind), _default(p.default)] for p in params]


def _constructor(klass: type) -> list[list[Any]] | None:
    """Constructor parameters, or ``None`` when users cannot construct the class.

    PyO3 classes without a constructor refuse instantiation with ``cannot create`` or
    ``No constructor defined``; that is recorded as ``None``.
    """
    if _is_foreign_class(klass):
        return None
    params = _params(klass, drop_first=False)
    if params == [] and getattr(klass, "__module__", "") == "builtins":
        try:
            klass()
        except TypeError as exc:
            if "cannot create" in str(exc) or "No constructor" in str(exc):
                return None
        except Exception:  # noqa: BLE001, S110 - constructible, only not with no arguments
            pass
    return params


def _member_kind(raw: Any) -> str:
    if isinstance(raw, (classmethod, staticmethod)):
        return "static"
    name = type(raw).__name__
    if name in ("classmethod_descriptor", "builtin_function_or_method"):
        return "static"
    if isinstance(raw, (property, types.GetSetDescriptorType, types.MemberDescriptorType)):
        return "property"
    if name == "cached_property":
        return "property"
    if isinstance(raw, (types.FunctionType, types.MethodDescriptorType)):
        return "method"
    if isinstance(raw, type):
        return "class"
    if callable(raw):
        return "method"
    return "attribute"


def _owner(klass: type, name: str) -> type | None:
    for base in klass.__mro__:
        if name in vars(base):
            return base
    return None


def _instance_fields(klass: type) -> list[str]:
    """Data attributes that instances have but the class does not show (annotated fields)."""
    names: list[str] = []
    for base in reversed(klass.__mro__):
        if _is_foreign_class(base):
            continue
        for name, annotation in vars(base).get("__annotations__", {}).items():
            if "ClassVar" in str(annotation) or name in names:
                continue
            if name not in vars(klass) and not any(name in vars(b) for b in klass.__mro__):
                names.append(name)
    return names


def _describe_class(
    path: str,
    klass: type,
    out: dict[str, dict[str, Any]],
    depth: int,
    enclosing: type | None = None,
) -> None:
    out[path] = {"kind": "class", "params": _constructor(klass)}
    # A nested class that subclasses its enclosing class (the variants of an enum-like class,
    # ``ManifestPreloadCondition.And``) inherits the enclosing members: those are described once,
    # on the enclosing class.
    inherited = set(enclosing.__mro__) if enclosing is not None else set()
    for name in _instance_fields(klass):
        if not name.startswith("_"):
            out[f"{path}.{name}"] = {"kind": "property", "params": None}
    # dir() of an Enum class lists only its members: add what the class bodies define.
    names = set(dir(klass))
    for base in klass.__mro__:
        if not _is_foreign_class(base):
            names.update(vars(base))
    for name in sorted(names):
        if name.startswith("_"):
            continue
        owner = _owner(klass, name)
        if owner is None or _is_foreign_class(owner) or owner in inherited:
            continue
        raw = inspect.getattr_static(klass, name)
        kind = _member_kind(raw)
        member_path = f"{path}.{name}"
        if any(name in vars(b) for b in klass.__mro__ if _is_foreign_class(b)):
            # An override of a base's member (zarr's Store.read_only): the base's API.
            out[member_path] = {"kind": kind, "params": None, "overrides": True}
            continue
        if kind == "class":
            if depth < 2 and raw.__name__ == name:
                _describe_class(member_path, raw, out, depth + 1, klass)
            else:
                out[member_path] = {"kind": "attribute", "params": None}
        elif kind == "static":
            out[member_path] = {
                "kind": kind,
                "params": _params(getattr(klass, name), drop_first=False),
            }
        elif kind == "method":
            out[member_path] = {"kind": kind, "params": _params(raw, drop_first=True)}
        else:
            out[member_path] = {"kind": kind, "params": None}


def _describe(path: str, obj: Any, out: dict[str, dict[str, Any]]) -> None:
    if isinstance(obj, types.ModuleType):
        out[path] = {"kind": "module", "params": None}
    elif isinstance(obj, type):
        _describe_class(path, obj, out, depth=0)
    elif callable(obj) and not hasattr(obj, "__origin__"):
        out[path] = {"kind": "function", "params": _params(obj, drop_first=False)}
    elif isinstance(obj, types.UnionType) or hasattr(obj, "__origin__"):
        out[path] = {"kind": "type_alias", "params": None}
    else:
        out[path] = {"kind": "attribute", "params": None}


def collect(package_name: str = "icechunk") -> dict[str, dict[str, Any]]:
    """Describe the public surface of ``package_name`` (imported fresh if needed)."""
    package = importlib.import_module(package_name)
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(dir(package)):
        if not name.startswith("_"):
            _describe(name, getattr(package, name), out)
    for sub in SUBMODULES:
        try:
            module = importlib.import_module(f"{package_name}.{sub}")
        except ImportError as exc:
            raise SystemExit(
                f"cannot import {package_name}.{sub} ({exc}): run this with a Python that has "
                "dask, distributed and xarray (the ic2bench oracle)"
            ) from exc
        for name in sorted(dir(module)):
            obj = getattr(module, name)
            if name.startswith("_") or isinstance(obj, types.ModuleType):
                continue
            if getattr(obj, "__module__", None) != module.__name__:
                continue  # re-exported from elsewhere (zarr, xarray, typing, ...)
            _describe(f"{sub}.{name}", obj, out)
    return out


def main() -> None:
    import icechunk

    surface = collect("icechunk")
    document = {
        "package": "icechunk",
        "version": icechunk.__version__,
        "python": sys.version.split()[0],
        "surface": surface,
    }
    REFERENCE.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(surface)} entries for icechunk {icechunk.__version__} to {REFERENCE}")


if __name__ == "__main__":
    main()
