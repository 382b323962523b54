"""What the store needs to know from a node's ``zarr.json``: its kind and its chunk grid.

Icechunk keeps ``zarr.json`` bytes verbatim; only the array shape, the chunk grid and the
dimension names are read from them (to validate chunk keys and to record the array's shape in
the snapshot).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from icechunk.errors import ErrorKind, InvalidInputError
from icechunk.format.model import DimensionShape

__all__ = ["NodeMetadata", "parse_node_metadata"]


@dataclass(frozen=True, slots=True)
class NodeMetadata:
    is_array: bool
    shape: tuple[int, ...] = ()
    chunk_shape: tuple[int, ...] = ()
    dimension_names: tuple[str | None, ...] | None = None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def num_chunks(self) -> tuple[int, ...]:
        return tuple(
            -(-length // chunk) if chunk else 0
            for length, chunk in zip(self.shape, self.chunk_shape, strict=True)
        )

    def dimension_shapes(self) -> tuple[DimensionShape, ...]:
        return tuple(
            DimensionShape(array_length=length, num_chunks=n, chunk_length=chunk)
            for length, n, chunk in zip(self.shape, self.num_chunks, self.chunk_shape, strict=True)
        )


def _bad(path: str, why: str) -> InvalidInputError:
    return InvalidInputError(
        f"invalid zarr metadata for `{path}`: {why}", ErrorKind.INVALID_METADATA
    )


@functools.lru_cache(maxsize=4096)
def parse_node_metadata(path: str, user_data: bytes) -> NodeMetadata:
    """Parse a zarr v3 ``zarr.json``.

    Memoized: sessions look a node's metadata up on every chunk read and write, and
    ``NodeMetadata`` is immutable (bytes hash once), so repeated calls cost a dict lookup.

    Raises
    ------
    InvalidInputError
        Not JSON, not zarr format 3, or an array without a usable shape and regular chunk grid.
    """
    try:
        doc = json.loads(user_data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad(path, f"not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise _bad(path, "expected a JSON object")
    if doc.get("zarr_format") != 3:
        raise _bad(path, "only zarr format 3 metadata is supported")
    node_type = doc.get("node_type")
    if node_type == "group":
        return NodeMetadata(is_array=False)
    if node_type != "array":
        raise _bad(path, f"unknown node_type {node_type!r}")
    shape = doc.get("shape")
    if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise _bad(path, "`shape` must be a list of non-negative integers")
    grid = doc.get("chunk_grid")
    chunk_shape: list[int] | None = None
    if isinstance(grid, dict) and grid.get("name") == "regular":
        chunk_shape = (grid.get("configuration") or {}).get("chunk_shape")
    if not isinstance(chunk_shape, list) or len(chunk_shape) != len(shape):
        raise _bad(path, "only regular chunk grids with one chunk length per dimension work")
    if not all(type(c) is int and c > 0 for c in chunk_shape):
        raise _bad(path, "chunk lengths must be positive integers")
    if any(-(-n // c) >= 2**32 for n, c in zip(shape, chunk_shape, strict=True)):
        raise _bad(path, "more than 2**32 - 1 chunks along a dimension; use larger chunks")
    names = doc.get("dimension_names")
    dims: tuple[str | None, ...] | None = None
    if isinstance(names, list) and len(names) == len(shape):
        dims = tuple(n if isinstance(n, str) else None for n in names)
    return NodeMetadata(
        is_array=True, shape=tuple(shape), chunk_shape=tuple(chunk_shape), dimension_names=dims
    )
