"""Repository features of icechunk 2.x beyond data: persisted config, status, moves, spec upgrade.

Usage (every command prints one JSON document):

* ``api2_features.py config-save PATH --spec N``: create a repository and persist a config with
  scalar, compression, caching, manifest-splitting and virtual-chunk-container settings.
* ``api2_features.py config-fetch PATH``: the persisted config as seen through ``fetch_config``.
* ``api2_features.py status-set PATH``: create a spec-2 repository with one commit, a branch and a
  tag, and set it read-only with a reason.
* ``api2_features.py status-check PATH``: the status, and what every writer does now (error
  class and kind, or ``"ok"``); then sets it online again and checks that a commit works.
* ``api2_features.py flags-set PATH``: create a spec-2 repository and disable ``create_tag`` and
  ``move_node``, enable ``delete_tag`` explicitly.
* ``api2_features.py flags-check PATH``: the flags, and whether the disabled operations are refused.
* ``api2_features.py move-write PATH``: a hierarchy, then a rearrange session that moves a group
  (with descendants) and an array, committed.
* ``api2_features.py move-read PATH``: every node (path, kind, node id, data) on ``main``, and the
  moves of the last commit as ``diff`` and ``status`` report them.
* ``api2_features.py v1-write PATH``: a spec-1 repository with history (branches, tags, a deleted
  tag, a persisted config); works under icechunk 1.x too.
* ``api2_features.py upgrade PATH``: ``upgrade_icechunk_repository`` on it (2.x only).
* ``api2_features.py history PATH``: spec version, refs, ancestry of every ref with the data of
  every snapshot, the ops log kinds (spec 2) and the persisted inline threshold.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import zarr
from common import (
    commit,
    create_repo,
    emit,
    library_info,
    open_repo,
    storage,
    supports_spec_version,
)

import icechunk as ic

# ---------------------------------------------------------------------------------------------
# config


def rich_config() -> Any:
    split = ic.ManifestSplittingConfig.from_dict(
        {ic.ManifestSplitCondition.AnyArray(): {ic.ManifestSplitDimCondition.Axis(0): 2}}
    )
    cfg = ic.RepositoryConfig(
        inline_chunk_threshold_bytes=77,
        get_partial_values_concurrency=3,
        compression=ic.CompressionConfig(level=5),
        max_concurrent_requests=12,
        caching=ic.CachingConfig(num_snapshot_nodes=9, num_chunk_refs=8),
        manifest=ic.ManifestConfig(splitting=split),
    )
    if hasattr(cfg, "num_updates_per_repo_info_file"):  # 2.x only
        cfg.num_updates_per_repo_info_file = 50
    cfg.set_virtual_chunk_container(
        ic.VirtualChunkContainer("file:///data/", ic.local_filesystem_store("/data"))
    )
    return cfg


def config_doc(cfg: Any) -> Any:
    if cfg is None:
        return None
    comp = cfg.compression
    cach = cfg.caching
    man = cfg.manifest
    split = None if man is None or man.splitting is None else man.splitting.to_dict()
    vccs = cfg.virtual_chunk_containers or {}
    return {
        "inline_chunk_threshold_bytes": cfg.inline_chunk_threshold_bytes,
        "get_partial_values_concurrency": cfg.get_partial_values_concurrency,
        "max_concurrent_requests": cfg.max_concurrent_requests,
        "num_updates_per_repo_info_file": getattr(cfg, "num_updates_per_repo_info_file", "missing"),
        "compression_level": None if comp is None else comp.level,
        "caching": None
        if cach is None
        else [cach.num_snapshot_nodes, cach.num_chunk_refs, cach.num_bytes_chunks],
        "split_sizes": None
        if split is None
        else sorted(n for d in split.values() for n in d.values()),
        "virtual_chunk_containers": sorted(
            [prefix, c.url_prefix, c.name, type(c.store).__name__.rsplit("_", 1)[-1]]
            for prefix, c in vccs.items()
        ),
        "previous_file": getattr(cfg, "previous_file", "missing"),
    }


# ---------------------------------------------------------------------------------------------
# status


def attempt(fn: Any) -> str:
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - we report what happened
        return f"{type(e).__name__}:{getattr(e, 'kind', None)}"
    return "ok"


def status_set(path: str) -> dict[str, Any]:
    repo = ic.Repository.create(storage(path), spec_version=2)
    s = repo.writable_session("main")
    zarr.create_array(s.store, name="a", shape=(4,), chunks=(2,), dtype="i4")[:] = 1
    snap = s.commit("c1")
    repo.create_branch("dev", snap)
    repo.create_tag("t0", snap)
    repo.set_status(
        ic.RepoStatus(ic.RepoAvailability.read_only, limited_availability_reason="maintenance")
    )
    return {"snap": snap}


def status_check(path: str) -> dict[str, Any]:
    import datetime as dt

    repo = open_repo(path)
    st = repo.get_status()
    snap = repo.lookup_branch("main")
    now = dt.datetime.now(dt.UTC)
    writers = {
        "writable_session": lambda: repo.writable_session("main"),
        "rearrange_session": lambda: repo.rearrange_session("main"),
        "create_branch": lambda: repo.create_branch("b2", snap),
        "delete_branch": lambda: repo.delete_branch("dev"),
        "reset_branch": lambda: repo.reset_branch("dev", snap),
        "create_tag": lambda: repo.create_tag("t1", snap),
        "delete_tag": lambda: repo.delete_tag("t0"),
        "set_metadata": lambda: repo.set_metadata({"a": 1}),
        "save_config": lambda: repo.save_config(),
        "set_feature_flag": lambda: repo.set_feature_flag("move_node", False),
        "expire_snapshots": lambda: repo.expire_snapshots(now),
        "garbage_collect": lambda: repo.garbage_collect(now),
        "rewrite_manifests": lambda: repo.rewrite_manifests("m", branch="main"),
        "readonly_session": lambda: repo.readonly_session("main"),
    }
    outcome = {name: attempt(fn) for name, fn in writers.items()}
    repo.set_status(ic.RepoStatus(ic.RepoAvailability.online))
    s = repo.writable_session("main")
    zarr.open_array(s.store, path="a")[:] = 2
    after = s.commit("after online")
    return {
        "availability": str(st.availability),
        "reason": st.limited_availability_reason,
        "outcome": outcome,
        "after_online": zarr.open_array(
            repo.readonly_session(snapshot_id=after).store, path="a", mode="r"
        )[:],
        "status_after": str(repo.get_status().availability),
    }


# ---------------------------------------------------------------------------------------------
# feature flags


def flags_set(path: str) -> dict[str, Any]:
    repo = ic.Repository.create(storage(path), spec_version=2)
    s = repo.writable_session("main")
    zarr.create_group(s.store, path="g")
    s.commit("g")
    repo.create_tag("keep", repo.lookup_branch("main"))
    repo.set_feature_flag("create_tag", False)
    repo.set_feature_flag("move_node", False)
    repo.set_feature_flag("delete_tag", True)
    return {}


def flags_check(path: str) -> dict[str, Any]:
    repo = open_repo(path)
    snap = repo.lookup_branch("main")
    # the real icechunk lists flags in no fixed order
    flags = sorted(
        [f.id, f.name, f.default_enabled, f.setting, f.enabled] for f in repo.feature_flags()
    )
    out = {
        "flags": flags,
        "enabled": sorted(f.name for f in repo.enabled_feature_flags()),
        "disabled": sorted(f.name for f in repo.disabled_feature_flags()),
        "create_tag": attempt(lambda: repo.create_tag("t2", snap)),
        "rearrange": attempt(lambda: repo.rearrange_session("main")),
        "delete_tag": attempt(lambda: repo.delete_tag("keep")),
    }
    repo.set_feature_flag("create_tag", None)
    out["create_tag_after_reset"] = attempt(lambda: repo.create_tag("t3", snap))
    return out


# ---------------------------------------------------------------------------------------------
# moves


def move_write(path: str) -> dict[str, Any]:
    repo = ic.Repository.create(storage(path), spec_version=2)
    s = repo.writable_session("main")
    root = zarr.open_group(s.store, mode="a")
    grp = root.create_group("grp", attributes={"k": "grp"})
    grp.create_array("x", shape=(6,), chunks=(2,), dtype="i4")[:] = np.arange(6)
    sub = grp.create_group("sub")
    sub.create_array("y", shape=(2, 3), chunks=(1, 3), dtype="f8")[:] = 0.5
    root.create_group("dest")
    root.create_array("top", shape=(3,), chunks=(3,), dtype="i2")[:] = 7
    before = commit(s, "hierarchy")
    r = repo.rearrange_session("main")
    r.move("/grp", "/dest/moved")
    r.move("/top", "/dest/moved/sub/top2")
    r.move("/dest/moved/x", "/xx")
    moved = commit(r, "moves")
    return {"before": before, "moved": moved}


def move_read(path: str) -> dict[str, Any]:
    repo = open_repo(path)
    anc = list(repo.ancestry(branch="main"))
    moved, before = anc[0].id, anc[1].id
    session = repo.readonly_session("main")
    root = zarr.open_group(session.store, mode="r")
    nodes = {}
    for name, node in sorted(root.members(max_depth=None)):
        entry: dict[str, Any] = {"id": session.get_node_id("/" + name), "attrs": dict(node.attrs)}
        if isinstance(node, zarr.Array):
            entry["data"] = node[:]
        nodes[name] = entry
    old = repo.readonly_session(snapshot_id=before)
    ids_kept = {
        new: session.get_node_id(new) == old.get_node_id(orig)
        for orig, new in [
            ("/grp", "/dest/moved"),
            ("/grp/x", "/xx"),
            ("/top", "/dest/moved/sub/top2"),
        ]
    }
    diff = repo.diff(from_snapshot_id=before, to_snapshot_id=moved)
    return {
        "nodes": nodes,
        "ids_kept": ids_kept,
        "moved_nodes": [list(m) for m in diff.moved_nodes],
        "new_arrays": diff.new_arrays,
        "deleted_arrays": diff.deleted_arrays,
    }


# ---------------------------------------------------------------------------------------------
# spec upgrade


def v1_write(path: str) -> dict[str, Any]:
    cfg = ic.RepositoryConfig(inline_chunk_threshold_bytes=5)
    st = storage(path)
    if supports_spec_version():
        repo = ic.Repository.create(st, config=cfg, spec_version=1)
    else:
        repo = ic.Repository.create(st, config=cfg)
    repo.save_config()
    s = repo.writable_session("main")
    a = zarr.create_array(s.store, name="a", shape=(4,), chunks=(2,), dtype="i4")
    a[:] = [1, 2, 3, 4]
    c1 = commit(s, "c1", {"k": 1})
    repo.create_branch("dev", c1)
    repo.create_tag("t1", c1)
    repo.create_tag("gone", c1)
    repo.delete_tag("gone")
    s = repo.writable_session("dev")
    zarr.open_array(s.store, path="a")[0:2] = 9
    commit(s, "d1")
    s = repo.writable_session("main")
    zarr.open_array(s.store, path="a")[2:4] = 7
    commit(s, "c2")
    return {}


def upgrade(path: str) -> dict[str, Any]:
    repo = open_repo(path)
    dry = ic.upgrade_icechunk_repository(repo, dry_run=True)
    new = ic.upgrade_icechunk_repository(repo, dry_run=False)
    try:
        repo.list_branches()
        old = "usable"
    except RuntimeError:
        old = "invalidated"
    return {"dry_spec": int(dry.spec_version), "spec": int(new.spec_version), "old": old}


def history(path: str) -> dict[str, Any]:
    repo = open_repo(path)
    spec = int(getattr(repo, "spec_version", 1))
    refs = {f"branch/{b}": {"branch": b} for b in repo.list_branches()}
    refs.update({f"tag/{t}": {"tag": t} for t in repo.list_tags()})
    ancestry = {}
    data = {}
    for name, kw in sorted(refs.items()):
        infos = list(repo.ancestry(**kw))
        ancestry[name] = [[i.id, i.message, i.parent_id, i.metadata] for i in infos]
        for i in infos:
            if i.id in data:
                continue
            session = repo.readonly_session(snapshot_id=i.id)
            try:
                data[i.id] = zarr.open_array(session.store, path="a", mode="r")[:]
            except Exception:  # noqa: BLE001 - the root snapshot has no array
                data[i.id] = None
    cfg = ic.Repository.fetch_config(storage(path))
    out: dict[str, Any] = {
        "spec": spec,
        "branches": repo.list_branches(),
        "tags": repo.list_tags(),
        "ancestry": ancestry,
        "data": data,
        "inline": None if cfg is None else cfg.inline_chunk_threshold_bytes,
    }
    if spec == 2:
        out["ops"] = [type(u.kind).__name__ for u in repo.ops_log()]
        out["tag_reuse"] = attempt(lambda: repo.create_tag("gone", repo.lookup_tag("t1")))
    return out


def main() -> None:
    cmd, path = sys.argv[1], sys.argv[2]
    if cmd == "config-save":
        spec = int(sys.argv[sys.argv.index("--spec") + 1])
        repo = create_repo(path, spec)
        repo = repo.reopen(config=rich_config())
        repo.save_config()
        doc: dict[str, Any] = {}
    elif cmd == "config-fetch":
        doc = {"config": config_doc(ic.Repository.fetch_config(storage(path)))}
        doc["opened_inline"] = open_repo(path).config.inline_chunk_threshold_bytes
    elif cmd == "status-set":
        doc = status_set(path)
    elif cmd == "status-check":
        doc = status_check(path)
    elif cmd == "flags-set":
        doc = flags_set(path)
    elif cmd == "flags-check":
        doc = flags_check(path)
    elif cmd == "move-write":
        doc = move_write(path)
    elif cmd == "move-read":
        doc = move_read(path)
    elif cmd == "v1-write":
        doc = v1_write(path)
    elif cmd == "upgrade":
        doc = upgrade(path)
    elif cmd == "history":
        doc = history(path)
    else:
        raise SystemExit(f"unknown command {cmd!r}")
    doc["library"] = library_info()
    emit(doc)


if __name__ == "__main__":
    main()
