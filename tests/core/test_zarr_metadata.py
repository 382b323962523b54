"""``icechunk._core.zarr_metadata``: a node's kind and chunk grid from its ``zarr.json``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from icechunk._core.zarr_metadata import NodeMetadata, parse_node_metadata
from icechunk.errors import InvalidInputError


def _array(**overrides: Any) -> bytes:
    doc: dict[str, Any] = {
        "zarr_format": 3,
        "node_type": "array",
        "shape": [10, 4],
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [3, 4]}},
        "dimension_names": ["time", None],
    }
    doc.update(overrides)
    return json.dumps(doc).encode()


def test_array_shape_chunks_and_dimension_names() -> None:
    meta = parse_node_metadata("/a", _array())
    assert meta == NodeMetadata(True, (10, 4), (3, 4), ("time", None))
    assert meta.ndim == 2
    assert meta.num_chunks == (4, 1)  # ceiling division
    shapes = meta.dimension_shapes()
    assert [(d.array_length, d.num_chunks, d.chunk_length) for d in shapes] == [
        (10, 4, 3),
        (4, 1, 4),
    ]


def test_group_and_zero_length_dimension() -> None:
    group = parse_node_metadata("/g", b'{"zarr_format": 3, "node_type": "group"}')
    assert group == NodeMetadata(is_array=False)
    empty = parse_node_metadata(
        "/e",
        _array(shape=[0], chunk_grid={"name": "regular", "configuration": {"chunk_shape": [5]}}),
    )
    assert empty.num_chunks == (0,)


def test_mismatched_dimension_names_are_dropped() -> None:
    assert parse_node_metadata("/a", _array(dimension_names=["only-one"])).dimension_names is None


@pytest.mark.parametrize(
    ("user_data", "why"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"zarr_format": 2, "node_type": "array"}', "only zarr format 3"),
        (b'{"zarr_format": 3, "node_type": "dataset"}', "unknown node_type"),
        (_array(shape=[-1, 4]), "`shape` must be a list of non-negative integers"),
        (_array(chunk_grid={"name": "rectilinear"}), "rectilinear chunk grids must be of kind"),
        (_array(chunk_grid={"name": "irregular"}), "only regular and rectilinear chunk grids"),
        (
            _array(chunk_grid={"name": "regular", "configuration": {"chunk_shape": [0, 4]}}),
            "chunk lengths must be positive integers",
        ),
        (
            _array(
                shape=[2**40, 4],
                chunk_grid={"name": "regular", "configuration": {"chunk_shape": [1, 4]}},
            ),
            "more than 2**32 - 1 chunks",
        ),
    ],
)
def test_bad_metadata_names_the_path_and_the_reason(user_data: bytes, why: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_node_metadata("/bad/node", user_data)
    message = str(info.value)
    assert "`/bad/node`" in message
    assert why in message
