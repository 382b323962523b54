"""zarr's stateful store tests (``zarr.testing.stateful``) over ``IcechunkStore``.

* ``ZarrHierarchyStateMachine`` drives groups, arrays, writes, resizes, deletes and listings
  through zarr and compares every listing with a ``MemoryStore`` model. It runs with all of its
  rules; we add one that commits the session and reopens a writable one (what makes an
  Icechunk store different), and one that checks the read-only view a pickled writable store
  becomes.
* ``ZarrStoreStateMachine`` drives raw key/value operations against a ``dict`` model with
  arbitrary keys and bytes. Icechunk only stores zarr v3 keys: ``zarr.json`` documents that are
  valid zarr metadata and chunks of existing arrays inside their grid. The real Icechunk's own
  test suite skips this machine for that reason; here its ``set`` and ``delete`` rules are
  overridden to generate valid Icechunk keys and values and to model Icechunk's hierarchy
  (deleting a node's ``zarr.json`` deletes everything under it). All other rules and every
  invariant run unchanged; ``exists`` and ``get_invalid_zarr_keys`` still use zarr's arbitrary
  keys (those read as missing).
"""

from __future__ import annotations

import json
import pickle
import tempfile
from typing import Any

import hypothesis.strategies as st
import numpy as np
import zarr
from hypothesis import note, settings
from hypothesis.stateful import precondition, rule
from zarr.core.buffer import cpu, default_buffer_prototype
from zarr.core.sync import sync
from zarr.testing.stateful import (
    MAX_BINARY_SIZE,
    SyncStoreWrapper,
    ZarrHierarchyStateMachine,
    ZarrStoreStateMachine,
)

import icechunk
from icechunk import IcechunkStore

PROTO = default_buffer_prototype()


async def _snapshot(store: IcechunkStore) -> dict[str, bytes]:
    """Every key of the store with its bytes."""
    out: dict[str, bytes] = {}
    async for key in store.list():
        value = await store.get(key, PROTO)
        assert value is not None, key
        out[key] = value.to_bytes()
    return out


def snapshot(store: IcechunkStore) -> dict[str, bytes]:
    return sync(_snapshot(store))


def _new_repo(spec_version: int, local_dir: str | None = None) -> icechunk.Repository:
    storage = (
        icechunk.in_memory_storage()
        if local_dir is None
        else icechunk.local_filesystem_storage(local_dir)
    )
    return icechunk.Repository.create(storage, spec_version=spec_version)


# ------------------------------------------------------------------------------------------
# ZarrHierarchyStateMachine
# ------------------------------------------------------------------------------------------


class IcechunkHierarchyStateMachine(ZarrHierarchyStateMachine):
    """In-memory storage, spec 2."""

    spec_version = 2
    local = False

    def __init__(self) -> None:
        self.tmp = tempfile.TemporaryDirectory() if self.local else None
        self.repo = _new_repo(self.spec_version, None if self.tmp is None else self.tmp.name)
        self.session = self.repo.writable_session("main")
        self.commits = 0
        super().__init__(self.session.store)

    def teardown(self) -> None:
        if self.tmp is not None:
            self.tmp.cleanup()

    @rule(read_only_check=st.booleans())
    def commit_and_reopen(self, read_only_check: bool) -> None:
        """Commit, then continue on a new writable session: nothing may change."""
        before = snapshot(self.session.store)
        arrays = {p: zarr.open_array(self.store, path=p, mode="r")[:] for p in self.all_arrays}
        note(f"committing {len(before)} keys")
        self.session.commit(f"commit {self.commits}", allow_empty=True)
        self.commits += 1
        if read_only_check:
            assert snapshot(self.repo.readonly_session("main").store) == before
        self.session = self.repo.writable_session("main")
        self.store = self.session.store
        assert snapshot(self.store) == before
        for path, expected in arrays.items():
            np.testing.assert_array_equal(zarr.open_array(self.store, path=path)[:], expected)

    @rule()
    def pickled_store_is_a_read_only_view(self) -> None:
        view = pickle.loads(pickle.dumps(self.store))
        assert view.session.read_only
        assert snapshot(view) == snapshot(self.session.store)


IcechunkHierarchyStateMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None
)
TestIcechunkHierarchy = IcechunkHierarchyStateMachine.TestCase


class IcechunkHierarchyStateMachineLocalSpec1(IcechunkHierarchyStateMachine):
    """Local filesystem storage, spec 1 (a smaller budget: the other combination)."""

    spec_version = 1
    local = True


IcechunkHierarchyStateMachineLocalSpec1.TestCase.settings = settings(
    max_examples=15, stateful_step_count=20, deadline=None
)
TestIcechunkHierarchyLocalSpec1 = IcechunkHierarchyStateMachineLocalSpec1.TestCase


# ------------------------------------------------------------------------------------------
# ZarrStoreStateMachine
# ------------------------------------------------------------------------------------------

GROUP = "group"
NODES: dict[str, Any] = {
    # path: "group", or (shape, chunk shape) of an array
    "": GROUP,
    "a": GROUP,
    "a/b": ((4, 4), (2, 2)),
    "a/s": ((), ()),  # a scalar array: its only chunk key is "a/s/c"
    "c": ((5,), (2,)),  # an array named "c": chunk keys "c/c/0".."c/c/2"
    "x/y": ((3,), (1,)),  # its parent "x" is never created
}


def meta_key(path: str) -> str:
    return f"{path}/zarr.json" if path else "zarr.json"


def metadata(path: str, version: int) -> bytes:
    spec = NODES[path]
    doc: dict[str, Any] = {"zarr_format": 3, "attributes": {"version": version}}
    if spec == GROUP:
        doc["node_type"] = "group"
    else:
        shape, chunks = spec
        doc.update(
            node_type="array",
            shape=list(shape),
            data_type="uint8",
            chunk_grid={"name": "regular", "configuration": {"chunk_shape": list(chunks)}},
            chunk_key_encoding={"name": "default", "configuration": {"separator": "/"}},
            fill_value=0,
            codecs=[{"name": "bytes"}],
        )
    return json.dumps(doc).encode()


def chunk_keys(path: str) -> list[str]:
    shape, chunks = NODES[path]
    grid = [-(-n // c) for n, c in zip(shape, chunks, strict=True)]
    keys = [()] if not grid else [tuple(int(i) for i in ix) for ix in np.ndindex(*grid)]
    return [f"{path}/c" + "".join(f"/{i}" for i in ix) for ix in keys]


class IcechunkStoreStateMachine(ZarrStoreStateMachine):
    def __init__(self) -> None:
        self.repo = _new_repo(2)
        self.session = self.repo.writable_session("main")
        super().__init__(self.session.store)

    def _arrays(self) -> list[str]:
        return [p for p, spec in NODES.items() if spec != GROUP and meta_key(p) in self.model]

    # Replaces upstream's `set` (arbitrary keys and bytes): a node's zarr.json (valid metadata,
    # new attributes each time), or a non-empty chunk of an existing array inside its grid.
    @rule(data=st.data())
    def set(self, data: st.DataObject) -> None:
        candidates = [meta_key(p) for p in NODES]
        for path in self._arrays():
            candidates += chunk_keys(path)
        key = data.draw(st.sampled_from(sorted(candidates)), label="key")
        if key.endswith("zarr.json"):
            path = key.removesuffix("zarr.json").rstrip("/")
            value = metadata(path, data.draw(st.integers(0, 9), label="version"))
        else:
            value = data.draw(st.binary(min_size=1, max_size=MAX_BINARY_SIZE), label="chunk")
        note(f"(set) Setting {key!r} with {value!r}")
        assert not self.store.read_only
        self.store.set(key, cpu.Buffer.from_bytes(value))
        self.model[key] = cpu.Buffer.from_bytes(value)

    # Replaces upstream's `delete`: deleting a node's zarr.json deletes the node and
    # everything under it (its chunks, its descendants), as in Icechunk.
    @precondition(lambda self: len(self.model.keys()) > 0)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.model.keys())))
        note(f"(delete) Deleting {key=}")
        self.store.delete(key)
        if key == "zarr.json":
            self.model.clear()
        elif key.endswith("/zarr.json"):
            head = key.removesuffix("zarr.json")
            for k in [k for k in self.model if k.startswith(head)]:
                del self.model[k]
        else:
            del self.model[key]

    @rule()
    def commit_and_reopen(self) -> None:
        """Commit, then continue on a new writable session: every key reads the same."""
        inner = self.store.store
        assert isinstance(inner, IcechunkStore)
        before = snapshot(inner)
        self.session.commit("commit", allow_empty=True)
        self.session = self.repo.writable_session("main")
        self.store = SyncStoreWrapper(self.session.store)
        assert snapshot(self.session.store) == before

    @rule()
    def check_list_dir(self) -> None:
        """``list_dir`` agrees with the model at every node and chunk directory."""
        inner = self.store.store
        dirs = {""}
        for key in self.model:
            parts = key.split("/")
            dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
        for d in sorted(dirs):
            head = f"{d}/" if d else ""
            expected = sorted(
                {k[len(head) :].split("/")[0] for k in self.model if k.startswith(head)}
            )
            observed = sorted(sync(_collect(inner.list_dir(d))))
            assert observed == expected, (d, observed, expected)


async def _collect(it: Any) -> list[str]:
    return [x async for x in it]


IcechunkStoreStateMachine.TestCase.settings = settings(
    max_examples=80, stateful_step_count=40, deadline=None
)
TestIcechunkStoreStateMachine = IcechunkStoreStateMachine.TestCase
