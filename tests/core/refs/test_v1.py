"""``icechunk._core.refs.v1.RefStoreV1``: one JSON object per ref, swapped by compare-and-swap."""

from __future__ import annotations

import pytest

from icechunk._core.refs import RefStoreV1
from icechunk._sync import sync
from icechunk.errors import (
    AlreadyExistsError,
    ConflictError,
    ErrorKind,
    InvalidInputError,
    SessionStateError,
)
from icechunk.format import layout
from tests.core.refs._history import two_commits


def test_refs_are_objects_under_refs() -> None:
    objects, _, first, second = two_commits(1)
    refs = objects.refs
    assert isinstance(refs, RefStoreV1)
    sync(refs.create_branch("dev", first))
    sync(refs.create_tag("v1", second))
    assert sync(objects.storage.exists(layout.branch_key("dev")))
    assert sync(objects.storage.exists(layout.tag_key("v1")))
    assert sync(refs.branches()) == {"main": second, "dev": first}
    assert sync(refs.tags()) == {"v1": second}


def test_reset_is_compare_and_swap() -> None:
    objects, initial, first, second = two_commits(1)
    refs = objects.refs
    with pytest.raises(ConflictError) as info:
        sync(refs.reset_branch("main", initial, first))  # main is at second, not first
    assert info.value.kind == ErrorKind.BRANCH_UPDATE_CONFLICT
    assert sync(refs.branch_tip("main")) == second
    sync(refs.reset_branch("main", initial, second))
    assert sync(refs.branch_tip("main")) == initial


def test_publish_commit_refuses_a_stale_parent() -> None:
    objects, _, first, second = two_commits(1)
    refs = objects.refs
    info = sync(refs.snapshot_info(second))
    with pytest.raises(ConflictError) as err:
        sync(refs.publish_commit("main", info, first))
    assert err.value.kind == ErrorKind.COMMIT_CONFLICT
    assert err.value.actual_parent is not None


def test_tags_are_immutable_and_never_reused() -> None:
    objects, _, first, second = two_commits(1)
    refs = objects.refs
    sync(refs.create_tag("t", first))
    with pytest.raises(AlreadyExistsError) as err:
        sync(refs.create_tag("t", second))
    assert err.value.kind == ErrorKind.TAG_ALREADY_EXISTS
    sync(refs.delete_tag("t"))
    assert "t" not in sync(refs.tags())
    with pytest.raises(AlreadyExistsError) as err:
        sync(refs.create_tag("t", second))
    assert err.value.kind == ErrorKind.TAG_PREVIOUSLY_DELETED
    with pytest.raises(InvalidInputError):
        sync(refs.create_branch("bad/name", first))


def test_spec_2_only_features_are_refused() -> None:
    refs = two_commits(1)[0].refs
    with pytest.raises(SessionStateError, match="spec version 2"):
        sync(refs.ops_log())
    with pytest.raises(SessionStateError, match="spec version 2"):
        sync(refs.get_metadata())
