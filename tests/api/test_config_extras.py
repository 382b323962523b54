"""ManifestPreloadCondition/Config, ManifestVirtualChunkLocationCompressionConfig and the
StorageSettings family: call forms, reprs and validation as the real icechunk 2.3.0's (reprs
read off the real one)."""

from __future__ import annotations

import pickle

import pytest

import icechunk as ic

C = ic.ManifestPreloadCondition


def test_preload_condition_variants_and_repr() -> None:
    cond = C.or_conditions([C.path_matches("a.*"), C.name_matches("t"), C.true()]) & C.num_refs(
        None, 10
    )
    assert isinstance(cond, C.And) and isinstance(cond, C)
    assert not isinstance(C.or_conditions([C.true()]), C.And)
    assert repr(C.num_refs(1, None)) == "icechunk.config.ManifestPreloadCondition.num_refs(1, None)"
    assert repr(cond).startswith(
        "icechunk.config.ManifestPreloadCondition.and_conditions([icechunk.config."
        'ManifestPreloadCondition.or_conditions([icechunk.config.ManifestPreloadCondition.path_matches("a.*")'
    )
    assert cond == C.or_conditions([C.path_matches("a.*"), C.name_matches("t"), C.true()]) & (
        C.num_refs(None, 10)
    )
    assert pickle.loads(pickle.dumps(cond)) == cond
    n = C.num_refs(1, 5)
    assert (getattr(n, "from"), n.to) == (1, 5)


@pytest.mark.parametrize(
    ("cond", "path", "refs", "expected"),
    [
        (C.path_matches("^/model/"), "/model/t", 1, True),
        (C.path_matches("^/model/"), "/other/t", 1, False),
        (C.name_matches("^temp"), "/model/temperature", 1, True),
        (C.num_refs(2, 5), "/a", 2, True),
        (C.num_refs(2, 5), "/a", 5, False),
        (C.num_refs(None, None), "/a", 0, True),
        (C.true() & C.false(), "/a", 0, False),
        (C.true() | C.false(), "/a", 0, True),
    ],
)
def test_preload_condition_semantics(
    cond: ic.ManifestPreloadCondition, path: str, refs: int, expected: bool
) -> None:
    assert cond._matches(path, refs) is expected


def test_preload_condition_refuses_bad_regex_and_bounds() -> None:
    with pytest.raises(ic.InvalidInputError, match="regex"):
        C.path_matches("(")
    with pytest.raises(ic.InvalidInputError, match="num_refs"):
        C.num_refs("1", None)  # type: ignore[arg-type]
    with pytest.raises(ic.InvalidInputError, match="ManifestPreloadCondition"):
        C.and_conditions(["x"])  # type: ignore[list-item]


def test_preload_config_repr_equality_and_validation() -> None:
    cfg = ic.ManifestPreloadConfig(max_total_refs=100, preload_if=C.true())
    assert repr(cfg) == (
        "icechunk.config.ManifestPreloadConfig(\n    max_total_refs=100,\n"
        "    preload_if=icechunk.config.ManifestPreloadCondition.true(),\n"
        "    max_arrays_to_scan=None,\n)"
    )
    assert cfg == ic.ManifestPreloadConfig(max_total_refs=100, preload_if=C.true())
    cfg.max_arrays_to_scan = 3
    assert cfg.max_arrays_to_scan == 3
    with pytest.raises(ic.InvalidInputError, match="max_total_refs"):
        ic.ManifestPreloadConfig(max_total_refs=-1)
    with pytest.raises(ic.InvalidInputError, match="preload_if"):
        ic.ManifestPreloadConfig(preload_if="yes")  # type: ignore[arg-type]


def test_location_compression_config() -> None:
    cfg = ic.ManifestVirtualChunkLocationCompressionConfig(5, compression_level=3)
    assert repr(cfg) == (
        "icechunk.config.ManifestVirtualChunkLocationCompressionConfig(\n"
        "    min_num_chunks=5,\n    dictionary_max_training_samples=None,\n"
        "    dictionary_max_size_bytes=None,\n    compression_level=3,\n)"
    )
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    with pytest.raises(TypeError):
        ic.ManifestVirtualChunkLocationCompressionConfig(5, 10)  # type: ignore[misc]
    with pytest.raises(ic.InvalidInputError, match="compression_level"):
        ic.ManifestVirtualChunkLocationCompressionConfig(compression_level=99)
    manifest = ic.ManifestConfig(virtual_chunk_location_compression=cfg)
    assert ic.RepositoryConfig(manifest=manifest).manifest == manifest


def test_storage_settings_repr_and_validation() -> None:
    settings = ic.StorageSettings(
        concurrency=ic.StorageConcurrencySettings(4, 1000),
        timeouts=ic.StorageTimeoutSettings(connect_timeout_ms=100),
        storage_class="STANDARD",
    )
    text = repr(settings)
    assert text.startswith(
        "icechunk.storage.StorageSettings(\n    unsafe_use_conditional_create=None,"
    )
    assert '    storage_class="STANDARD",\n' in text
    assert (
        "    concurrency=icechunk.storage.StorageConcurrencySettings(\n"
        "        max_concurrent_requests_for_object=4,\n"
        "        ideal_concurrent_request_size=1000,\n    ),\n"
    ) in text
    assert pickle.loads(pickle.dumps(settings)) == settings
    with pytest.raises(ic.InvalidInputError, match="concurrency"):
        ic.StorageSettings(concurrency=4)  # type: ignore[arg-type]
    with pytest.raises(ic.InvalidInputError, match="connect_timeout_ms"):
        ic.StorageTimeoutSettings(connect_timeout_ms=0)
    assert repr(ic.ChecksumAlgorithm.Crc32c) == "ChecksumAlgorithm.Crc32c"
    assert ic.CompressionAlgorithm.default() is ic.CompressionAlgorithm.Zstd
    assert ic.CachingConfig.default() == ic.CachingConfig()
