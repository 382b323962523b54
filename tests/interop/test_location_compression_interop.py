"""Dictionary-compressed virtual chunk locations across implementations (spec 2).

``scripts/compressed_locations.py`` writes 1,200 virtual refs into twelve local files, with a
``ManifestVirtualChunkLocationCompressionConfig``; both implementations read the result and
report ``inspect_manifest``'s ``compression`` section, which must tell the truth: compressed
when the manifest has at least ``min_num_chunks`` virtual refs, plain otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.interop.conftest import run_script

pytestmark = pytest.mark.interop

N = 1200


def _write(impl: str, tmp_path: Path, *options: str) -> tuple[str, str, dict[str, Any]]:
    repo, data = tmp_path / "repo", tmp_path / "data"
    data.mkdir(parents=True)
    doc = run_script(impl, "compressed_locations.py", "write", str(repo), str(data), *options)
    return str(repo), str(data), doc


def _read(impl: str, repo: str, data: str) -> dict[str, Any]:
    doc = run_script(impl, "compressed_locations.py", "read", repo, data)
    assert doc["values"] == list(range(N))
    assert doc["locations"] == [f"file://{data}/part{k:02d}.bin" for k in range(12)]
    return doc


def _compressed(report: list[dict[str, Any]]) -> None:
    assert len(report) == 1
    assert report[0]["uses_location_compression"] is True
    assert report[0]["num_compressed_refs"] == N
    assert 0 < report[0]["dictionary_size_bytes"] <= 2048


PLAIN = [{"uses_location_compression": False, "num_compressed_refs": 0}]


@pytest.mark.parametrize(
    "options",
    [(), ("--dict-size", "1024", "--level", "9"), ("--min-num-chunks", str(N))],
    ids=["defaults", "dict-1024-level-9", "threshold-equal"],
)
def test_real_icechunk_reads_our_compressed_locations(
    tmp_path: Path, options: tuple[str, ...]
) -> None:
    repo, data, written = _write("ours", tmp_path, *options)
    _compressed(written["compression"])
    real = _read("ic2", repo, data)
    ours = _read("ours", repo, data)
    assert real["compression"] == ours["compression"] == written["compression"]
    if "--dict-size" in options:
        assert written["compression"][0]["dictionary_size_bytes"] <= 1024


def test_below_the_threshold_locations_stay_plain(tmp_path: Path) -> None:
    repo, data, written = _write("ours", tmp_path, "--min-num-chunks", str(N + 1))
    assert written["compression"] == PLAIN
    assert _read("ic2", repo, data)["compression"] == PLAIN


def test_we_report_the_real_icechunks_compressed_locations(tmp_path: Path) -> None:
    repo, data, written = _write("ic2", tmp_path)
    _compressed(written["compression"])
    assert _read("ours", repo, data)["compression"] == written["compression"]
    repo2, data2, plain = _write("ic2", tmp_path / "plain", "--min-num-chunks", str(N + 1))
    assert plain["compression"] == PLAIN
    assert _read("ours", repo2, data2)["compression"] == PLAIN
