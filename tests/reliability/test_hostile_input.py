"""Hostile keys, corrupt files, invalid writes and secrets: fail cleanly, write nothing, leak nothing."""

from __future__ import annotations

import hashlib
import os
import resource
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.core.buffer import default_buffer_prototype

import icechunk
from icechunk._sync import sync
from icechunk.cache import default_cache
from icechunk.errors import (
    FormatError,
    IcechunkError,
    InvalidInputError,
    RepositoryNotFoundError,
    StorageError,
)
from icechunk.testing.storage import INVALID_KEYS

SHAPE = (16, 16)
CHUNKS = (8, 8)
DATA = np.random.default_rng(7).integers(0, 2**31 - 1, size=SHAPE, dtype="int32")

HOSTILE_ZARR_KEYS = [
    "../zarr.json",
    "../../outside/zarr.json",
    "a/../../../outside/zarr.json",
    "/zarr.json",
    "/etc/passwd",
    "//outside/zarr.json",
    "a\\..\\..\\outside\\zarr.json",
    "..\\zarr.json",
    "a/c/0\\..\\..",
    "a/c/0/0\x00",
    "\x00",
    "a/c/../../..",
    "a/c/0/../../../outside",
    "a\x00/zarr.json",  # NUL inside a node name
    "\ud800/zarr.json",  # a lone surrogate: not encodable, so not storable
    "g/\x1b[31m/zarr.json",  # control characters
]
"""Store keys that must be refused outright (``InvalidInputError`` on write)."""

ODD_UNICODE_KEYS = [
    "\u202eg/zarr.json",  # right-to-left override
    "\uff0e\uff0e/zarr.json",  # fullwidth dots
    "\u2024\u2024/zarr.json",  # one-dot leaders
    "%2e%2e/zarr.json",
    "a\u200b/zarr.json",  # zero-width space
    "e\u0301/zarr.json",  # combining accent
    "a/c/\u0661/0",  # arabic-indic digit one
    "a/c/\uff10/0",  # fullwidth zero
]
"""Odd but not path-like keys: refused with ``InvalidInputError`` or kept inside the repository."""

GROUP_META = b'{"zarr_format": 3, "node_type": "group", "attributes": {}}'


def _tree_digest(top: Path, skip: Path | None = None) -> dict[str, str]:
    """Every file and directory under ``top`` (except ``skip``) with a digest of its content."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        here = Path(dirpath)
        if skip is not None and (here == skip or skip in here.parents):
            dirnames[:] = []
            continue
        for d in dirnames:
            out[str(here / d)] = "dir"
        for f in filenames:
            p = here / f
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _files(root: Path) -> dict[str, str]:
    """The repository's objects (temporary and lock files excluded) with content digests."""
    return {
        k: v
        for k, v in _tree_digest(root).items()
        if ".icechunk-tmp" not in k and ".icechunk-locks" not in k and v != "dir"
    }


def _make_repo(root: Path, spec: int) -> icechunk.Repository:
    repo = icechunk.Repository.create(
        icechunk.local_filesystem_storage(str(root)), spec_version=spec
    )
    session = repo.writable_session("main")
    arr = zarr.create_array(session.store, name="a", shape=SHAPE, chunks=CHUNKS, dtype="int32")
    arr[:] = DATA
    session.commit("c0")
    return repo


# -- hostile keys ------------------------------------------------------------------------------


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[Path, Path]:
    """``(top, root)``: a repository root inside ``top``, next to sentinel files."""
    top = tmp_path / "top"
    (top / "outside").mkdir(parents=True)
    (top / "outside" / "zarr.json").write_bytes(b"sentinel")
    (top / "zarr.json").write_bytes(b"sentinel")
    (top / "sandbox").mkdir()
    return top, top / "sandbox" / "repo"


@pytest.mark.reliability(
    category="hostile input",
    fault=(
        "zarr keys with `..`, absolute paths, backslashes, NUL, control characters, lone "
        "surrogates, odd Unicode"
    ),
    outcome=(
        "InvalidInputError, or stored inside the repository; nothing outside the root read or "
        "written"
    ),
)
@pytest.mark.parametrize("spec", [1, 2])
def test_hostile_zarr_keys_stay_inside_root(sandbox: tuple[Path, Path], spec: int) -> None:
    top, root = sandbox
    repo = _make_repo(root, spec)
    outside_before = _tree_digest(top, skip=root)
    session = repo.writable_session("main")
    store = session.store
    buf = default_buffer_prototype().buffer.from_bytes(GROUP_META)
    proto = default_buffer_prototype()
    for key in HOSTILE_ZARR_KEYS:
        with pytest.raises(InvalidInputError):
            sync(store.set(key, buf))
        with pytest.raises(InvalidInputError):
            sync(store.delete(key))
        assert sync(store.get(key, proto)) is None
        assert sync(store.exists(key)) is False
    for key in ODD_UNICODE_KEYS:
        try:
            sync(store.set(key, buf))
        except InvalidInputError:
            pass
        else:
            got = sync(store.get(key, proto))
            assert got is not None and got.to_bytes() == GROUP_META
    try:
        session.commit("odd keys")
    except IcechunkError as e:  # nothing to commit if every odd key was refused
        assert e.kind.value == "no-changes-to-commit"
    assert _tree_digest(top, skip=root) == outside_before
    # the repository still reads back
    reopened = icechunk.Repository.open(icechunk.local_filesystem_storage(str(root)))
    ro = reopened.readonly_session(branch="main")
    np.testing.assert_array_equal(zarr.open_array(ro.store, path="a", mode="r")[:], DATA)


@pytest.mark.reliability(
    category="hostile input",
    fault="storage keys escaping the local repository root",
    outcome="InvalidInputError for put/get/delete/exists; files outside the root untouched",
)
def test_hostile_storage_keys_stay_inside_root(sandbox: tuple[Path, Path]) -> None:
    top, root = sandbox
    storage = icechunk.local_filesystem_storage(str(root))
    sync(storage.put("x", b"inside"))
    before = _tree_digest(top)
    outside = _tree_digest(top, skip=root)
    keys = [*INVALID_KEYS, *HOSTILE_ZARR_KEYS, "../outside/zarr.json", "..", "a/..", "a/.", "./a"]
    for key in keys:
        with pytest.raises(InvalidInputError):
            sync(storage.put(key, b"evil"))
        with pytest.raises(InvalidInputError):
            sync(storage.get(key))
        with pytest.raises(InvalidInputError):
            sync(storage.delete([key]))
        with pytest.raises(InvalidInputError):
            sync(storage.exists(key))
    assert _tree_digest(top) == before
    for key in ODD_UNICODE_KEYS:
        try:
            sync(storage.put(key, b"odd"))
        except (InvalidInputError, StorageError):
            continue
        assert sync(storage.get(key)) == b"odd"
        sync(storage.delete([key]))
    assert _tree_digest(top, skip=root) == outside


# -- corrupt metadata --------------------------------------------------------------------------


def _read_everything(root: Path) -> None:
    default_cache.clear()  # decoded objects are cached process-wide by id
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(root)))
    list(repo.ancestry(branch="main"))
    ro = repo.readonly_session(branch="main")
    arr = zarr.open_array(ro.store, path="a", mode="r")
    np.testing.assert_array_equal(arr[:], DATA)


def _corruptions(other: bytes) -> dict[str, Callable[[bytes], bytes]]:
    rng = np.random.default_rng(3)
    garbage = rng.integers(0, 256, size=4096, dtype="uint8").tobytes()
    return {
        "garbage": lambda _: garbage,
        "empty": lambda _: b"",
        "one-byte": lambda b: b[:1],
        "half": lambda b: b[: len(b) // 2],
        "minus-one": lambda b: b[:-1],
        "other-type": lambda _: other,
        "json": lambda _: b'{"snapshot": "not really"}',
        "zeros-50MB": lambda _: bytes(50 * 1024 * 1024),
    }


def _targets(root: Path, spec: int) -> dict[str, Path]:
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(root)))
    tip = repo.lookup_branch("main")
    manifests = sorted((root / "manifests").iterdir())
    assert len(manifests) == 1
    targets = {
        "snapshot": root / "snapshots" / tip,
        "manifest": manifests[0],
    }
    if spec == 2:
        targets["repo"] = root / "repo"
    else:
        targets["ref"] = root / "refs" / "branch.main" / "ref.json"
    return targets


@pytest.mark.reliability(
    category="corrupt data",
    fault=(
        "snapshot, manifest, ref or repo object replaced by garbage, empty, truncated, another "
        "file type, JSON, 50 MB of zeros"
    ),
    outcome="FormatError (or not-found) within 5 s and 500 MB; never wrong data",
)
@pytest.mark.parametrize("spec", [1, 2])
def test_corrupt_metadata_gives_format_error(tmp_path: Path, spec: int) -> None:
    root = tmp_path / "repo"
    _make_repo(root, spec)
    targets = _targets(root, spec)
    originals = {name: p.read_bytes() for name, p in targets.items()}
    # another file type's bytes: a snapshot gets a manifest, everything else a snapshot
    others = {name: originals["manifest" if name == "snapshot" else "snapshot"] for name in targets}
    worst_time = 0.0
    worst_mem_mb = 0.0
    cases = 0
    failures: list[str] = []
    for name, path in targets.items():
        for kind, corrupt in _corruptions(others[name]).items():
            path.write_bytes(corrupt(originals[name]))
            mem0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            t0 = time.perf_counter()
            try:
                _read_everything(root)
            except (FormatError, RepositoryNotFoundError):
                pass
            except AssertionError:
                failures.append(f"{name}/{kind}: read wrong data without an error")
            except BaseException as e:  # noqa: BLE001 - any other outcome is a finding
                failures.append(f"{name}/{kind}: {type(e).__name__}: {e}"[:300])
            else:
                # tolerable only if the corruption left the meaning intact
                failures.append(f"{name}/{kind}: no error")
            elapsed = time.perf_counter() - t0
            mem_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - mem0) / 1024
            worst_time = max(worst_time, elapsed)
            worst_mem_mb = max(worst_mem_mb, mem_mb)
            assert elapsed < 5, f"{name}/{kind} took {elapsed:.1f}s"
            assert mem_mb < 500, f"{name}/{kind} grew the peak RSS by {mem_mb:.0f} MB"
            cases += 1
        path.write_bytes(originals[name])
    _read_everything(root)  # restored
    print(
        f"spec {spec}: {cases} corruptions, worst {worst_time * 1000:.0f} ms, "
        f"worst peak-RSS growth {worst_mem_mb:.0f} MB"
    )
    assert not failures, "\n".join(failures)


_ICECHUNK_DIR = os.path.dirname(icechunk.__file__)
_ZARR_DIR = os.path.dirname(zarr.__file__)


def _raised_in(exc: BaseException) -> str:
    """Which of icechunk and zarr ran the innermost frame (of either) of the traceback."""
    where = "elsewhere"
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        filename = frame.f_code.co_filename
        if filename.startswith(_ICECHUNK_DIR + os.sep):
            where = "icechunk"
        elif filename.startswith(_ZARR_DIR + os.sep):
            where = "zarr"
    return where


@pytest.mark.reliability(
    category="corrupt data",
    fault="single flipped bytes in snapshot, manifest, ref or repo object",
    outcome=(
        "FormatError, an IcechunkError or zarr's own error, within 5 s; undetected flips counted"
    ),
)
@pytest.mark.parametrize("spec", [1, 2])
def test_bit_flips_fail_cleanly(tmp_path: Path, spec: int) -> None:
    """Single flipped bytes: the format has no checksums, so some flips go undetected.

    What must hold: bounded time and memory, and only ordinary exceptions (an
    :class:`IcechunkError`, or zarr's own error when the flip lands in a node's zarr
    metadata, which is stored opaque, raised inside zarr). Undetected flips are counted and printed.
    """
    root = tmp_path / "repo"
    _make_repo(root, spec)
    targets = _targets(root, spec)
    outcomes: dict[str, int] = {}
    for name, path in targets.items():
        original = path.read_bytes()
        step = max(1, len(original) // 24)
        for pos in range(0, len(original), step):
            path.write_bytes(original[:pos] + bytes([original[pos] ^ 0x55]) + original[pos + 1 :])
            t0 = time.perf_counter()
            try:
                _read_everything(root)
                outcome = "undetected (no effect)"
            except AssertionError:
                outcome = "undetected (wrong data)"
            except (FormatError, RepositoryNotFoundError):
                outcome = "FormatError"
            except IcechunkError as e:
                outcome = type(e).__name__
            except Exception as e:  # noqa: BLE001 - allowed only from zarr parsing user data
                where = _raised_in(e)
                assert where == "zarr", f"{name}@{pos}: {type(e).__name__} from {where}: {e}"
                outcome = "zarr error"
            assert time.perf_counter() - t0 < 5
            outcomes[f"{name}: {outcome}"] = outcomes.get(f"{name}: {outcome}", 0) + 1
        path.write_bytes(original)
    _read_everything(root)
    print(f"spec {spec}: bit flips {dict(sorted(outcomes.items()))}")


@pytest.mark.reliability(
    category="corrupt data",
    fault="repo object (spec 2) or refs (spec 1) deleted",
    outcome="RepositoryNotFoundError or FormatError",
)
@pytest.mark.parametrize("spec", [1, 2])
def test_missing_repo_object(tmp_path: Path, spec: int) -> None:
    root = tmp_path / "repo"
    _make_repo(root, spec)
    if spec == 2:
        (root / "repo").unlink()
    else:
        for p in (root / "refs").rglob("*"):
            if p.is_file():
                p.unlink()
    with pytest.raises((RepositoryNotFoundError, FormatError)):
        _read_everything(root)


# -- invalid writes write nothing ---------------------------------------------------------------


@pytest.mark.reliability(
    category="bad input",
    fault=(
        "chunk keys out of the grid, negative, non-numeric, wrong rank, of a missing array; zero-"
        "length chunks; non-JSON commit metadata"
    ),
    outcome="InvalidInputError; no file written; session unchanged",
)
@pytest.mark.parametrize("spec", [1, 2])
def test_invalid_writes_write_nothing(tmp_path: Path, spec: int) -> None:
    root = tmp_path / "repo"
    repo = _make_repo(root, spec)
    before = _files(root)
    session = repo.writable_session("main")
    store = session.store
    chunk = default_buffer_prototype().buffer.from_bytes(DATA[:8, :8].tobytes())
    empty = default_buffer_prototype().buffer.from_bytes(b"")
    bad_chunk_keys = [
        "a/c/2/0",  # out of bounds (2 x 2 chunks)
        "a/c/0/2",
        "a/c/99999999999999999999/0",
        "a/c/-1/0",
        "a/c/x/0",
        "a/c/0",  # too few dimensions
        "a/c/0/0/0",  # too many
        "a/c/",
        "a/c/0/",
        "nonexistent/c/0/0",
    ]
    for key in bad_chunk_keys:
        with pytest.raises(InvalidInputError):
            sync(store.set(key, chunk))
    with pytest.raises(InvalidInputError):
        sync(store.set("a/c/0/0", empty))
    for bad in ({"x": object()}, {"x": float("nan")}, {"x": {1, 2}}, {1j: 2}, ["not", "dict"]):
        with pytest.raises(InvalidInputError):
            session.commit("bad metadata", metadata=bad)  # type: ignore[arg-type]
    assert _files(root) == before
    assert not session.has_uncommitted_changes
    # the session is still usable and the repository unchanged
    assert icechunk.Repository.open(icechunk.local_filesystem_storage(str(root))).lookup_branch(
        "main"
    ) == repo.lookup_branch("main")


# -- secrets -----------------------------------------------------------------------------------

SECRETS = ("AKIDSECRET123", "SECRETKEY456")


def _s3() -> icechunk.Storage:
    from icechunk.storage.obstore import StorageRetriesSettings, s3_storage

    return s3_storage(
        bucket="b",
        prefix="p",
        endpoint_url="http://127.0.0.1:9",
        access_key_id=SECRETS[0],
        secret_access_key=SECRETS[1],
        allow_http=True,
        network_stream_timeout_seconds=1,
        retries=StorageRetriesSettings(
            max_tries=1, initial_backoff_ms=0, max_backoff_ms=0, retry_timeout_ms=500
        ),
    )


def _no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


@pytest.mark.reliability(
    category="secrets",
    fault="S3 credentials in reprs and in errors of failing reads, writes, opens and creates",
    outcome="no secret in repr, str, traceback or error attributes",
)
def test_credentials_never_leak() -> None:
    pytest.importorskip("obstore")
    storage = _s3()
    _no_secret(repr(storage))
    _no_secret(str(storage))
    t0 = time.perf_counter()
    errors: list[BaseException] = []
    calls: list[Callable[[], object]] = [
        lambda: sync(storage.get("x")),
        lambda: sync(storage.put("x", b"y")),
        lambda: icechunk.Repository.open(storage),
        lambda: icechunk.Repository.create(storage),
    ]
    for call in calls:
        try:
            call()
        except (StorageError, RepositoryNotFoundError) as e:
            errors.append(e)
    assert len(errors) == 4
    for err in errors:
        _no_secret(str(err))
        _no_secret(repr(err))
        _no_secret("".join(traceback.format_exception(err)))
        _no_secret(repr(err.__dict__))
    assert time.perf_counter() - t0 < 20
