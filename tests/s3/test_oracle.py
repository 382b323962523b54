"""Real icechunk 2.3 and ours share repositories on an S3 server: each reads what the other
wrote (the ``ic2`` oracle runs ``oracle_s3.py`` in its own virtual environment)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from icechunk.storage.obstore import WRITE_ID_METADATA_KEY
from tests.interop.oracle import ensure
from tests.s3 import oracle_s3
from tests.s3._servers import S3Server

pytestmark = [pytest.mark.interop]

SCRIPT = Path(__file__).with_name("oracle_s3.py")


def run_ic2(*args: str) -> Any:
    python = ensure("ic2").python
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "AWS_"))}
    env["ICECHUNK_LOG"] = "error"
    proc = subprocess.run(
        [str(python), str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=str(SCRIPT.parent),
        check=False,
    )
    assert proc.returncode == 0, f"real icechunk failed:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout)


def check_content(dump: dict[str, Any], ids: dict[str, str]) -> None:
    assert dump["branches"] == ["dev", "main"]
    assert dump["tags"] == ["v1"]
    assert [m for _, m in dump["main"]][:2] == ["second", "first"]
    assert [i for i, _ in dump["main"]][:2] == [ids["second"], ids["first"]]
    assert dump["v1"] == dump["dev"] == ids["first"]
    assert dump["main:flags"]["data"] == [9, -1, 1, 1, 1, 1, 1, 1, -1, -1]
    assert dump["v1:flags"]["data"] == [-1, -1, 1, 1, 1, 1, 1, 1, -1, -1]
    assert dump["main:weather/temps"]["attrs"] == {"units": "K"}
    assert dump["main:weather/temps"]["data"][5][7] == 23.5
    assert dump["main:attrs"] == {"writer": "oracle_s3", "n": 1}


@pytest.mark.parametrize("spec", [1, 2], ids=["spec1", "spec2"])
def test_real_icechunk_reads_what_we_wrote(s3_server: S3Server, bucket: str, spec: int) -> None:
    kwargs = s3_server.storage_kwargs(bucket, f"ours/spec{spec}")
    ids = oracle_s3.write(kwargs, spec)
    theirs = run_ic2("read", json.dumps(kwargs))
    check_content(theirs, ids)
    assert theirs == oracle_s3.read(kwargs)  # every detail agrees
    marker = "repo" if spec == 2 else "refs/branch.main/ref.json"
    head = s3_server.client().head_object(Bucket=bucket, Key=f"ours/spec{spec}/{marker}")
    uuid.UUID(head["Metadata"][WRITE_ID_METADATA_KEY])  # the same stamp as real icechunk's


def test_we_read_what_real_icechunk_wrote(s3_server: S3Server, bucket: str) -> None:
    kwargs = s3_server.storage_kwargs(bucket, "ic2/repo")
    ids = run_ic2("write", json.dumps(kwargs))
    ours = oracle_s3.read(kwargs)
    check_content(ours, ids)
    assert ours == run_ic2("read", json.dumps(kwargs))
    # real icechunk stamps its conditional writes with a write id under the key we use
    key = "ic2/repo/repo"
    metadata = s3_server.client().head_object(Bucket=bucket, Key=key)["Metadata"]
    assert WRITE_ID_METADATA_KEY in metadata, metadata
