"""Version control checked against a plain-Python model (hypothesis state machine).

The model knows every snapshot (parent, message, metadata, commit time and the data it holds),
the branches, the live and deleted tags, and, for spec 2, the operations log. The machine drives
the public API: writes through zarr, commit / amend / flush / discard, branch and tag CRUD with
their error cases, checkouts by id, tag, branch and ``as_of``, diffs, and reopening the
repository. After every step the repository must agree with the model.
"""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import hypothesis.strategies as st
import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from zarr.core.sync import sync

import icechunk
from icechunk import ErrorKind

ARRAYS = ("x", "y", "z")
SHAPE = 4
BRANCHES = ("main", "dev", "feature")
TAGS = ("v1", "v2", "v3")
ATTR_KEYS = ("title", "n")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**31), 2**31) | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=2)
        | st.dictionaries(
            st.text(st.characters(exclude_characters="\x00"), max_size=3), inner, max_size=2
        )
    ),
    max_leaves=4,
)
commit_metadata = st.none() | st.dictionaries(
    st.sampled_from(["author", "run", "tags", "ünï"]), json_values, max_size=3
)
messages = st.text(max_size=12)


@dataclass(frozen=True)
class Data:
    """What a snapshot holds: whether the root group exists, its attributes, and the arrays."""

    root: bool = False
    attrs: tuple[tuple[str, Any], ...] = ()
    arrays: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def with_attr(self, key: str, value: Any) -> Data:
        attrs = dict(self.attrs)
        attrs[key] = value
        return Data(True, tuple(sorted(attrs.items())), self.arrays)

    def with_array(self, name: str, values: tuple[int, ...] | None) -> Data:
        arrays = dict(self.arrays)
        if values is None:
            arrays.pop(name, None)
        else:
            arrays[name] = values
        return Data(True, self.attrs, tuple(sorted(arrays.items())))


@dataclass
class SnapModel:
    parent: str | None
    message: str
    metadata: dict[str, Any]
    data: Data
    written_at: datetime
    amended: bool = False
    """Made by ``Session.amend``."""


@dataclass
class OpenSession:
    session: icechunk.Session
    branch: str
    base: str
    working: Data
    touched: bool = False
    """Written to since it was opened or its changes discarded."""


@dataclass
class Model:
    snapshots: dict[str, SnapModel] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    deleted_tags: set[str] = field(default_factory=set)
    ops: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """Oldest first."""

    def chain(self, snapshot_id: str) -> list[str]:
        out: list[str] = []
        current: str | None = snapshot_id
        while current is not None:
            out.append(current)
            current = self.snapshots[current].parent
        return out


def read_data(session: icechunk.Session) -> Data:
    store = session.store

    async def keys() -> list[str]:
        return [k async for k in store.list()]

    if "zarr.json" not in sync(keys()):
        return Data()
    root = zarr.open_group(store, mode="r")
    arrays = []
    for name in sorted(root.array_keys()):
        values = root[name][:]
        assert isinstance(values, np.ndarray)
        arrays.append((name, tuple(int(v) for v in values)))
    attrs = json.loads(json.dumps(dict(root.attrs)))
    return Data(True, tuple(sorted(attrs.items())), tuple(arrays))


class VersionControlMachine(RuleBasedStateMachine):
    def __init__(self, spec_version: int, storage_kind: str, config: icechunk.RepositoryConfig):
        super().__init__()
        self.spec_version = spec_version
        self.tmpdir: str | None = None
        if storage_kind == "memory":
            self.storage = icechunk.in_memory_storage()
        else:
            self.tmpdir = tempfile.mkdtemp(prefix="stateful-repo-")
            self.storage = icechunk.local_filesystem_storage(self.tmpdir + "/repo")
        self.config = config
        self.model = Model()
        self.open: OpenSession | None = None
        self.verified: set[str] = set()

    def teardown(self) -> None:
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    # -- helpers -------------------------------------------------------------------------------

    @property
    def v2(self) -> bool:
        return self.spec_version == 2

    def op(self, kind: str, **fields: Any) -> None:
        self.model.ops.append((kind, fields))

    def record(
        self,
        snap_id: str,
        parent: str | None,
        message: str,
        metadata: dict[str, Any],
        data: Data,
        before: datetime,
        *,
        amended: bool = False,
    ) -> None:
        assert snap_id not in self.model.snapshots
        info = self.repo.lookup_snapshot(snap_id)
        assert info.id == snap_id and info.parent_id == parent
        assert info.message == message and info.metadata == metadata
        assert info.written_at >= before - timedelta(milliseconds=1)
        if parent is not None:
            assert info.written_at > self.model.snapshots[parent].written_at
        self.model.snapshots[snap_id] = SnapModel(
            parent, message, metadata, data, info.written_at, amended
        )

    def finish_session(self, snap_id: str) -> None:
        assert self.open is not None
        session = self.open.session
        assert session.read_only and session.branch is None and session.snapshot_id == snap_id
        assert not session.has_uncommitted_changes
        self.open = None

    def has_changes(self, s: OpenSession) -> bool:
        """The session's own answer, checked against what the model knows for sure."""
        changed = s.session.has_uncommitted_changes
        if s.working != self.model.snapshots[s.base].data:
            assert changed
        if not s.touched:
            assert not changed
        return changed

    def expect_metadata(self, metadata: dict[str, Any] | None) -> dict[str, Any]:
        return json.loads(json.dumps(metadata or {}))

    def snapshot_ids(self) -> list[str]:
        """In creation order: ids are random, so sorting them would make draws irreproducible."""
        return list(self.model.snapshots)

    # -- setup ---------------------------------------------------------------------------------

    @initialize()
    def create(self) -> None:
        before = datetime.now(UTC)
        self.repo = icechunk.Repository.create(
            self.storage, config=self.config, spec_version=self.spec_version
        )
        (root,) = list(self.repo.ancestry(branch="main"))
        assert root.message == "Repository initialized" and root.parent_id is None
        assert root.written_at >= before - timedelta(seconds=1)
        self.model.snapshots[root.id] = SnapModel(
            None, root.message, root.metadata, Data(), root.written_at
        )
        self.model.branches["main"] = root.id
        self.op("RepoInitialized")

    # -- writes through a session -------------------------------------------------------------

    def ensure_session(self, data: st.DataObject) -> OpenSession:
        """The open writable session, opening one on some branch if there is none."""
        if self.open is None:
            self.open_session(data.draw(st.sampled_from(sorted(self.model.branches))))
        assert self.open is not None
        return self.open

    @rule(branch=st.sampled_from(BRANCHES))
    def open_session(self, branch: str) -> None:
        if branch not in self.model.branches:
            with pytest.raises(icechunk.RefNotFoundError):
                self.repo.writable_session(branch)
            return
        session = self.repo.writable_session(branch)
        tip = self.model.branches[branch]
        assert session.snapshot_id == tip and session.branch == branch
        assert not session.read_only and not session.has_uncommitted_changes
        self.open = OpenSession(session, branch, tip, self.model.snapshots[tip].data)

    @rule(
        name=st.sampled_from(ARRAYS),
        index=st.integers(0, SHAPE - 1),
        value=st.integers(-1000, 1000),
        data=st.data(),
    )
    def write_element(self, name: str, index: int, value: int, data: st.DataObject) -> None:
        self.ensure_session(data)
        assert self.open is not None
        store = self.open.session.store
        group = zarr.open_group(store, mode="a")
        current = dict(self.open.working.arrays).get(name)
        if current is None:
            arr = group.create_array(name, shape=(SHAPE,), chunks=(2,), dtype="i4", fill_value=0)
            current = (0,) * SHAPE
        else:
            arr = group[name]
        arr[index] = value
        values = list(current)
        values[index] = value
        self.open.working = self.open.working.with_array(name, tuple(values))
        self.open.touched = True

    @rule(name=st.sampled_from(ARRAYS), data=st.data())
    def delete_array(self, name: str, data: st.DataObject) -> None:
        self.ensure_session(data)
        assert self.open is not None
        if name not in dict(self.open.working.arrays):
            return
        group = zarr.open_group(self.open.session.store, mode="a")
        del group[name]
        self.open.working = self.open.working.with_array(name, None)
        self.open.touched = True

    @rule(key=st.sampled_from(ATTR_KEYS), value=json_values, data=st.data())
    def set_attribute(self, key: str, value: Any, data: st.DataObject) -> None:
        self.ensure_session(data)
        assert self.open is not None
        group = zarr.open_group(self.open.session.store, mode="a")
        group.attrs[key] = value
        self.open.working = self.open.working.with_attr(key, json.loads(json.dumps(value)))
        self.open.touched = True

    @precondition(lambda self: self.open is not None)
    @rule()
    def discard_changes(self) -> None:
        assert self.open is not None
        self.open.session.discard_changes()
        self.open.working = self.model.snapshots[self.open.base].data
        self.open.touched = False
        assert not self.open.session.has_uncommitted_changes

    # -- commit, amend, flush -------------------------------------------------------------------

    @precondition(lambda self: self.open is not None)
    @rule(message=messages, metadata=commit_metadata, allow_empty=st.booleans())
    def commit(self, message: str, metadata: dict[str, Any] | None, allow_empty: bool) -> None:
        assert self.open is not None
        s = self.open
        tip = self.model.branches.get(s.branch)
        before = datetime.now(UTC)
        changed = self.has_changes(s)
        if not changed and not allow_empty:
            with pytest.raises(icechunk.SessionStateError) as info:
                s.session.commit(message, metadata)
            assert info.value.kind == ErrorKind.NO_CHANGES_TO_COMMIT
            return
        if tip is None:  # the branch was deleted under the session
            with pytest.raises(icechunk.IcechunkError):
                s.session.commit(message, metadata, allow_empty=allow_empty)
            assert s.branch not in self.repo.list_branches()
            return
        if tip != s.base:
            with pytest.raises(icechunk.ConflictError) as conflict:
                s.session.commit(message, metadata, allow_empty=allow_empty)
            assert not isinstance(conflict.value, icechunk.RebaseFailedError)
            assert conflict.value.kind == ErrorKind.COMMIT_CONFLICT
            assert conflict.value.expected_parent == s.base
            assert conflict.value.actual_parent == tip
            assert self.repo.lookup_branch(s.branch) == tip
            assert s.session.has_uncommitted_changes == changed and not s.session.read_only
            return
        snap = s.session.commit(message, metadata, allow_empty=allow_empty)
        self.record(snap, s.base, message, self.expect_metadata(metadata), s.working, before)
        self.model.branches[s.branch] = snap
        self.op("NewCommit", branch=s.branch, new_snap_id=snap)
        self.finish_session(snap)

    @rule(
        branch=st.sampled_from(BRANCHES),
        name=st.sampled_from(ARRAYS),
        values=st.lists(st.integers(-5, 5), min_size=SHAPE, max_size=SHAPE).map(tuple),
        message=messages,
        metadata=commit_metadata,
    )
    def transaction(
        self,
        branch: str,
        name: str,
        values: tuple[int, ...],
        message: str,
        metadata: dict[str, Any] | None,
    ) -> None:
        """A whole commit by another writer (``Repository.transaction``)."""
        tip = self.model.branches.get(branch)
        if tip is None:
            with pytest.raises(icechunk.RefNotFoundError):  # noqa: SIM117
                with self.repo.transaction(branch, message=message):
                    pass
            return
        before = datetime.now(UTC)
        with self.repo.transaction(branch, message=message, metadata=metadata) as store:
            group = zarr.open_group(store, mode="a")
            if name in group:
                del group[name]
            arr = group.create_array(name, shape=(SHAPE,), chunks=(2,), dtype="i4", fill_value=0)
            arr[:] = np.array(values, dtype="i4")
        snap = self.repo.lookup_branch(branch)
        data = self.model.snapshots[tip].data.with_array(name, values)
        self.record(snap, tip, message, self.expect_metadata(metadata), data, before)
        self.model.branches[branch] = snap
        self.op("NewCommit", branch=branch, new_snap_id=snap)

    @precondition(lambda self: self.open is not None)
    @rule(message=messages, metadata=commit_metadata, allow_empty=st.booleans())
    def amend(self, message: str, metadata: dict[str, Any] | None, allow_empty: bool) -> None:
        assert self.open is not None
        s = self.open
        tip = self.model.branches.get(s.branch)
        before = datetime.now(UTC)
        base_parent = self.model.snapshots[s.base].parent
        refused = (
            not self.v2
            or (not self.has_changes(s) and not allow_empty)
            or base_parent is None
            or tip is None
        )
        if refused:
            with pytest.raises(icechunk.IcechunkError) as info:
                s.session.amend(message, metadata=metadata, allow_empty=allow_empty)
            if not self.v2 or base_parent is None:
                assert isinstance(info.value, icechunk.SessionStateError)
            assert self.model.branches.get(s.branch) == tip
            assert not s.session.read_only
            return
        if tip != s.base:
            with pytest.raises(icechunk.ConflictError) as conflict:
                s.session.amend(message, metadata=metadata, allow_empty=allow_empty)
            assert conflict.value.expected_parent == s.base
            assert conflict.value.actual_parent == tip
            return
        snap = s.session.amend(message, metadata=metadata, allow_empty=allow_empty)
        self.record(
            snap,
            base_parent,
            message,
            self.expect_metadata(metadata),
            s.working,
            before,
            amended=True,
        )
        self.model.branches[s.branch] = snap
        self.op("CommitAmended", branch=s.branch, previous_snap_id=s.base, new_snap_id=snap)
        self.finish_session(snap)

    @precondition(lambda self: self.open is not None and self.open.session.has_uncommitted_changes)
    @rule(message=messages, metadata=commit_metadata)
    def flush(self, message: str, metadata: dict[str, Any] | None) -> None:
        assert self.open is not None
        s = self.open
        before = datetime.now(UTC)
        snap = s.session.flush(message, metadata=metadata)
        self.record(snap, s.base, message, self.expect_metadata(metadata), s.working, before)
        if self.v2:
            self.op("NewDetachedSnapshot", new_snap_id=snap)
        # no branch moved
        assert self.repo.lookup_branch("main") == self.model.branches["main"]
        self.finish_session(snap)

    # -- branches -------------------------------------------------------------------------------

    @rule(name=st.sampled_from(BRANCHES), data=st.data())
    def create_branch(self, name: str, data: st.DataObject) -> None:
        target = data.draw(st.sampled_from(self.snapshot_ids()))
        if name in self.model.branches:
            with pytest.raises(icechunk.AlreadyExistsError) as info:
                self.repo.create_branch(name, target)
            assert info.value.kind == ErrorKind.BRANCH_ALREADY_EXISTS
            return
        self.repo.create_branch(name, target)
        self.model.branches[name] = target
        self.op("BranchCreated", name=name)

    @rule(name=st.sampled_from(BRANCHES))
    def delete_branch(self, name: str) -> None:
        if name == "main":
            with pytest.raises(icechunk.SessionStateError) as info:
                self.repo.delete_branch(name)
            assert info.value.kind == ErrorKind.CANNOT_DELETE_MAIN
            return
        if name not in self.model.branches:
            with pytest.raises(icechunk.RefNotFoundError):
                self.repo.delete_branch(name)
            return
        self.repo.delete_branch(name)
        previous = self.model.branches.pop(name)
        self.op("BranchDeleted", name=name, previous_snap_id=previous)
        with pytest.raises(icechunk.RefNotFoundError):
            self.repo.lookup_branch(name)

    @rule(
        name=st.sampled_from(BRANCHES),
        cas=st.sampled_from(["none", "right", "wrong"]),
        data=st.data(),
    )
    def reset_branch(self, name: str, cas: str, data: st.DataObject) -> None:
        target = data.draw(st.sampled_from(self.snapshot_ids()))
        tip = self.model.branches.get(name)
        if tip is None:
            with pytest.raises(icechunk.RefNotFoundError):
                self.repo.reset_branch(name, target)
            return
        if cas == "wrong":
            others = [s for s in self.snapshot_ids() if s != tip]
            if not others:
                return
            wrong = data.draw(st.sampled_from(others))
            with pytest.raises(icechunk.ConflictError) as info:
                self.repo.reset_branch(name, target, from_snapshot_id=wrong)
            assert info.value.kind == ErrorKind.BRANCH_UPDATE_CONFLICT
            assert info.value.expected_parent == wrong
            assert info.value.actual_parent == tip
            assert self.repo.lookup_branch(name) == tip
            return
        self.repo.reset_branch(name, target, from_snapshot_id=tip if cas == "right" else None)
        self.model.branches[name] = target
        self.op("BranchReset", name=name, previous_snap_id=tip)

    # -- tags ------------------------------------------------------------------------------------

    @rule(name=st.sampled_from(TAGS), data=st.data())
    def create_tag(self, name: str, data: st.DataObject) -> None:
        target = data.draw(st.sampled_from(self.snapshot_ids()))
        if name in self.model.deleted_tags or name in self.model.tags:
            with pytest.raises(icechunk.AlreadyExistsError) as info:
                self.repo.create_tag(name, target)
            expected = (
                ErrorKind.TAG_PREVIOUSLY_DELETED
                if name in self.model.deleted_tags
                else ErrorKind.TAG_ALREADY_EXISTS
            )
            assert info.value.kind == expected
            return
        self.repo.create_tag(name, target)
        self.model.tags[name] = target
        self.op("TagCreated", name=name)

    @rule(name=st.sampled_from(TAGS))
    def delete_tag(self, name: str) -> None:
        if name not in self.model.tags:
            with pytest.raises(icechunk.RefNotFoundError):
                self.repo.delete_tag(name)
            return
        self.repo.delete_tag(name)
        previous = self.model.tags.pop(name)
        self.model.deleted_tags.add(name)
        self.op("TagDeleted", name=name, previous_snap_id=previous)
        with pytest.raises(icechunk.RefNotFoundError):
            self.repo.lookup_tag(name)

    # -- reading ---------------------------------------------------------------------------------

    def check_session(self, session: icechunk.Session, snap_id: str) -> None:
        assert session.read_only and session.snapshot_id == snap_id
        assert read_data(session) == self.model.snapshots[snap_id].data

    @rule(data=st.data())
    def checkout_snapshot(self, data: st.DataObject) -> None:
        snap = data.draw(st.sampled_from(self.snapshot_ids()))
        self.check_session(self.repo.readonly_session(snapshot_id=snap), snap)

    @rule(data=st.data())
    def checkout_ref(self, data: st.DataObject) -> None:
        kind, name = data.draw(
            st.sampled_from([("branch", b) for b in BRANCHES] + [("tag", t) for t in TAGS])
        )
        refs = self.model.branches if kind == "branch" else self.model.tags
        if name not in refs:
            with pytest.raises(icechunk.RefNotFoundError):
                self.repo.readonly_session(**{kind: name})
            return
        self.check_session(self.repo.readonly_session(**{kind: name}), refs[name])

    @rule(data=st.data(), where=st.sampled_from(["exact", "between", "before-root"]))
    def checkout_as_of(self, data: st.DataObject, where: str) -> None:
        branch = data.draw(st.sampled_from(sorted(self.model.branches)))
        chain = self.model.chain(self.model.branches[branch])
        times = [self.model.snapshots[s].written_at for s in chain]
        if where == "before-root":
            with pytest.raises(icechunk.SnapshotNotFoundError) as info:
                self.repo.readonly_session(branch, as_of=times[-1] - timedelta(microseconds=1))
            assert info.value.kind == ErrorKind.NO_SNAPSHOT_AT_TIME
            return
        i = data.draw(st.integers(0, len(chain) - 1))
        when = times[i]
        if where == "between":
            newer = times[i - 1] if i > 0 else times[i] + timedelta(days=1)
            when = times[i] + (newer - times[i]) / 2  # rounded to whole microseconds
            if when >= newer:
                when = times[i]
        session = self.repo.readonly_session(branch, as_of=when)
        self.check_session(session, chain[i])

    @rule(data=st.data())
    def check_diff(self, data: st.DataObject) -> None:
        branch = data.draw(st.sampled_from(sorted(self.model.branches)))
        chain = self.model.chain(self.model.branches[branch])
        j = data.draw(st.integers(0, len(chain) - 1))
        i = data.draw(st.integers(j, len(chain) - 1))
        new, old = chain[j], chain[i]
        diff = self.repo.diff(from_snapshot_id=old, to_snapshot_id=new)
        if i == j:
            assert diff.is_empty()
            return
        with pytest.raises(icechunk.InvalidInputError) as info:
            self.repo.diff(from_snapshot_id=new, to_snapshot_id=old)
        assert info.value.kind == ErrorKind.BAD_SNAPSHOT_CHAIN_FOR_DIFF
        old_arrays = dict(self.model.snapshots[old].data.arrays)
        new_arrays = dict(self.model.snapshots[new].data.arrays)
        assert {"/" + a for a in new_arrays.keys() - old_arrays.keys()} <= diff.new_arrays
        assert {"/" + a for a in old_arrays.keys() - new_arrays.keys()} <= diff.deleted_arrays
        for name in new_arrays.keys() & old_arrays.keys():
            if new_arrays[name] != old_arrays[name]:
                path = "/" + name
                assert path in diff.updated_chunks or path in diff.new_arrays

    @rule()
    def reopen(self) -> None:
        self.repo = icechunk.Repository.open(self.storage, config=self.config)
        assert self.repo.spec_version == self.spec_version
        self.verified.clear()

    # -- invariants ------------------------------------------------------------------------------

    @invariant()
    def refs_match(self) -> None:
        if not hasattr(self, "repo"):
            return
        assert self.repo.list_branches() == set(self.model.branches)
        assert self.repo.list_tags() == set(self.model.tags)
        for name, snap in self.model.branches.items():
            assert self.repo.lookup_branch(name) == snap
        for name, snap in self.model.tags.items():
            assert self.repo.lookup_tag(name) == snap

    @invariant()
    def ancestry_matches(self) -> None:
        if not hasattr(self, "repo"):
            return
        refs = [{"branch": b} for b in self.model.branches]
        refs += [{"tag": t} for t in self.model.tags]
        for ref in refs:
            start = self.model.branches.get(ref.get("branch", "")) or self.model.tags[ref["tag"]]
            history = list(self.repo.ancestry(**ref))
            assert [h.id for h in history] == self.model.chain(start)
            for h in history:
                expected = self.model.snapshots[h.id]
                assert h.parent_id == expected.parent
                assert h.message == expected.message
                assert h.metadata == expected.metadata
                assert h.written_at == expected.written_at

    @invariant()
    def snapshot_data_matches(self) -> None:
        if not hasattr(self, "repo"):
            return
        for snap in self.model.snapshots.keys() - self.verified:
            self.check_session(self.repo.readonly_session(snapshot_id=snap), snap)
            self.verified.add(snap)

    @invariant()
    def session_state_matches(self) -> None:
        if self.open is not None:
            self.has_changes(self.open)
            assert read_data(self.open.session) == self.open.working

    @invariant()
    def ops_log_matches(self) -> None:
        if not hasattr(self, "repo"):
            return
        if not self.v2:
            with pytest.raises(icechunk.IcechunkError):
                list(self.repo.ops_log())
            return
        log = list(self.repo.ops_log())
        times = [u.updated_at for u in log]
        assert all(a > b for a, b in itertools.pairwise(times)), times
        assert [(u.kind.kind, u.kind.fields) for u in log] == self.model.ops[::-1]


CASES = [
    pytest.param(spec, kind, id=f"spec{spec}-{kind}")
    for spec in (1, 2)
    for kind in ("memory", "local")
]


@pytest.mark.parametrize(("spec_version", "storage_kind"), CASES)
def test_version_control(spec_version: int, storage_kind: str) -> None:
    # a tiny ops-log page size, so spec 2 logs span several `repo` files
    config = icechunk.RepositoryConfig(num_updates_per_repo_info_file=7)
    started = time.perf_counter()
    run_state_machine_as_test(
        lambda: VersionControlMachine(spec_version, storage_kind, config),
        settings=settings(
            max_examples=30 if storage_kind == "memory" else 12,
            stateful_step_count=50,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    assert time.perf_counter() - started < 60


@pytest.mark.parametrize("storage", ["memory", "local"], indirect=True)
@pytest.mark.parametrize("spec_version", [2], indirect=True)
def test_diff_across_an_amend(repo: icechunk.Repository) -> None:
    """An amend replaces the tip: its transaction log must cover the amended commit too.

    Diff (and rebase) read transaction logs, so an amend that records only its own changes
    hides the amended commit's ones (icechunk merges the two logs). Amend is spec 2 only.
    """
    session = repo.writable_session("main")
    zarr.group(store=session.store)
    first = session.commit("root group")
    session = repo.writable_session("main")
    zarr.create_array(session.store, name="a", shape=(SHAPE,), chunks=(2,), dtype="i4")[:] = 1
    session.commit("to be amended")
    session = repo.writable_session("main")
    zarr.open_group(session.store).attrs["amended"] = True
    amended = session.amend("amended")
    diff = repo.diff(from_snapshot_id=first, to_snapshot_id=amended)
    assert diff.new_arrays == {"/a"}
    assert diff.updated_chunks == {"/a": [[0], [1]]}
    assert diff.updated_groups == {"/"}
