# mypy: ignore-errors
# (runs under the real icechunk, whose API differs from this package's)
"""Write (or dump) Icechunk repositories with the *real* icechunk library.

Run with an oracle interpreter (see ``tests/interop/oracle.py``); works with icechunk 1.1.21 and
2.3.0. Usage::

    python real_writer.py write <repo dir> <spec version> [--virtual <data dir>]
    python real_writer.py dump <repo dir> [--virtual <data dir>]
    python real_writer.py extend <repo dir> [--virtual <data dir>]

``write`` creates a repository exercising every metadata file feature (groups with attributes,
native and inline chunks, a chunk deleted by a later commit, commit metadata, a branch, a tag,
a deleted tag; with ``--virtual`` on 2.x also >= 1000 virtual refs, a move, repo metadata and a
feature flag) and prints a JSON summary. ``dump`` prints a JSON description of a repository as
the real library reads it (refs, ancestry, array data, attributes, diffs) for comparisons;
``extend`` commits, branches and tags on top of an existing repository.
"""

from __future__ import annotations

import json
import os
import sys
import warnings

import numpy as np
import zarr

import icechunk

warnings.simplefilter("ignore")

MAJOR = int(icechunk.__version__.split(".")[0])
NUM_VIRTUAL = 1200


def _config_and_credentials(vdir: str | None):
    if vdir is None:
        return None, None
    prefix = f"file://{vdir}/"
    config = icechunk.RepositoryConfig.default()
    config.set_virtual_chunk_container(
        icechunk.VirtualChunkContainer(prefix, icechunk.local_filesystem_store(vdir))
    )
    access = getattr(getattr(icechunk, "credentials", None), "LocalFileSystemAccess", None)
    return config, icechunk.containers_credentials({prefix: access})


def write(path: str, spec_version: int, vdir: str | None) -> dict:
    storage = icechunk.local_filesystem_storage(path)
    if vdir is not None:
        os.makedirs(vdir, exist_ok=True)
        for f in range(20):
            values = np.arange(f * 100, f * 100 + 100, dtype="<i8")
            with open(os.path.join(vdir, f"file{f}.bin"), "wb") as fh:
                fh.write(values.tobytes())
    config, credentials = _config_and_credentials(vdir)
    kwargs = {"config": config, "authorize_virtual_chunk_access": credentials}
    if MAJOR >= 2:
        kwargs["spec_version"] = spec_version
    elif spec_version != 1:
        raise SystemExit("icechunk 1.x only writes spec 1")
    repo = icechunk.Repository.create(storage, **kwargs)

    session = repo.writable_session("main")
    store = session.store
    root = zarr.create_group(store=store, attributes={"title": "probe", "n": [1, 2]})
    big = root.create_array(
        "big",
        shape=(100, 100),
        chunks=(50, 50),
        dtype="float64",
        dimension_names=("y", "x"),
        fill_value=0.0,
    )
    big[:] = np.random.default_rng(0).random((100, 100)) + 1.0
    small = root.create_array("small", shape=(4,), chunks=(2,), dtype="int16", fill_value=0)
    small[:] = np.array([1, 2, 3, 4], dtype="int16")
    root.create_group("a", attributes={"kind": "group a"})
    ab = root.create_array("a/b", shape=(6,), chunks=(4,), dtype="int32", fill_value=0)
    ab[:] = np.arange(1, 7, dtype="int32")
    root.create_group("a-b")
    first = session.commit("first commit", metadata={"author": "probe", "k": [1, 2.5, None]})

    repo.create_branch("dev", first)
    repo.create_tag("v1", first)
    repo.create_tag("old", first)
    repo.delete_tag("old")

    session = repo.writable_session("dev")
    big = zarr.open_array(session.store, path="big")
    big[0:50, 0:50] = 0.0  # equals the fill value: zarr deletes the chunk
    second = session.commit("second commit on dev")
    summary = {"first": first, "second": second, "version": icechunk.__version__}

    if vdir is not None:
        session = repo.writable_session("main")
        store = session.store
        group = zarr.open_group(store=store)
        group.create_array(
            "virt",
            shape=(NUM_VIRTUAL,),
            chunks=(1,),
            dtype="<i8",
            fill_value=-1,
            compressors=None,
            filters=None,
        )
        specs = [
            icechunk.VirtualChunkSpec(
                index=[i],
                location=f"file://{vdir}/file{i % 20}.bin",
                offset=8 * (i % 100),
                length=8,
            )
            for i in range(NUM_VIRTUAL)
        ]
        failed = store.set_virtual_refs("virt", specs)
        assert not failed, failed
        summary["virtual"] = session.commit("virtual refs")
        repo.set_metadata({"team": "probe", "size": 3})
        repo.set_feature_flag("move_node", True)
        session = repo.rearrange_session("main")
        session.move("/a-b", "/moved")
        summary["moved"] = session.commit("move a-b")
    return summary


def _ancestry(repo, **kw) -> list:
    return [
        [info.id, info.message, info.metadata, str(info.parent_id)] for info in repo.ancestry(**kw)
    ]


def _tree(store) -> dict:
    out = {}
    root = zarr.open_group(store=store, mode="r")
    out["/"] = {"attrs": dict(root.attrs)}
    for name, node in sorted(root.members(max_depth=None)):
        if isinstance(node, zarr.Array):
            out[name] = {
                "attrs": dict(node.attrs),
                "shape": list(node.shape),
                "data": np.asarray(node[...]).tolist(),
            }
        else:
            out[name] = {"attrs": dict(node.attrs)}
    return out


def _diff(repo, a: str, b: str) -> dict:
    d = repo.diff(from_snapshot_id=a, to_snapshot_id=b)
    keys = [
        "new_groups",
        "new_arrays",
        "deleted_groups",
        "deleted_arrays",
        "updated_groups",
        "updated_arrays",
    ]
    out = {k: sorted(getattr(d, k)) for k in keys}
    out["updated_chunks"] = {k: sorted(map(list, v)) for k, v in sorted(d.updated_chunks.items())}
    return out


def dump(path: str, vdir: str | None) -> dict:
    config, credentials = _config_and_credentials(vdir)
    repo = icechunk.Repository.open(
        icechunk.local_filesystem_storage(path),
        config=config,
        authorize_virtual_chunk_access=credentials,
    )
    out = {
        "branches": sorted(repo.list_branches()),
        "tags": sorted(repo.list_tags()),
        "refs": {b: repo.lookup_branch(b) for b in sorted(repo.list_branches())},
        "ancestry": {b: _ancestry(repo, branch=b) for b in sorted(repo.list_branches())},
        "trees": {
            b: _tree(repo.readonly_session(branch=b).store) for b in sorted(repo.list_branches())
        },
    }
    out["tag_trees"] = {t: _tree(repo.readonly_session(tag=t).store) for t in out["tags"]}
    main = out["ancestry"]["main"]
    dev = out["ancestry"]["dev"]
    out["diffs"] = [_diff(repo, dev[1][0], dev[0][0])]
    if len(main) > 2:
        out["diffs"].append(_diff(repo, main[-2][0], main[0][0]))
    if MAJOR >= 2:
        out["metadata"] = repo.get_metadata() if repo.spec_version == 2 else None
        if repo.spec_version == 2:
            out["ops"] = [str(u.kind) for u in repo.ops_log()]
    return out


def extend(path: str, vdir: str | None) -> dict:
    """Commit on top of an existing repository, branch and tag: the real library must accept
    (and rewrite) whatever refs / repo info it finds."""
    config, credentials = _config_and_credentials(vdir)
    repo = icechunk.Repository.open(
        icechunk.local_filesystem_storage(path),
        config=config,
        authorize_virtual_chunk_access=credentials,
    )
    session = repo.writable_session("main")
    small = zarr.open_array(session.store, path="small")
    small[0:2] = np.array([9, 9], dtype="int16")
    snapshot = session.commit("extended by the real library", metadata={"extended": True})
    repo.create_branch("extra", snapshot)
    repo.create_tag("extended", snapshot)
    return {"extended": snapshot, "data": np.asarray(small[:]).tolist()}


def main() -> None:
    cmd, path = sys.argv[1], sys.argv[2]
    args = sys.argv[3:]
    vdir = None
    if "--virtual" in args:
        at = args.index("--virtual")
        vdir = os.path.abspath(args[at + 1])
        del args[at : at + 2]
    if cmd == "write":
        result = write(path, int(args[0]), vdir)
    elif cmd == "extend":
        result = extend(path, vdir)
    else:
        result = dump(path, vdir)
    print(json.dumps(result, sort_keys=True, default=str))


if __name__ == "__main__":
    main()
