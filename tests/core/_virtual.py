"""A repository with one authorized local-file virtual chunk container, for the virtual tests."""

from __future__ import annotations

from pathlib import Path

import icechunk as ic
from icechunk._core.objects import RepoObjects


def local_container_repo(
    tmp_path: Path, *, authorize: bool = True, spec_version: int = 2
) -> tuple[RepoObjects, Path, str]:
    """``(objects, data directory, container url prefix)``."""
    data = tmp_path / "data"
    data.mkdir(parents=True)
    prefix = f"file://{data}/"
    config = ic.RepositoryConfig.default()
    config.set_virtual_chunk_container(
        ic.VirtualChunkContainer(prefix, ic.local_filesystem_store(str(data)))
    )
    repo = ic.Repository.create(
        ic.in_memory_storage(),
        config=config,
        authorize_virtual_chunk_access={prefix: ic.credentials.LocalFileSystemAccess}
        if authorize
        else None,
        spec_version=spec_version,
    )
    return repo._objects, data, prefix
