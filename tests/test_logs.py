"""Log filter directives (the real Icechunk's ``set_logs_filter`` / ``ICECHUNK_LOG``)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

import icechunk


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    yield
    icechunk.set_logs_filter(None)
    logging.getLogger("icechunk.session").setLevel(logging.NOTSET)


def test_directives_set_levels() -> None:
    icechunk.set_logs_filter("icechunk=debug,warn")
    assert logging.getLogger("icechunk").level == logging.DEBUG
    icechunk.set_logs_filter("error")
    assert logging.getLogger("icechunk").level == logging.ERROR
    icechunk.set_logs_filter("warn,icechunk::session=info")
    assert logging.getLogger("icechunk.session").level == logging.INFO
    icechunk.set_logs_filter("other_crate=trace")  # valid, no effect here
    assert logging.getLogger("icechunk").level == logging.WARNING
    with pytest.raises(ValueError, match="invalid log level 'loud'"):
        icechunk.set_logs_filter("icechunk=loud")


def test_initialize_logs_reads_icechunk_log_and_writes_to_stderr() -> None:
    code = (
        "import logging, icechunk; icechunk.initialize_logs(); "
        "logging.getLogger('icechunk.x').debug('hello-debug'); "
        "logging.getLogger('icechunk.x').info('hello-info'); icechunk.shutdown_telemetry()"
    )
    env = dict(os.environ, ICECHUNK_LOG="icechunk=info")
    out = subprocess.run(
        [sys.executable, "-c", code], check=False, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "hello-info" in out.stderr and "hello-debug" not in out.stderr
    assert out.stdout == ""
