"""Shared fixtures: storages, repositories in both spec versions, hypothesis profiles."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import icechunk

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=50
)
settings.register_profile(
    "ci",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    max_examples=40,
    derandomize=True,
)
settings.load_profile("ci" if os.environ.get("CI") else "default")

STORAGE_FACTORIES: dict[str, Callable[[Path], icechunk.Storage]] = {
    "memory": lambda _: icechunk.in_memory_storage(),
    "local": lambda p: icechunk.local_filesystem_storage(str(p / "repo")),
}


@pytest.fixture(params=[1, 2], ids=["spec1", "spec2"])
def spec_version(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture(params=list(STORAGE_FACTORIES))
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> icechunk.Storage:
    return STORAGE_FACTORIES[request.param](tmp_path)


@pytest.fixture
def repo(storage: icechunk.Storage, spec_version: int) -> icechunk.Repository:
    return icechunk.Repository.create(storage, spec_version=spec_version)


@pytest.fixture
def local_repo(tmp_path: Path, spec_version: int) -> icechunk.Repository:
    return icechunk.Repository.create(
        icechunk.local_filesystem_storage(str(tmp_path / "repo")), spec_version=spec_version
    )
