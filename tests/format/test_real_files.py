"""Decode every metadata file written by the real Icechunk (1.1.21 and 2.3.0), re-encode it, and
let the real library read the re-encoded repositories.

Repositories are generated once per session by ``real_writer.py`` running under the oracle
virtual environments (``tests/interop/oracle.py``):

* ``ic1-spec1``: icechunk 1.1.21, spec 1;
* ``ic2-spec1``: icechunk 2.3.0 writing a spec-1 repository;
* ``ic2-spec2``: icechunk 2.3.0, spec 2, plus 1200 virtual refs (dictionary-compressed
  locations), a move, repository metadata and a feature flag.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from icechunk.format import (
    decode_manifest,
    decode_ref,
    decode_repo_info,
    decode_snapshot,
    decode_transaction_log,
    encode_manifest,
    encode_ref,
    encode_repo_info,
    encode_snapshot,
    encode_transaction_log,
)
from icechunk.format.ids import INITIAL_SNAPSHOT_ID, encode_id, parse_snapshot_id
from icechunk.format.model import ChunkKind, Manifest, Snapshot
from tests.format.helpers import assert_manifests_equal
from tests.interop.oracle import ensure

pytestmark = pytest.mark.interop

WRITER = Path(__file__).with_name("real_writer.py")
REPOS = {"ic1-spec1": ("ic1", 1), "ic2-spec1": ("ic2", 1), "ic2-spec2": ("ic2", 2)}
NUM_VIRTUAL = 1200


@dataclass(frozen=True)
class RealRepo:
    name: str
    oracle: str
    spec: int
    path: Path
    virtual_dir: Path | None
    summary: dict[str, Any]

    def snapshot_id(self, key: str) -> bytes:
        return parse_snapshot_id(self.summary[key])


def run_oracle(name: str, *args: str, timeout: float = 240) -> Any:
    python = ensure(name).python  # the oracle must be available: CI creates it
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["ICECHUNK_LOG"] = "error"
    proc = subprocess.run(
        [str(python), str(WRITER), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, f"{name} {args} failed:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout)


def virtual_args(repo: RealRepo) -> list[str]:
    return ["--virtual", str(repo.virtual_dir)] if repo.virtual_dir else []


@pytest.fixture(scope="session")
def real_repos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RealRepo]:
    base = tmp_path_factory.mktemp("real-repos")
    out = {}
    for name, (oracle, spec) in REPOS.items():
        path = base / name
        vdir = base / f"{name}-virtual-data" if spec == 2 else None
        args = ["write", str(path), str(spec), *(["--virtual", str(vdir)] if vdir else [])]
        out[name] = RealRepo(name, oracle, spec, path, vdir, run_oracle(oracle, *args))
    return out


@pytest.fixture(params=list(REPOS))
def real_repo(request: pytest.FixtureRequest, real_repos: dict[str, RealRepo]) -> RealRepo:
    return real_repos[request.param]


def files(repo: Path, prefix: str) -> list[Path]:
    folder = repo / prefix
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.exists() else []


def key(repo: Path, p: Path) -> str:
    return str(p.relative_to(repo))


def decode_all(repo: Path) -> dict[str, Any]:
    """Every metadata object of ``repo``, decoded, keyed by object key."""
    out: dict[str, Any] = {}
    for p in files(repo, "snapshots"):
        out[key(repo, p)] = decode_snapshot(p.read_bytes(), key(repo, p))
    for p in files(repo, "manifests"):
        out[key(repo, p)] = decode_manifest(p.read_bytes(), key(repo, p))
    for p in files(repo, "transactions"):
        out[key(repo, p)] = decode_transaction_log(p.read_bytes(), key(repo, p))
    for p in [*files(repo, "overwritten"), repo / "repo"]:
        if p.exists():
            out[key(repo, p)] = decode_repo_info(p.read_bytes(), key(repo, p))
    if (repo / "refs").exists():
        for p in sorted((repo / "refs").rglob("ref.json")):
            out[key(repo, p)] = decode_ref(p.read_bytes(), key(repo, p))
    return out


def snapshot(objects: dict[str, Any], snapshot_id: bytes) -> Snapshot:
    s = objects[f"snapshots/{encode_id(snapshot_id)}"]
    assert isinstance(s, Snapshot)
    return s


def refs_of(objects: dict[str, Any], s: Snapshot, path: str) -> Any:
    node = next(n for n in s.nodes if n.path == path)
    assert node.array is not None
    (mref,) = node.array.manifests
    manifest: Manifest = objects[f"manifests/{encode_id(mref.object_id)}"]
    (array,) = [a for a in manifest.arrays if a.node_id == node.id]
    return array.refs


def test_decodes_every_file(real_repo: RealRepo) -> None:
    repo = real_repo.path
    objects = decode_all(repo)
    spec = real_repo.spec
    first = snapshot(objects, real_repo.snapshot_id("first"))
    second = snapshot(objects, real_repo.snapshot_id("second"))
    initial = snapshot(objects, INITIAL_SNAPSHOT_ID)

    # every binary object says the repository's spec version
    for name, obj in objects.items():
        if name.startswith(("snapshots/", "manifests/", "transactions/")):
            assert obj.spec_version == spec, name

    # snapshots
    assert initial.message == "Repository initialized" and initial.nodes == []
    expected_root = (
        {"__root": True} if real_repo.oracle == "ic1" else {"__icechunk": {"is_root": True}}
    )
    assert initial.metadata == expected_root
    assert first.message == "first commit"
    assert first.metadata == {"author": "probe", "k": [1, 2.5, None]}
    assert second.message == "second commit on dev" and second.metadata == {}
    assert [n.path for n in first.nodes] == ["/", "/a", "/a-b", "/a/b", "/big", "/small"]
    root_meta = json.loads(first.nodes[0].user_data)
    assert root_meta["node_type"] == "group"
    assert root_meta["attributes"] == {"title": "probe", "n": [1, 2]}
    assert json.loads(first.nodes[1].user_data)["attributes"] == {"kind": "group a"}
    big = next(n for n in first.nodes if n.path == "/big")
    assert big.array is not None
    assert big.array.dimension_names == ("y", "x")
    assert [(d.array_length, d.num_chunks) for d in big.array.shape] == [(100, 2), (100, 2)]
    assert json.loads(big.user_data)["chunk_grid"]["configuration"]["chunk_shape"] == [50, 50]
    ab = next(n for n in first.nodes if n.path == "/a/b")
    assert ab.array is not None and [d.num_chunks for d in ab.array.shape] == [2]
    if spec == 1:
        assert first.parent_id == INITIAL_SNAPSHOT_ID
        assert second.parent_id == first.id
        assert [d.chunk_length for d in big.array.shape] == [50, 50]
    else:
        assert first.parent_id is None and second.parent_id is None

    # manifest file infos match the manifest objects exactly
    for s in (o for n, o in objects.items() if n.startswith("snapshots/")):
        listed = {f.id: f for f in s.manifest_files}
        assert [f.id for f in s.manifest_files] == sorted(listed)
        for node in s.nodes:
            for mref in node.array.manifests if node.array else ():
                info = listed[mref.object_id]
                path = repo / f"manifests/{encode_id(info.id)}"
                assert info.size_bytes == path.stat().st_size
                assert info.num_chunk_refs == objects[key(repo, path)].num_chunk_refs

    # chunk refs: native (big), inline (small, a/b), the deleted chunk
    big_first = refs_of(objects, first, "/big")
    assert big_first.coords.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert (big_first.kind == ChunkKind.NATIVE).all()
    assert (big_first.offset == 0).all() and (big_first.length > 512).all()
    for cid in big_first.chunk_id:
        assert (repo / f"chunks/{encode_id(bytes(cid))}").stat().st_size > 512
    big_second = refs_of(objects, second, "/big")
    assert big_second.coords.tolist() == [[0, 1], [1, 0], [1, 1]]
    small = refs_of(objects, first, "/small")
    assert (small.kind == ChunkKind.INLINE).all() and len(small) == 2
    assert all(data is not None and data[:4] == b"\x28\xb5\x2f\xfd" for data in small.inline)

    # transaction logs
    tx_first = objects[f"transactions/{encode_id(first.id)}"]
    ids = {n.path: n.id for n in first.nodes}
    assert tx_first.new_groups == sorted([ids["/"], ids["/a"], ids["/a-b"]])
    assert tx_first.new_arrays == sorted([ids["/big"], ids["/small"], ids["/a/b"]])
    assert tx_first.updated_chunks[ids["/big"]] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    tx_second = objects[f"transactions/{encode_id(second.id)}"]
    assert tx_second.updated_chunks == {ids["/big"]: [(0, 0)]}
    assert (f"transactions/{encode_id(INITIAL_SNAPSHOT_ID)}" in objects) == (spec == 2)

    if spec == 1:
        assert objects["refs/branch.main/ref.json"] == first.id
        assert objects["refs/branch.dev/ref.json"] == second.id
        assert objects["refs/tag.v1/ref.json"] == first.id
        assert (repo / "refs/tag.old/ref.json.deleted").read_bytes() == b""
        assert "repo" not in objects
        return

    # spec 2: repo info, virtual refs, the move
    info = objects["repo"]
    moved = real_repo.snapshot_id("moved")
    virtual = real_repo.snapshot_id("virtual")
    assert not info.has_unknown_fields
    assert {r.name: r.snapshot_id for r in info.branches} == {"main": moved, "dev": second.id}
    assert {r.name: r.snapshot_id for r in info.tags} == {"v1": first.id}
    assert info.deleted_tags == ["old"]
    parents = {s.id: s.parent_id for s in info.snapshots}
    assert parents == {
        INITIAL_SNAPSHOT_ID: None,
        first.id: INITIAL_SNAPSHOT_ID,
        second.id: first.id,
        virtual: first.id,
        moved: virtual,
    }
    assert [s.id for s in info.snapshots] == sorted(parents)
    assert info.metadata == {"team": "probe", "size": 3}
    assert info.enabled_feature_flags == [3]
    assert info.status.availability == 0
    assert info.config  # the persisted config with the virtual chunk container
    kinds = [u.kind for u in info.latest_updates]
    assert kinds == [
        "NewCommit",
        "FeatureFlagChanged",
        "MetadataChanged",
        "NewCommit",
        "NewCommit",
        "TagDeleted",
        "TagCreated",
        "TagCreated",
        "BranchCreated",
        "NewCommit",
        "RepoInitialized",
    ]
    assert info.latest_updates[0].fields == {"branch": "main", "new_snap_id": moved}
    assert info.latest_updates[0].backup_path is None
    assert all(u.backup_path for u in info.latest_updates[1:])
    stamps = [u.updated_at for u in info.latest_updates]
    assert stamps == sorted(stamps, reverse=True)
    tag_deleted = info.latest_updates[5]
    assert tag_deleted.fields == {"name": "old", "previous_snap_id": first.id}

    final = snapshot(objects, moved)
    assert "/moved" in [n.path for n in final.nodes] and "/a-b" not in [n.path for n in final.nodes]
    tx_move = objects[f"transactions/{encode_id(moved)}"]
    ((move),) = tx_move.moved_nodes
    assert (move.from_path, move.to_path, move.is_array) == ("/a-b", "/moved", False)
    assert move.node_id == ids["/a-b"]

    virt = refs_of(objects, final, "/virt")
    assert len(virt) == NUM_VIRTUAL and (virt.kind == ChunkKind.VIRTUAL).all()
    i = np.arange(NUM_VIRTUAL)
    assert virt.coords[:, 0].tolist() == i.tolist()
    assert virt.offset.tolist() == (8 * (i % 100)).tolist()
    assert (virt.length == 8).all()
    vdir = real_repo.virtual_dir
    assert virt.location == [f"file://{vdir}/file{k % 20}.bin" for k in range(NUM_VIRTUAL)]
    # the real writer compressed those locations with a zstd dictionary
    (mref,) = next(n for n in final.nodes if n.path == "/virt").array.manifests  # type: ignore[union-attr]
    raw = (repo / f"manifests/{encode_id(mref.object_id)}").read_bytes()
    from icechunk.format.flatbuf import Buffer
    from tests.format.helpers import payload

    assert Buffer(payload(raw), "m", "manifest").root().blob(2, "location_dictionary")


def test_reencode_round_trip(real_repo: RealRepo) -> None:
    """Decoding our encoding of every decoded record gives the same record back."""
    for name, obj in decode_all(real_repo.path).items():
        if name.startswith("snapshots/"):
            assert decode_snapshot(encode_snapshot(obj, obj.spec_version), name) == obj
        elif name.startswith("manifests/"):
            again = decode_manifest(encode_manifest(obj, obj.spec_version), name)
            assert_manifests_equal(again, obj)
        elif name.startswith("transactions/"):
            tx = encode_transaction_log(obj, obj.spec_version)
            assert decode_transaction_log(tx, name) == obj
        elif name.startswith("refs/"):
            assert decode_ref(encode_ref(obj), name) == obj
        else:
            assert decode_repo_info(encode_repo_info(obj), name) == obj


def reencode_repo(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` with every metadata object rewritten by our encoders."""
    shutil.copytree(src, dst)
    sizes = {}
    for p in files(dst, "manifests"):
        m = decode_manifest(p.read_bytes(), p.name)
        data = encode_manifest(m, m.spec_version)
        p.write_bytes(data)
        sizes[m.id] = len(data)
    for p in files(dst, "snapshots"):
        s = decode_snapshot(p.read_bytes(), p.name)
        s.manifest_files = [
            dataclasses.replace(f, size_bytes=sizes[f.id]) for f in s.manifest_files
        ]
        p.write_bytes(encode_snapshot(s, s.spec_version))
    for p in files(dst, "transactions"):
        t = decode_transaction_log(p.read_bytes(), p.name)
        p.write_bytes(encode_transaction_log(t, t.spec_version))
    if (dst / "repo").exists():
        info = decode_repo_info((dst / "repo").read_bytes(), "repo")
        (dst / "repo").write_bytes(encode_repo_info(info))
    if (dst / "refs").exists():
        for p in (dst / "refs").rglob("ref.json"):
            p.write_bytes(encode_ref(decode_ref(p.read_bytes(), str(p))))


@pytest.fixture(scope="session")
def reencoded(
    real_repos: dict[str, RealRepo], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("reencoded")
    out = {}
    for name, repo in real_repos.items():
        reencode_repo(repo.path, base / name)
        out[name] = base / name
    return out


READERS = [
    ("ic1-spec1", "ic1"),
    ("ic1-spec1", "ic2"),
    ("ic2-spec1", "ic1"),
    ("ic2-spec1", "ic2"),
    ("ic2-spec2", "ic2"),
]


@pytest.mark.parametrize(("name", "reader"), READERS, ids=[f"{n}-read-by-{r}" for n, r in READERS])
def test_real_library_reads_our_encoding(
    name: str, reader: str, real_repos: dict[str, RealRepo], reencoded: dict[str, Path]
) -> None:
    """The real library sees the same repository (refs, history, data, diffs, ops log) in the
    original and in the copy whose every metadata object we re-encoded."""
    repo = real_repos[name]
    original = run_oracle(reader, "dump", str(repo.path), *virtual_args(repo))
    ours = run_oracle(reader, "dump", str(reencoded[name]), *virtual_args(repo))
    assert ours == original
    assert original["trees"]["main"]["small"]["data"] == [1, 2, 3, 4]
    if name == "ic2-spec2":
        assert original["trees"]["main"]["virt"]["data"][:4] == [0, 101, 202, 303]


@pytest.mark.parametrize("name", list(REPOS))
def test_real_library_extends_our_encoding(
    name: str, real_repos: dict[str, RealRepo], tmp_path: Path
) -> None:
    """The real library commits, branches and tags on top of our objects; we decode the result."""
    repo = real_repos[name]
    copy = tmp_path / "repo"
    reencode_repo(repo.path, copy)
    result = run_oracle(repo.oracle, "extend", str(copy), *virtual_args(repo))
    assert result["data"] == [9, 9, 3, 4]
    objects = decode_all(copy)
    new = snapshot(objects, parse_snapshot_id(result["extended"]))
    assert new.metadata == {"extended": True}
    if repo.spec == 2:
        info = objects["repo"]
        assert {r.name for r in info.tags} == {"v1", "extended"}
        assert info.latest_updates[0].kind == "TagCreated"
    else:
        assert objects["refs/branch.extra/ref.json"] == new.id
