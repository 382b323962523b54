"""``icechunk._core.refs.base``: ref naming rules, clock and the shared history walks."""

from __future__ import annotations

import time

import pytest

from icechunk._core.refs import now_us, validate_ref_name
from icechunk._sync import sync
from icechunk.errors import ErrorKind, InvalidInputError, RefNotFoundError
from tests.core.refs._history import two_commits


@pytest.mark.parametrize("name", ["main", "feature-1", "v1.0", "with space", "ünïcode", "..."])
def test_valid_ref_names(name: str) -> None:
    validate_ref_name(name)


@pytest.mark.parametrize("name", ["", "a/b", ".", "..", "tab\there", "nul\x00", "del\x7f"])
def test_invalid_ref_names_are_refused_with_the_name(name: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        validate_ref_name(name)
    assert info.value.kind == ErrorKind.INVALID_REF_NAME
    assert "invalid ref name" in str(info.value)


def test_non_string_ref_name() -> None:
    with pytest.raises(InvalidInputError, match="expected a string"):
        validate_ref_name(3)  # type: ignore[arg-type]


def test_now_us_is_microseconds_since_the_epoch() -> None:
    before = time.time_ns() // 1000
    value = now_us()
    assert before <= value <= time.time_ns() // 1000


@pytest.mark.parametrize("spec", [1, 2])
def test_ancestry_and_path_between(spec: int) -> None:
    objects, initial, first, second = two_commits(spec)
    refs = objects.refs
    assert [r.id for r in sync(refs.ancestry(second))] == [second, first, initial]
    assert sync(refs.path_between(initial, second)) == [second, first]
    assert sync(refs.path_between(second, second)) == []
    assert sync(refs.path_between(second, initial)) is None  # not an ancestor


@pytest.mark.parametrize("spec", [1, 2])
def test_missing_refs_raise_ref_not_found(spec: int) -> None:
    refs = two_commits(spec)[0].refs
    with pytest.raises(RefNotFoundError):
        sync(refs.branch_tip("nope"))
    with pytest.raises(RefNotFoundError):
        sync(refs.tag_target("nope"))
