"""The manifest split conditions' variant classes, as the real icechunk 2.3.0 has them.

Expected reprs, ``isinstance`` relations and refusals were read off the real 2.3.0 (oracle venv).
"""

from __future__ import annotations

import pickle

import pytest

from icechunk import (
    ManifestSplitCondition as C,
)
from icechunk import (
    ManifestSplitDimCondition as D,
)
from icechunk import (
    ManifestSplittingConfig,
)
from icechunk.errors import InvalidInputError

Q = "icechunk.config.ManifestSplitCondition"
QD = "icechunk.config.ManifestSplitDimCondition"


def test_constructors_return_instances_of_the_variant_classes() -> None:
    a, b = C.name_matches("t.*"), C.path_matches("/x")
    assert type(a) is C.NameMatches and type(b) is C.PathMatches
    assert type(C.AnyArray()) is C.AnyArray
    assert type(a | b) is C.Or and type(C.or_conditions([a, b])) is C.Or
    assert type(a & b) is C.And and type(C.and_conditions([a])) is C.And
    for cond in (a, b, C.AnyArray(), a | b, a & b):
        assert isinstance(cond, C) and not isinstance(cond, D)
    for dim in (D.Axis(1), D.DimensionName("lon"), D.Any()):
        assert isinstance(dim, D) and not isinstance(dim, C)


def test_variant_fields_and_match_statements() -> None:
    a, b = C.NameMatches("t.*"), C.PathMatches("/x")
    assert a.regex == "t.*" and b.regex == "/x"
    assert C.Or([a, b])._0 == [a, b]
    axis = D.Axis(4)
    assert axis._0 == 4 and len(axis) == 1 and axis[0] == 4
    assert D.DimensionName("x")._0 == "x"
    match D.Axis(2):
        case D.Axis(n):
            assert n == 2
        case _:
            pytest.fail("Axis(2) did not match the Axis pattern")
    match C.NameMatches("lat"):
        case C.PathMatches(_):
            pytest.fail("NameMatches matched the PathMatches pattern")
        case C.NameMatches(regex):
            assert regex == "lat"


def test_reprs_are_the_real_ones() -> None:
    a, b = C.name_matches("t.*"), C.path_matches("/x")
    assert repr(a) == f'{Q}.name_matches("t.*")'
    assert repr(C.AnyArray()) == f"{Q}.any_array()"
    assert repr(a | b) == f'{Q}.or_conditions([{Q}.name_matches("t.*"), {Q}.path_matches("/x")])'
    assert repr(C.and_conditions([a])) == f'{Q}.and_conditions([{Q}.name_matches("t.*")])'
    assert repr(D.Axis(1)) == f"{QD}.axis(1)"
    assert repr(D.DimensionName("lon")) == f'{QD}.dimension_name("lon")'
    assert repr(D.Any()) == f"{QD}.any()"
    cfg = ManifestSplittingConfig.from_dict({a: {D.Axis(0): 3}})
    assert repr(cfg) == (
        "icechunk.config.ManifestSplittingConfig(\n"
        f'    split_sizes=[({Q}.name_matches("t.*"), [({QD}.axis(0), 3)])],\n'
        ")"
    )
    assert repr(ManifestSplittingConfig()) == (
        "icechunk.config.ManifestSplittingConfig(\n    split_sizes=None,\n)"
    )


def test_equality_hashing_and_pickling() -> None:
    assert C.NameMatches("a") == C.name_matches("a") != C.NameMatches("b")
    assert hash(C.NameMatches("a")) == hash(C.name_matches("a"))
    assert C.AnyArray() == C.AnyArray() and C.Or([C.AnyArray()]) == C.Or([C.AnyArray()])
    assert C.Or([C.AnyArray()]) != C.And([C.AnyArray()])
    assert D.Axis(1) == D.Axis(1) != D.Axis(2)
    cfg = ManifestSplittingConfig.from_dict(
        {C.name_matches("t") | C.AnyArray(): {D.Axis(0): 3, D.DimensionName("x"): 2, D.Any(): 5}}
    )
    back = pickle.loads(pickle.dumps(cfg))
    assert back == cfg and back.split_sizes == cfg.split_sizes
    assert ManifestSplittingConfig.from_dict(cfg.to_dict()) == cfg


def test_refusals_name_what_was_wrong() -> None:
    with pytest.raises(TypeError, match="cannot create 'ManifestSplitCondition' instances"):
        C()
    with pytest.raises(TypeError, match="cannot create 'ManifestSplitDimCondition' instances"):
        D()
    with pytest.raises(OverflowError, match="negative"):
        D.Axis(-1)
    with pytest.raises(TypeError, match="cannot be interpreted as an integer"):
        D.Axis("x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not an instance of 'Sequence'"):
        C.Or(C.AnyArray())  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match="'int' object is not an instance of 'ManifestSplitCondition'"
    ):
        C.Or([1])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        D.Any(1)  # type: ignore[call-arg]
    with pytest.raises(InvalidInputError, match="between 1 and"):
        ManifestSplittingConfig.from_dict({C.AnyArray(): {D.Any(): 0}})
    with pytest.raises(InvalidInputError, match="invalid manifest split condition regex"):
        C.name_matches("(").matches("/a")


def test_matching_and_split_sizes() -> None:
    cfg = ManifestSplittingConfig.from_dict(
        {
            C.name_matches("^temp") & C.path_matches("^/model/"): {
                D.DimensionName("lon"): 3,
                D.Axis(0): 2,
            },
            C.AnyArray(): {D.Any(): 7},
        }
    )
    assert cfg.split_sizes_for("/model/temperature", ("time", "lat", "lon"), 3) == (2, None, 3)
    assert cfg.split_sizes_for("/other/temperature", None, 2) == (7, 7)
    assert ManifestSplittingConfig().split_sizes_for("/a", None, 2) == (None, None)
    cfg.split_sizes = [(C.AnyArray(), [(D.Axis(1), 4)])]
    assert cfg.split_sizes_for("/a", None, 2) == (None, 4)
    assert cfg.to_json() == {
        "split_sizes": [["any_array", [{"condition": {"Axis": 1}, "num_chunks": 4}]]]
    }
