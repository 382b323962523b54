"""Helpers shared by the interop scripts.

The scripts in this directory run unchanged under three interpreters: the real icechunk 1.1.21
(oracle ``ic1``), the real icechunk 2.3.0 (oracle ``ic2``) and this project's pure-Python
``icechunk`` (the test virtualenv).  They only use the public API common to all three, and the
few API differences between 1.x and 2.x are bridged here by looking at signatures, never at a
version number, so that our implementation is treated exactly like the real library it mimics.

Everything a script prints is one canonical JSON document (:func:`emit`): sorted keys, sets as
sorted lists, numpy scalars as Python numbers, non-finite floats as strings.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import enum
import inspect
import json
import math
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
import zarr

import icechunk

# ---------------------------------------------------------------------------------------------
# API detection


def library_info() -> dict[str, str]:
    """Versions of the libraries running this script (reported, never compared)."""
    return {
        "icechunk": str(getattr(icechunk, "__version__", "unknown")),
        "icechunk_file": str(getattr(icechunk, "__file__", "")),
        "zarr": zarr.__version__,
        "numpy": np.__version__,
        "python": ".".join(map(str, sys.version_info[:3])),
    }


def _params(func: Any) -> Mapping[str, inspect.Parameter]:
    try:
        return inspect.signature(func).parameters
    except (TypeError, ValueError):  # builtins without a text signature
        return {}


def supports_spec_version() -> bool:
    """True when ``Repository.create`` takes ``spec_version`` (icechunk 2.x and ours)."""
    return "spec_version" in _params(icechunk.Repository.create)


def storage(path: str) -> Any:
    return icechunk.local_filesystem_storage(path)


def create_repo(path: str, spec: int) -> Any:
    """Create a repository with on-disk spec ``spec`` at ``path``.

    icechunk 1.x has no ``spec_version`` argument and always writes spec 1.
    """
    if supports_spec_version():
        return icechunk.Repository.create(storage(path), spec_version=spec)
    if spec != 1:
        raise SystemExit(f"icechunk {library_info()['icechunk']} can only write spec 1")
    return icechunk.Repository.create(storage(path))


def open_repo(path: str) -> Any:
    return icechunk.Repository.open(storage(path))


def commit(session: Any, message: str, metadata: dict[str, Any] | None = None) -> str:
    """``Session.commit`` across versions.

    1.1.21 takes ``(message, metadata, rebase_with, rebase_tries)`` positionally; 2.x makes the
    arguments after ``metadata`` keyword-only.  Pass ``metadata`` by keyword only when the
    signature says it must be.
    """
    param = _params(session.commit).get("metadata")
    if param is not None and param.kind is inspect.Parameter.KEYWORD_ONLY:
        return str(session.commit(message, metadata=metadata))
    return str(session.commit(message, metadata))


def run_async(coro: Any) -> Any:
    """Run one store coroutine to completion (outside of zarr's own event loop)."""
    return asyncio.run(coro)


async def _collect(aiter: Any) -> list[str]:
    return [item async for item in aiter]


def list_keys(store: Any, prefix: str = "") -> list[str]:
    """All keys of ``store`` under ``prefix``, sorted."""
    return sorted(run_async(_collect(store.list_prefix(prefix))))


def chunk_type_name(value: Any) -> str:
    """Name of a ``ChunkType`` member: 1.x spells them ``NATIVE``, 2.x ``native``."""
    name = getattr(value, "name", None) or str(value).rsplit(".", 1)[-1]
    return str(name).lower()


# ---------------------------------------------------------------------------------------------
# canonical JSON


def jsonable(obj: Any) -> Any:
    """Convert ``obj`` into plain JSON values, deterministically."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, enum.Enum):
        return jsonable(obj.value)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else repr(value)  # "nan", "inf", "-inf"
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, complex | np.complexfloating):
        return [jsonable(obj.real), jsonable(obj.imag)]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, bytes):
        return {"base64": base64.b64encode(obj).decode()}
    if isinstance(obj, dt.datetime):
        return obj.isoformat()
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (set, frozenset)):
        return sorted((jsonable(v) for v in obj), key=_sort_key)
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    raise TypeError(f"cannot convert {type(obj).__name__} to JSON: {obj!r}")


def _sort_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def canonical(obj: Any) -> str:
    return json.dumps(jsonable(obj), sort_keys=True, indent=1, allow_nan=False, ensure_ascii=False)


def emit(obj: Any) -> None:
    """Print ``obj`` as the script's single canonical JSON document."""
    sys.stdout.write(canonical(obj) + "\n")
    sys.stdout.flush()
