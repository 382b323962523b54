"""Repository status, feature flags, attribution and the persisted config (real 2.3.0 behaviour:
every expected message and kind below was observed on the real library)."""

from __future__ import annotations

import datetime as dt
import pickle
from pathlib import Path

import pytest
import zarr

import icechunk as ic
from icechunk.config_codec import (
    config_to_doc,
    decode_flexbuffers,
    decode_yaml,
    encode_flexbuffers,
    encode_yaml,
    load_yaml_doc,
)
from icechunk.errors import FormatError, InvalidInputError, ReadOnlyError, SessionStateError


def _repo(tmp_path: Path, spec: int = 2) -> ic.Repository:
    return ic.Repository.create(ic.local_filesystem_storage(str(tmp_path / "r")), spec_version=spec)


def _commit(repo: ic.Repository) -> str:
    s = repo.writable_session("main")
    zarr.create_array(s.store, name="a", shape=(4,), chunks=(2,), dtype="i4")[:] = 1
    return s.commit("c1")


# -- RepoAvailability / RepoStatus ----------------------------------------------------------------


def test_availability_members_behave_like_the_real_enum() -> None:
    a = ic.RepoAvailability
    assert repr(a.online) == str(a.online) == "RepoAvailability.online"
    assert int(a.read_only) == 1 and a.online == 0 and a.online != a.read_only
    with pytest.raises(TypeError, match="cannot create 'RepoAvailability' instances"):
        a(1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unhashable"):
        hash(a.online)


def test_status_validation_and_repr() -> None:
    at = dt.datetime(2026, 12, 3, 8, 40, 4, 549003, tzinfo=dt.UTC)
    s = ic.RepoStatus(ic.RepoAvailability.read_only, at, "x")
    assert repr(s) == (
        "<icechunk.repository.RepoStatus>\navailability: ReadOnly\n"
        "set_at: datetime.datetime(2026,12,3,8,40,4,549003, tzinfo=datetime.timezone.utc)\n"
        "limited_availability_reason: x\n"
    )
    assert s == ic.RepoStatus(ic.RepoAvailability.read_only, at, "x")
    assert pickle.loads(pickle.dumps(s)) == s
    with pytest.raises(TypeError, match="'int' object is not an instance of 'RepoAvailability'"):
        ic.RepoStatus(1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected a datetime with non-None tzinfo"):
        ic.RepoStatus(ic.RepoAvailability.online, dt.datetime(2020, 1, 1))
    with pytest.raises(ValueError, match=r"expected datetime\.timezone\.utc"):
        ic.RepoStatus(
            ic.RepoAvailability.online,
            dt.datetime(2020, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        )
    with pytest.raises(AttributeError):
        s.limited_availability_reason = "y"  # type: ignore[misc]


def test_read_only_status_is_honoured_by_every_writer(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    snap = _commit(repo)
    repo.create_branch("dev", snap)
    repo.create_tag("t0", snap)
    open_session = repo.writable_session("main")
    zarr.open_array(open_session.store, path="a")[:] = 2
    at = dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC)
    repo.set_status(ic.RepoStatus(ic.RepoAvailability.read_only, at, "maint"))
    status_text = (
        'Repo status is ReadOnly, set at 2026-01-02 03:04:05.000006 UTC, reason: Some("maint")'
    )
    other = ic.Repository.open(repo.storage)  # another handle sees it (it is persisted)
    assert other.get_status() == ic.RepoStatus(ic.RepoAvailability.read_only, at, "maint")
    now = dt.datetime.now(dt.UTC)
    cases = {
        "the repository status is read-only: Cannot create writable session; "
        + status_text: lambda: other.writable_session("main"),
        "the repository status is read-only: Cannot create rearrange session; "
        + status_text: lambda: other.rearrange_session("main"),
        "session error: the repository status is read-only: " + status_text: lambda: (
            open_session.commit("x")
        ),
        "the repository status is read-only: " + status_text: lambda: other.create_branch(
            "b", snap
        ),
        "repository error the repository status is read-only: Cannot expire": lambda: (
            other.expire_snapshots(now)
        ),
        "repository error the repository status is read-only: Cannot garbage collect": lambda: (
            other.garbage_collect(now, dry_run=True)
        ),
        "error rewriting manifests: the repository status is read-only: Cannot create writable session; "
        + status_text: lambda: other.rewrite_manifests("m", branch="main"),
    }
    for message, fn in cases.items():
        with pytest.raises(ReadOnlyError) as info:
            fn()
        assert str(info.value) == message
        assert info.value.kind == "read-only-repository"
    for fn in (
        lambda: other.delete_branch("dev"),
        lambda: other.reset_branch("dev", snap),
        lambda: other.create_tag("t1", snap),
        lambda: other.delete_tag("t0"),
        lambda: other.set_metadata({"a": 1}),
        lambda: other.save_config(),
        lambda: other.set_feature_flag("move_node", False),
        lambda: open_session.flush("f"),
    ):
        with pytest.raises(ReadOnlyError, match="read-only: Repo status is ReadOnly"):
            fn()
    assert other.readonly_session("main").snapshot_id == snap
    other.set_status(ic.RepoStatus(ic.RepoAvailability.online))
    assert open_session.commit("after") != snap
    kinds = [type(u.kind).__name__ for u in repo.ops_log()][:3]
    assert kinds == ["NewCommit", "RepoStatusChanged", "RepoStatusChanged"]


def test_status_and_flags_need_spec_2(tmp_path: Path) -> None:
    repo = _repo(tmp_path, spec=1)
    for fn in (
        repo.get_status,
        repo.feature_flags,
        lambda: repo.rearrange_session("main"),
        lambda: repo.set_status(ic.RepoStatus(ic.RepoAvailability.read_only)),
    ):
        with pytest.raises(
            FormatError, match=r"requires a repository that is at least version 2\.0"
        ) as info:
            fn()
        assert info.value.kind == "unsupported-spec-version"


# -- feature flags ----------------------------------------------------------------------------------


def test_feature_flags_persist_and_are_enforced(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    snap = repo.lookup_branch("main")
    assert [
        (f.id, f.name, f.default_enabled, f.setting, f.enabled) for f in repo.feature_flags()
    ] == [
        (4, "create_tag", True, None, True),
        (5, "delete_tag", True, None, True),
        (3, "move_node", True, None, True),
    ]
    assert repr(repo.feature_flags()[0]) == (
        "<icechunk.config.FeatureFlag>\nid: 4\nname: create_tag\ndefault_enabled: True\nsetting: None\nenabled: True\n"
    )
    with pytest.raises(InvalidInputError, match="invalid feature flag name: nope"):
        repo.set_feature_flag("nope", True)
    with pytest.raises(TypeError, match="'int' object is not an instance of 'bool'"):
        repo.set_feature_flag("move_node", 1)  # type: ignore[arg-type]
    repo.set_feature_flag("create_tag", False)
    repo.set_feature_flag("move_node", False)
    again = ic.Repository.open(repo.storage)
    assert [f.name for f in again.disabled_feature_flags()] == ["create_tag", "move_node"]
    with pytest.raises(
        SessionStateError, match=r"tag creation is disabled by a feature flag \(create_tag\)"
    ) as info:
        again.create_tag("x", snap)
    assert info.value.kind == "feature-flag-disabled"
    with pytest.raises(
        SessionStateError,
        match=r"create rearrange session is disabled by a feature flag \(move_node\)",
    ):
        again.rearrange_session("main")
    again.set_feature_flag("create_tag", None)
    again.create_tag("x", snap)
    again.set_feature_flag("delete_tag", False)
    with pytest.raises(
        SessionStateError, match=r"tag delete is disabled by a feature flag \(delete_tag\)"
    ):
        again.delete_tag("x")
    changes = [
        (u.kind.id, u.kind.new_value)
        for u in again.ops_log()
        if type(u.kind).__name__ == "FeatureFlagChanged"
    ]
    assert changes == [(5, False), (4, None), (3, False), (4, False)]


def test_commit_of_a_rearrange_session_checks_the_flag_at_commit(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    s = repo.writable_session("main")
    zarr.create_group(s.store, path="g")
    s.commit("g")
    r = repo.rearrange_session("main")
    r.move("/g", "/h")
    repo.set_feature_flag("move_node", False)
    with pytest.raises(
        SessionStateError,
        match=r"session error: commit rearrange session is disabled by a feature flag \(move_node\)",
    ):
        r.commit("mv")


# -- attribution ------------------------------------------------------------------------------------


def test_attribution_validation_and_repr() -> None:
    a = ic.Attribution(client="weatherlib/0.9", workload="nightly-ingest", principal="u1")
    assert (
        repr(a)
        == 'icechunk.Attribution(\n    client="weatherlib/0.9",\n    workload="nightly-ingest",\n    principal="u1",\n)'
    )
    assert a == ic.Attribution(client="weatherlib/0.9", workload="nightly-ingest", principal="u1")
    assert ic.Attribution(workload="a b,/~").workload == "a b,/~"
    bad_clients = {
        "a b": '"a b"',
        "a/b/c": '"a/b/c"',
        'a"b': '"a\\"b"',
        "a\tb": '"a\\tb"',
        "/1.0": '"/1.0"',
    }
    for value, shown in bad_clients.items():
        with pytest.raises(
            ValueError, match="must be `name` or `name/version` in token characters, got "
        ) as info:
            ic.Attribution(client=value)
        assert str(info.value).endswith(shown)
    with pytest.raises(ValueError, match="attribution `client` is longer than 128 bytes"):
        ic.Attribution(client="x" * 129)
    with pytest.raises(
        ValueError, match="attribution `workload` contains the forbidden character '\\('"
    ):
        ic.Attribution(workload="a(b")
    with pytest.raises(
        ValueError, match=r"attribution `principal` contains the forbidden character '\\u\{7f\}'"
    ):
        ic.Attribution(principal="a\x7fb")
    with pytest.raises(TypeError):
        ic.Attribution("a")  # type: ignore[misc]


def test_repository_attribution(tmp_path: Path) -> None:
    att = ic.Attribution(client="me/1")
    repo = ic.Repository.create(ic.local_filesystem_storage(str(tmp_path / "r")), attribution=att)
    assert repo.attribution == att
    assert repo.reopen().attribution == att
    assert ic.Repository.open(repo.storage).attribution == ic.Attribution()


# -- persisted config -------------------------------------------------------------------------------


def _rich_config() -> ic.RepositoryConfig:
    split = ic.ManifestSplittingConfig.from_dict(
        {
            ic.ManifestSplitCondition.path_matches("x")
            | ic.ManifestSplitCondition.name_matches("y"): {
                ic.ManifestSplitDimCondition.Axis(1): 3,
                ic.ManifestSplitDimCondition.DimensionName("t.*"): 4,
                ic.ManifestSplitDimCondition.Any(): 5,
            },
            ic.ManifestSplitCondition.AnyArray() & ic.ManifestSplitCondition.name_matches("q"): {
                ic.ManifestSplitDimCondition.Any(): 1
            },
        }
    )
    cfg = ic.RepositoryConfig(
        inline_chunk_threshold_bytes=0,
        compression=ic.CompressionConfig(ic.CompressionAlgorithm.Zstd, 5),
        caching=ic.CachingConfig(1, 2, 3, 4, 5),
        manifest=ic.ManifestConfig(splitting=split),
        num_updates_per_repo_info_file=50,
        max_concurrent_decodes=4,
    )
    cfg.set_virtual_chunk_container(
        ic.VirtualChunkContainer("file:///data/", ic.local_filesystem_store("/data"))
    )
    cfg.set_virtual_chunk_container(
        ic.VirtualChunkContainer(
            "https://h.example/", ic.http_store({"a": "b"}, headers={"h": "v"})
        )
    )
    return cfg


@pytest.mark.parametrize("spec", [1, 2])
def test_save_and_fetch_config(tmp_path: Path, spec: int) -> None:
    storage = ic.local_filesystem_storage(str(tmp_path / "r"))
    repo = ic.Repository.create(storage, spec_version=spec)
    assert ic.Repository.fetch_config(storage) is None
    repo = repo.reopen(config=_rich_config())
    repo.save_config()
    fetched = ic.Repository.fetch_config(storage)
    assert fetched is not None
    assert config_to_doc(fetched) == config_to_doc(_rich_config())
    assert fetched.previous_file is None
    opened = ic.Repository.open(storage, config=ic.RepositoryConfig(inline_chunk_threshold_bytes=9))
    assert opened.config.inline_chunk_threshold_bytes == 9  # given over persisted, this handle only
    assert opened.config.num_updates_per_repo_info_file == 50
    assert ic.Repository.fetch_config(storage).inline_chunk_threshold_bytes == 0  # type: ignore[union-attr]
    if spec == 2:
        assert [type(u.kind).__name__ for u in repo.ops_log()] == [
            "ConfigChanged",
            "RepoInitialized",
        ]


def test_create_with_config_persists_it(tmp_path: Path) -> None:
    storage = ic.local_filesystem_storage(str(tmp_path / "r"))
    repo = ic.Repository.create(storage, config=ic.RepositoryConfig(inline_chunk_threshold_bytes=5))
    # as the real one: persisted with the repository, no ConfigChanged entry
    assert [type(u.kind).__name__ for u in repo.ops_log()] == ["RepoInitialized"]
    assert ic.Repository.open(storage).config.inline_chunk_threshold_bytes == 5


def test_codec_roundtrips_both_encodings() -> None:
    cfg = _rich_config()
    doc = config_to_doc(cfg)
    assert list(doc) == [
        "inline_chunk_threshold_bytes",
        "get_partial_values_concurrency",
        "compression",
        "max_concurrent_requests",
        "max_concurrent_decodes",
        "caching",
        "storage",
        "virtual_chunk_containers",
        "manifest",
        "previous_file",
        "repo_update_retries",
        "num_updates_per_repo_info_file",
    ]
    assert config_to_doc(decode_flexbuffers(encode_flexbuffers(cfg))) == doc
    text = encode_yaml(cfg).decode()
    assert "condition: !Axis 1" in text and "store: !local_file_system" in text
    assert load_yaml_doc(text)["manifest"]["splitting"]["split_sizes"][0][1][0] == {
        "condition": {"Axis": 1},
        "num_chunks": 3,
    }
    assert config_to_doc(decode_yaml(text)) == doc
    with pytest.raises(FormatError, match="invalid persisted repository config"):
        decode_yaml("manifest:\n  splitting:\n    split_sizes:\n    - - !bogus 1\n      - []\n")
