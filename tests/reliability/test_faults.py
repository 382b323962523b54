"""Crash consistency of commits and correctness of reads under injected storage faults."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

import icechunk
from icechunk.errors import StorageError
from icechunk.testing.faults import (
    FaultyStorage,
    InjectedCrash,
    StorageCall,
    key_startswith,
    nth_put,
    put_of_key,
)

SHAPE = (40, 40)
CHUNKS = (20, 20)  # 1.6 kB random chunks: too big to be inlined in the manifest
_RNG = np.random.default_rng(42)
DATA0 = _RNG.integers(0, 2**31 - 1, size=SHAPE, dtype="int32")
DATA1 = _RNG.integers(0, 2**31 - 1, size=SHAPE, dtype="int32")
EXPECTED = {"c0": DATA0, "c1": DATA1}
"""Commit message -> the array's content in that commit."""


def _local(path: Path) -> icechunk.Storage:
    return icechunk.local_filesystem_storage(str(path))


def _make_base(path: Path, spec: int) -> str:
    """A repository whose main holds commit ``c0`` with ``DATA0``; return that snapshot id."""
    repo = icechunk.Repository.create(_local(path), spec_version=spec)
    session = repo.writable_session("main")
    arr = zarr.create_array(session.store, name="a", shape=SHAPE, chunks=CHUNKS, dtype="int32")
    arr[:] = DATA0
    return session.commit("c0")


def _write_and_commit(repo: icechunk.Repository) -> str:
    session = repo.writable_session("main")
    arr = zarr.open_array(session.store, path="a", mode="r+")
    arr[:] = DATA1
    return session.commit("c1")


def _check_repo(path: Path, base_id: str, max_new: int = 1) -> str:
    """Check the repository after a crash; return where main points.

    Main must hold at most ``max_new`` commits ``c1`` on top of ``base_id`` (commit ``c0``), and
    every snapshot in its history must read back exactly what was committed.
    """
    repo = icechunk.Repository.open(_local(path))
    tip = repo.lookup_branch("main")
    history = list(repo.ancestry(branch="main"))
    messages = [s.message for s in history]
    new = len(history) - 2
    assert 0 <= new <= max_new, messages
    assert messages == ["c1"] * new + ["c0", "Repository initialized"]
    assert history[new].id == base_id
    assert history[0].id == tip
    for info in history:
        session = repo.readonly_session(snapshot_id=info.id)
        if info.message in EXPECTED:
            arr = zarr.open_array(session.store, path="a", mode="r")
            np.testing.assert_array_equal(arr[:], EXPECTED[info.message])
    assert repo.list_branches() == {"main"}
    if repo.spec_version == 2:
        # the ops log names the commits main went through, and no other
        log = list(repo.ops_log())
        assert len(log) == new + 2  # repository initialized, c0, then each new commit
    return tip


def _count_puts(base: Path, work: Path) -> list[StorageCall]:
    shutil.copytree(base, work)
    faulty = FaultyStorage(_local(work), seed=0)
    repo = icechunk.Repository.open(faulty)
    before = len(faulty.stats.calls)
    _write_and_commit(repo)
    return [c for c in faulty.stats.calls[before:] if c.op == "put"]


@pytest.mark.reliability(
    category="crash",
    fault=(
        "in-process crash before, then after, each storage put of a commit (chunks, manifest, "
        "transaction log, snapshot, ref or repo object)"
    ),
    outcome=(
        "branch at the old commit (or the new one only when the ref put ran); every commit reads "
        "back; a retried commit succeeds"
    ),
)
@pytest.mark.parametrize("spec", [1, 2])
def test_crash_at_every_commit_step(tmp_path: Path, spec: int) -> None:
    base = tmp_path / "base"
    base_id = _make_base(base, spec)
    puts = _count_puts(base, tmp_path / "dry")
    kinds = {c.key.split("/")[0] for c in puts}
    # chunks, manifest, transaction log, snapshot and the ref (spec 1) or repo object (spec 2)
    assert {"chunks", "manifests", "transactions", "snapshots"} <= kinds
    assert ("refs" if spec == 1 else "repo") in kinds
    # spec 2 also backs up the old repo object; both are the commit's last puts
    assert puts[-1].key == ("repo" if spec == 2 else "refs/branch.main/ref.json")

    crashes = 0
    checked = 0
    outcomes = {"old": 0, "new": 0}
    for after in (False, True):
        for step, expected_call in enumerate(puts):
            work = tmp_path / f"run-{int(after)}-{step}"
            shutil.copytree(base, work)
            faulty = FaultyStorage(
                _local(work), seed=step, crash_at=nth_put(step), crash_after=after
            )
            repo = icechunk.Repository.open(faulty)
            with pytest.raises(InjectedCrash) as info:
                _write_and_commit(repo)
            crashes += faulty.stats.crashes
            # the same sequence of puts as the dry run, up to the crash (chunk puts run
            # concurrently, so compare the kind of object only)
            assert info.value.call.key.split("/")[0] == expected_call.key.split("/")[0]

            tip = _check_repo(work, base_id)
            last = step == len(puts) - 1
            # only the ref update moves the branch: here, when it ran but the crash hid it
            assert (tip != base_id) == (after and last), (after, step, expected_call)
            outcomes["new" if tip != base_id else "old"] += 1
            checked += 1

            # a fresh process retries the same writes and succeeds
            retry_repo = icechunk.Repository.open(_local(work))
            new_id = _write_and_commit(retry_repo)
            assert retry_repo.lookup_branch("main") == new_id
            assert _check_repo(work, base_id, max_new=2) == new_id
            checked += 1
    print(
        f"spec {spec}: {len(puts)} puts per commit, {crashes} crashes injected, "
        f"{checked} commits checked, outcomes {outcomes}"
    )
    assert crashes == 2 * len(puts)


def _check_after_retry(path: Path) -> None:
    repo = icechunk.Repository.open(_local(path))
    arr = zarr.open_array(repo.readonly_session(branch="main").store, path="a", mode="r")
    np.testing.assert_array_equal(arr[:], DATA1)


@pytest.mark.reliability(
    category="crash",
    fault="crash at the put of the branch ref (spec 1) or the repo object (spec 2)",
    outcome="branch unchanged; nothing reaches storage after the crash; a retried commit succeeds",
)
@pytest.mark.parametrize("spec", [1, 2])
def test_crash_at_ref_update(tmp_path: Path, spec: int) -> None:
    """The put of the ref (spec 1) or ``repo`` object (spec 2) itself, by key."""
    base = tmp_path / "base"
    base_id = _make_base(base, spec)
    work = tmp_path / "work"
    shutil.copytree(base, work)
    prefix = "refs/" if spec == 1 else "repo"
    faulty = FaultyStorage(_local(work), seed=1, crash_at=put_of_key(prefix))
    with pytest.raises(InjectedCrash):
        _write_and_commit(icechunk.Repository.open(faulty))
    assert faulty.crashed
    # the wrapper is dead: nothing more reaches the inner storage
    with pytest.raises(InjectedCrash):
        icechunk.Repository.open(faulty)
    assert _check_repo(work, base_id) == base_id
    _write_and_commit(icechunk.Repository.open(_local(work)))
    _check_after_retry(work)


@pytest.mark.reliability(
    category="storage error",
    fault=(
        "permanent errors on chunk, manifest, transaction-log, snapshot or ref/repo keys during a"
        " commit"
    ),
    outcome="StorageError; branch unchanged; a later commit succeeds",
)
@pytest.mark.parametrize("spec", [1, 2])
def test_permanent_errors_during_commit_leave_branch(tmp_path: Path, spec: int) -> None:
    base = tmp_path / "base"
    base_id = _make_base(base, spec)
    ref_prefix = "refs/" if spec == 1 else "repo"
    for prefix in ("chunks/", "manifests/", "transactions/", "snapshots/", ref_prefix):
        work = tmp_path / prefix.strip("/")
        shutil.copytree(base, work)
        faulty = FaultyStorage(_local(work), seed=2)
        repo = icechunk.Repository.open(faulty)
        session = repo.writable_session("main")
        arr = zarr.open_array(session.store, path="a", mode="r+")
        faulty.fail_keys = key_startswith(prefix)  # from now on, these keys are lost
        with pytest.raises(StorageError):
            arr[:] = DATA1
            session.commit("c1")
        assert faulty.stats.permanent_errors > 0
        assert _check_repo(work, base_id) == base_id
        _write_and_commit(icechunk.Repository.open(_local(work)))
        _check_after_retry(work)


@pytest.mark.reliability(
    category="storage error",
    fault="transient errors on 4% of reads (40 seeds)",
    outcome="StorageError or correct data, never wrong data",
)
@pytest.mark.parametrize("spec", [1, 2])
def test_transient_read_errors_never_give_wrong_data(tmp_path: Path, spec: int) -> None:
    path = tmp_path / "repo"
    _make_base(path, spec)
    repo = icechunk.Repository.open(_local(path))
    session = repo.writable_session("main")
    arr = zarr.open_array(session.store, path="a", mode="r+")
    arr[:] = DATA1
    session.commit("c1")

    correct = 0
    errors = 0
    for seed in range(40):
        faulty = FaultyStorage(
            _local(path),
            seed=seed,
            transient_error_rate=0.04,
            transient_ops=("get", "get_with_version", "list", "exists"),
        )
        try:
            frepo = icechunk.Repository.open(faulty)
            for info in frepo.ancestry(branch="main"):
                if info.message not in EXPECTED:
                    continue
                ro = frepo.readonly_session(snapshot_id=info.id)
                got = zarr.open_array(ro.store, path="a", mode="r")[:]
                np.testing.assert_array_equal(got, EXPECTED[info.message])
                region = zarr.open_array(ro.store, path="a", mode="r")[13:29, 12:37]
                np.testing.assert_array_equal(region, EXPECTED[info.message][13:29, 12:37])
                correct += 1
        except StorageError:
            errors += 1
    print(
        f"spec {spec}: {correct} correct reads, {errors} runs ended in StorageError "
        f"(40 seeds, 4% of reads failing)"
    )
    assert errors > 0  # the rate is high enough to matter
    assert correct > 0


_CHILD = """
import sys
import numpy as np
import zarr
import icechunk
from icechunk.testing.faults import CrashMode, FaultyStorage, put_of_key

path, prefix, after = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
faulty = FaultyStorage(
    icechunk.local_filesystem_storage(path),
    seed=0,
    crash_at=put_of_key(prefix),
    crash_after=after,
    crash_mode=CrashMode.EXIT,
    exit_code=99,
)
repo = icechunk.Repository.open(faulty)
session = repo.writable_session("main")
zarr.open_array(session.store, path="a", mode="r+")[:] = np.load(sys.argv[4])
session.commit("c1")
sys.exit(0)  # not reached: the crash exits with 99
"""


@pytest.mark.reliability(
    category="crash",
    fault="writer process exits (os._exit) at the snapshot put, before and after the ref/repo put",
    outcome=(
        "branch at the old commit, or at the new one when the ref put ran; a retried commit "
        "succeeds"
    ),
)
@pytest.mark.parametrize("spec", [1, 2])
def test_crash_by_process_exit(tmp_path: Path, spec: int) -> None:
    """Subprocess mode: the writer really dies (``os._exit``) mid-commit."""
    base = tmp_path / "base"
    base_id = _make_base(base, spec)
    data_file = tmp_path / "data1.npy"
    np.save(data_file, DATA1)
    ref_prefix = "refs/" if spec == 1 else "repo"
    cases = [("snapshots/", False, False), (ref_prefix, False, False), (ref_prefix, True, True)]
    for i, (prefix, after, moves) in enumerate(cases):
        work = tmp_path / f"work-{i}"
        shutil.copytree(base, work)
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(work), prefix, str(int(after)), str(data_file)],
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 99, proc.stderr.decode()[-2000:]
        tip = _check_repo(work, base_id)
        assert (tip != base_id) == moves
        _write_and_commit(icechunk.Repository.open(_local(work)))
        _check_repo(work, base_id, max_new=2)
