"""``icechunk._core.refs.v2.RefStoreV2``: all refs in the ``repo`` object, with an ops log."""

from __future__ import annotations

import pytest

from icechunk._core.refs import RefStoreV2
from icechunk._sync import sync
from icechunk.errors import AlreadyExistsError, ConflictError, ErrorKind, RefNotFoundError
from icechunk.format import layout
from tests.core.refs._history import two_commits


def test_refs_live_in_the_repo_object_only() -> None:
    objects, _, first, _ = two_commits(2)
    refs = objects.refs
    assert isinstance(refs, RefStoreV2)
    sync(refs.create_branch("dev", first))
    assert sync(refs.branches())["dev"] == first
    assert not sync(objects.storage.exists(layout.branch_key("dev")))


def test_every_update_is_logged_newest_first_with_a_backup() -> None:
    objects, _, first, _ = two_commits(2)
    refs = objects.refs
    before = sync(refs.ops_log())
    sync(refs.create_tag("t", first))
    sync(refs.delete_tag("t"))
    log = sync(refs.ops_log())
    assert len(log) == len(before) + 2
    assert [u.kind for u in log[:2]] == ["TagDeleted", "TagCreated"]
    assert log[0].updated_at > log[1].updated_at
    assert log[0].backup_path is None
    assert log[1].backup_path is not None
    assert sync(objects.storage.exists(layout.OVERWRITTEN + log[1].backup_path))


def test_ops_log_follows_older_files() -> None:
    objects, _, first, _ = two_commits(2)
    refs = RefStoreV2(objects.storage, objects.load_snapshot, num_updates_per_file=2)
    for i in range(4):
        sync(refs.create_branch(f"b{i}", first))
    info = sync(refs.read())
    assert len(info.latest_updates) == 2 and info.repo_before_updates
    names = [u.fields.get("name") for u in sync(refs.ops_log()) if u.kind == "BranchCreated"]
    assert names == ["b3", "b2", "b1", "b0"]


def test_a_second_handle_sees_updates_and_cas_conflicts_change_nothing() -> None:
    objects, initial, first, second = two_commits(2)
    other = RefStoreV2(objects.storage, objects.load_snapshot)
    sync(objects.refs.reset_branch("main", first, second))
    assert sync(other.branch_tip("main")) == first
    log_length = len(sync(other.ops_log()))
    with pytest.raises(ConflictError) as err:
        sync(other.publish_commit("main", sync(other.snapshot_info(second)), initial))
    assert err.value.kind == ErrorKind.COMMIT_CONFLICT
    assert sync(objects.refs.branch_tip("main")) == first
    assert len(sync(objects.refs.ops_log())) == log_length


def test_tags_and_metadata() -> None:
    objects, _, first, second = two_commits(2)
    refs = objects.refs
    sync(refs.create_tag("t", first))
    with pytest.raises(AlreadyExistsError):
        sync(refs.create_tag("t", second))
    sync(refs.delete_tag("t"))
    with pytest.raises(AlreadyExistsError) as err:
        sync(refs.create_tag("t", second))
    assert err.value.kind == ErrorKind.TAG_PREVIOUSLY_DELETED
    with pytest.raises(RefNotFoundError):
        sync(refs.delete_branch("nope"))
    sync(refs.set_metadata({"owner": "core-tests"}))
    assert sync(refs.get_metadata()) == {"owner": "core-tests"}
