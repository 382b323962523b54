"""Write a deterministic icechunk repository through the public API.

Usage: ``write_repo.py PATH --spec {1,2} [--scenario data|refs]``

Runs unchanged under real icechunk 1.1.21 / 2.3.0 and under our implementation.  Every commit
message is unique within a scenario, so tests can match snapshots of repositories written by
different implementations by message.  Prints ``{"snapshots": {message: id}, ...}``.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import zarr
from common import commit, create_repo, emit, library_info, run_async

ROOT_ATTRS = {
    "title": "interop",
    "nested": {"list": [1, 2.5, None, "x", True], "dict": {"deep": {"k": "v"}}, "empty": {}},
    "unicode": "h\u00e9t\u00e9rog\u00e8ne \u2713",
}


class Writer:
    def __init__(self, path: str, spec: int) -> None:
        self.repo = create_repo(path, spec)
        self.snapshots: dict[str, str] = {}

    def session(self, branch: str = "main") -> tuple[Any, zarr.Group]:
        session = self.repo.writable_session(branch)
        return session, zarr.open_group(store=session.store, mode="a")

    def commit(self, session: Any, message: str, metadata: dict[str, Any] | None = None) -> str:
        assert message not in self.snapshots, message
        snap = commit(session, message, metadata)
        self.snapshots[message] = snap
        return snap


# ---------------------------------------------------------------------------------------------
# scenario "data": hierarchy, chunk kinds, overwrites and deletions


def native_values(shape: tuple[int, ...], seed: int) -> np.ndarray:
    # random doubles barely compress, so every 16x16 chunk stays far above the 512 B inline
    # threshold and is stored as a native chunk object
    return np.random.default_rng(seed).standard_normal(shape)


def scenario_data(w: Writer) -> None:
    s, root = w.session()
    root.attrs.update(ROOT_ATTRS)
    grp = root.create_group("grp", attributes={"level": 1, "tags": ["a", "b"]})
    grp.create_group("sub", attributes={"deep": {"nested": {"n": 3, "f": 0.25}}})
    native = grp.create_array("native", shape=(40, 30), chunks=(16, 16), dtype="float64")
    native[:] = native_values((40, 30), seed=1)
    inline = grp.create_array("inline", shape=(12, 12), chunks=(4, 4), dtype="int16")
    inline[:] = np.arange(144, dtype="int16").reshape(12, 12)
    scalar = root.create_array("scalar", shape=(), dtype="float64", fill_value=0.0)
    scalar[()] = 3.5
    sparse = root.create_array("sparse", shape=(20,), chunks=(5,), dtype="int32", fill_value=-1)
    sparse[5:10] = np.arange(5, 10, dtype="int32")
    sparse[15:20] = np.arange(15, 20, dtype="int32")
    named = root.create_array(
        "named",
        shape=(6, 8),
        chunks=(3, 4),
        dtype="float32",
        dimension_names=("y", "x"),
        attributes={"units": "m", "scale": 0.5},
    )
    named[:] = np.arange(48, dtype="float32").reshape(6, 8) / 4
    doomed = root.create_array("doomed_array", shape=(4,), chunks=(2,), dtype="int8")
    doomed[:] = np.array([1, 2, 3, 4], dtype="int8")
    doomed_group = root.create_group("doomed_group", attributes={"doomed": True})
    child = doomed_group.create_array("child", shape=(3,), chunks=(3,), dtype="uint8")
    child[:] = np.array([7, 8, 9], dtype="uint8")
    c1 = w.commit(s, "data: create hierarchy", {"step": 1, "author": "interop"})
    w.repo.create_tag("v1", c1)

    s, root = w.session()
    native = root["grp/native"]
    native[0:16, 0:16] = native_values((16, 16), seed=2)  # overwrite one native chunk
    inline = root["grp/inline"]
    inline[0:4, 0:4] = -np.arange(16, dtype="int16").reshape(4, 4)  # overwrite an inline chunk
    root["sparse"][5:10] = -1  # all fill value: zarr deletes the chunk
    run_async(s.store.delete("grp/native/c/2/1"))  # explicit chunk deletion
    del root["doomed_array"]
    root["grp"].attrs["level"] = 2
    c2 = w.commit(s, "data: overwrite and delete chunks", {"step": 2, "ratio": 0.5})
    w.repo.create_tag("gone", c2)
    w.repo.delete_tag("gone")
    w.repo.create_branch("dev", c2)

    s, root = w.session()
    del root["doomed_group"]
    named = root["named"]
    named.resize((9, 8))
    named[6:9, :] = np.full((3, 8), 99.0, dtype="float32")
    w.commit(s, "data: delete group, grow array", {"step": 3, "list": [None, 1, "two"]})

    s, root = w.session("dev")
    extra = root.create_array("dev_only", shape=(5, 5), chunks=(5, 5), dtype="uint16")
    extra[:] = np.arange(25, dtype="uint16").reshape(5, 5)
    root["grp/native"][16:32, 16:30] = native_values((16, 14), seed=3)
    w.commit(s, "dev: new array, change chunk", {"branch": "dev"})

    s, root = w.session("dev")
    root.attrs["dev"] = {"touched": True}
    w.commit(s, "dev: root attrs", None)


# ---------------------------------------------------------------------------------------------
# scenario "refs": branches, tags, ancestry and commit metadata


def scenario_refs(w: Writer) -> None:
    root_id = w.repo.lookup_branch("main")

    def small_commit(branch: str, name: str, value: int, message: str, metadata: Any) -> str:
        s, root = w.session(branch)
        arr = root.require_array(name, shape=(4,), chunks=(4,), dtype="int32", fill_value=0)
        arr[:] = np.full(4, value, dtype="int32")
        return w.commit(s, message, metadata)

    c1 = small_commit("main", "a", 1, "refs: first", {"author": "interop", "n": 1})
    c2 = small_commit(
        "main",
        "a",
        2,
        "refs: mixed metadata",
        {
            "str": "s",
            "int": -3,
            "big": 2**40,
            "float": 2.5,
            "bool": True,
            "null": None,
            "list": [1, None, "s", 2.5, [False]],
            "nested": {"x": {"y": [True, False], "z": {}}},
        },
    )
    c3 = small_commit("main", "b", 3, "refs: unicode \u00fcn\u00efc\u00f6d\u00e9 \u2713", {})
    small_commit("main", "b", 4, "refs: no metadata", None)

    w.repo.create_branch("dev", c1)
    small_commit("dev", "d", 5, "refs: on dev", {"branch": "dev"})
    w.repo.create_tag("v1", c2)
    w.repo.create_tag("old", c1)
    w.repo.delete_tag("old")
    w.repo.create_branch("tmp", c3)
    w.repo.delete_branch("tmp")
    w.repo.create_branch("at-root", root_id)


SCENARIOS = {"data": scenario_data, "refs": scenario_refs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path")
    parser.add_argument("--spec", type=int, choices=(1, 2), required=True)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="data")
    args = parser.parse_args()
    writer = Writer(args.path, args.spec)
    SCENARIOS[args.scenario](writer)
    emit({"library": library_info(), "snapshots": writer.snapshots})


if __name__ == "__main__":
    main()
