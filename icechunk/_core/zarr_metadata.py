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
    edge_counts: tuple[int | None, ...] | None = None
    """Rectilinear grids only: per dimension, the number of declared chunk edges (``None`` for
    a dimension given by one repeated length, which ``chunk_shape`` then holds)."""

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def rectilinear(self) -> bool:
        return self.edge_counts is not None

    @property
    def num_chunks(self) -> tuple[int, ...]:
        # A dimension with explicit edges has as many chunks as edges, even when they reach
        # past the array's length (after a shrinking resize), as the real Icechunk records it.
        counts = self.edge_counts or (None,) * len(self.shape)
        return tuple(
            count if count is not None else (-(-length // chunk) if chunk else 0)
            for length, chunk, count in zip(self.shape, self.chunk_shape, counts, strict=True)
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
    edge_counts: tuple[int | None, ...] | None = None
    if isinstance(grid, dict) and grid.get("name") == "regular":
        chunk_shape = (grid.get("configuration") or {}).get("chunk_shape")
    elif isinstance(grid, dict) and grid.get("name") == "rectilinear":
        chunk_shape, edge_counts = _rectilinear(path, grid, len(shape))
    else:
        raise _bad(path, "only regular and rectilinear chunk grids are supported")
    if not isinstance(chunk_shape, list) or len(chunk_shape) != len(shape):
        raise _bad(path, "the chunk grid needs one chunk length per dimension")
    if not all(type(c) is int and c > 0 for c in chunk_shape):
        raise _bad(path, "chunk lengths must be positive integers")
    meta = NodeMetadata(
        is_array=True,
        shape=tuple(shape),
        chunk_shape=tuple(chunk_shape),
        dimension_names=None,
        edge_counts=edge_counts,
    )
    if any(n >= 2**32 for n in meta.num_chunks):
        raise _bad(path, "more than 2**32 - 1 chunks along a dimension; use larger chunks")
    names = doc.get("dimension_names")
    if isinstance(names, list) and len(names) == len(shape):
        dims = tuple(n if isinstance(n, str) else None for n in names)
        meta = NodeMetadata(
            is_array=True,
            shape=meta.shape,
            chunk_shape=meta.chunk_shape,
            dimension_names=dims,
            edge_counts=edge_counts,
        )
    return meta


def _rectilinear(
    path: str, grid: dict[str, object], ndim: int
) -> tuple[list[int], tuple[int | None, ...]]:
    """Chunk lengths and edge counts of a ``rectilinear`` grid (zarr's inline kind).

    Each dimension is one repeated length (a bare integer), or a list of edge lengths where
    ``[length, count]`` pairs are run-length encoded. The returned chunk length of a dimension
    with explicit edges is its largest edge (only the edge count matters to the store).
    """
    config = grid.get("configuration")
    specs = config.get("chunk_shapes") if isinstance(config, dict) else None
    if not isinstance(config, dict) or config.get("kind", "inline") != "inline":
        raise _bad(path, "rectilinear chunk grids must be of kind `inline`")
    if not isinstance(specs, list) or len(specs) != ndim:
        raise _bad(path, "a rectilinear grid needs one `chunk_shapes` entry per dimension")
    lengths: list[int] = []
    counts: list[int | None] = []
    for spec in specs:
        if type(spec) is int:
            lengths.append(spec)
            counts.append(None)
            continue
        if not isinstance(spec, list):
            raise _bad(path, f"bad rectilinear chunk spec {spec!r}")
        edges: list[int] = []
        for item in spec:
            if type(item) is int:
                edges.append(item)
            elif (
                isinstance(item, list)
                and len(item) == 2
                and all(type(x) is int for x in item)
                and item[1] >= 0
            ):
                edges.extend([item[0]] * item[1])
            else:
                raise _bad(path, f"bad rectilinear chunk edge {item!r}")
        if not edges or any(e <= 0 for e in edges):
            raise _bad(path, "rectilinear chunk edges must be positive integers")
        lengths.append(max(edges))
        counts.append(len(edges))
    return lengths, tuple(counts)
