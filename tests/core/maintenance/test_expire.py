"""``icechunk._core.maintenance.expire.expire_snapshots``: the exclusive cutoff, per spec."""

from __future__ import annotations

from datetime import timedelta

import pytest

from icechunk._core.maintenance import expire_snapshots
from icechunk._sync import sync
from icechunk.errors import InvalidInputError
from icechunk.format.ids import encode_id
from tests.core.maintenance._history import committed_at, history


@pytest.mark.parametrize("spec", [1, 2])
def test_the_cutoff_is_exclusive_and_the_root_stays(spec: int) -> None:
    objects, (initial, c1, c2, c3) = history(spec)
    released = sync(expire_snapshots(objects, committed_at(objects, c2)))
    assert released == {encode_id(c1)}  # c2 itself was committed at the cutoff: kept
    assert [r.id for r in sync(objects.refs.ancestry(c3))] == [c3, c2, initial]


def test_nothing_older_nothing_released() -> None:
    objects, (initial, c1, c2, c3) = history(2)
    assert sync(expire_snapshots(objects, committed_at(objects, initial))) == set()
    assert [r.id for r in sync(objects.refs.ancestry(c3))] == [c3, c2, c1, initial]


def test_expired_branch_tips_are_kept_unless_asked() -> None:
    objects, (_initial, c1, c2, c3) = history(2)
    sync(objects.refs.create_branch("old", c1))
    cutoff = committed_at(objects, c3) + timedelta(seconds=1)
    released = sync(expire_snapshots(objects, cutoff))
    assert encode_id(c1) not in released  # the tip of `old`
    assert encode_id(c2) in released
    assert sync(objects.refs.branch_tip("main")) == c3  # main's tip is always kept
    released = sync(expire_snapshots(objects, cutoff, delete_expired_branches=True))
    assert encode_id(c1) in released
    assert set(sync(objects.refs.branches())) == {"main"}


def test_older_than_must_be_a_datetime() -> None:
    objects, _ = history(2)
    with pytest.raises(InvalidInputError, match="older_than"):
        sync(expire_snapshots(objects, 0))  # type: ignore[arg-type]
