"""``ManifestVirtualChunkLocationCompressionConfig`` in effect for commits, seen by ``inspect_manifest``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

import icechunk

N = 40


def _commit(
    tmp_path: Path,
    compression: icechunk.ManifestVirtualChunkLocationCompressionConfig | None,
    spec: int = 2,
) -> tuple[icechunk.Repository, str]:
    data = tmp_path / "data"
    data.mkdir()
    for k in range(4):
        (data / f"part{k}.bin").write_bytes(np.arange(10 * k, 10 * k + 10, dtype="<i4").tobytes())
    prefix = f"file://{data}/"
    config = icechunk.RepositoryConfig.default()
    config.set_virtual_chunk_container(
        icechunk.VirtualChunkContainer(prefix, icechunk.local_filesystem_store(str(data)))
    )
    if compression is not None:
        config.manifest = icechunk.ManifestConfig(virtual_chunk_location_compression=compression)
    repo = icechunk.Repository.create(
        icechunk.local_filesystem_storage(str(tmp_path / "repo")),
        config=config,
        authorize_virtual_chunk_access={prefix: icechunk.credentials.LocalFileSystemAccess},
        spec_version=spec,
    )
    session = repo.writable_session("main")
    root = zarr.group(session.store)
    root.create_array("v", shape=(N,), chunks=(1,), dtype="<i4", compressors=None)
    specs = [
        icechunk.VirtualChunkSpec(
            index=[i], location=f"{prefix}part{i // 10}.bin", offset=4 * (i % 10), length=4
        )
        for i in range(N)
    ]
    assert not session.store.set_virtual_refs("v", specs)
    snapshot = session.commit("virtual")
    return repo, snapshot


def _report(repo: icechunk.Repository, snapshot: str) -> dict[str, object]:
    (info,) = repo.list_manifest_files(snapshot)
    report: dict[str, object] = repo.inspect_manifest(info.id)["compression"]
    return report


def _values(repo: icechunk.Repository) -> list[int]:
    store = repo.readonly_session("main").store
    return zarr.open_array(store, path="v", mode="r")[:].tolist()  # type: ignore[no-any-return]


def test_configured_threshold_compresses_and_reads_back(tmp_path: Path) -> None:
    config = icechunk.ManifestVirtualChunkLocationCompressionConfig(N)
    repo, snapshot = _commit(tmp_path, config)
    report = _report(repo, snapshot)
    assert report["uses_location_compression"] is True
    assert report["num_compressed_refs"] == N
    assert isinstance(report["dictionary_size_bytes"], int)
    assert _values(repo) == list(range(N))


def test_default_threshold_leaves_small_manifests_plain(tmp_path: Path) -> None:
    repo, snapshot = _commit(tmp_path, None)  # default: 1,000 virtual refs
    assert _report(repo, snapshot) == {"uses_location_compression": False, "num_compressed_refs": 0}
    assert _values(repo) == list(range(N))


@pytest.mark.parametrize("spec", [1, 2])
def test_threshold_above_the_count_or_spec_1_stays_plain(tmp_path: Path, spec: int) -> None:
    threshold = N + 1 if spec == 2 else 1
    config = icechunk.ManifestVirtualChunkLocationCompressionConfig(threshold)
    repo, snapshot = _commit(tmp_path, config, spec)
    assert _report(repo, snapshot)["uses_location_compression"] is False
    assert _values(repo) == list(range(N))
