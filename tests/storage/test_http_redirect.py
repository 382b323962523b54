"""http_storage and redirect_storage against real loopback HTTP servers: a repository we wrote
is served read-only by a plain web server, and found through a redirect server."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zarr

import icechunk as ic
from icechunk.errors import StorageError


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve(
    handler: type[http.server.BaseHTTPRequestHandler]
    | functools.partial[http.server.BaseHTTPRequestHandler],
) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def served_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("www")
    repo = ic.Repository.create(ic.local_filesystem_storage(root / "repo"))
    session = repo.writable_session("main")
    group = zarr.group(store=session.store)
    array = group.create_array("temps", shape=(4, 6), chunks=(2, 3), dtype="i4")
    array[:] = np.arange(24, dtype="i4").reshape(4, 6)
    session.commit("first")
    yield from _serve(functools.partial(_Quiet, directory=str(root)))


def _read(storage: ic.Storage) -> np.ndarray:
    repo = ic.Repository.open(storage)
    session = repo.readonly_session(branch="main")
    return np.asarray(zarr.open_array(session.store, path="temps", mode="r")[:])


EXPECTED = np.arange(24, dtype="i4").reshape(4, 6)


def test_http_storage_reads_a_served_repository(served_repo: str) -> None:
    storage = ic.http_storage(f"{served_repo}/repo/", headers={"x-test": "1"})
    assert ic.Repository.exists(storage)
    assert ic.Repository.fetch_spec_version(storage) == 2
    np.testing.assert_array_equal(_read(storage), EXPECTED)
    np.testing.assert_array_equal(_read(ic.Storage.new_http(f"{served_repo}/repo")), EXPECTED)
    assert not ic.Repository.exists(ic.http_storage(f"{served_repo}/missing"))


def test_http_storage_is_read_only(served_repo: str) -> None:
    repo = ic.Repository.open(ic.http_storage(f"{served_repo}/repo"))
    with pytest.raises(StorageError, match="read-only"):
        repo.create_branch("dev", repo.lookup_branch("main"))
    with pytest.raises(StorageError, match="read-only"):
        ic.http_storage(f"{served_repo}/repo").list_objects()


@pytest.mark.parametrize("url", ["not a url", "/just/a/path", "127.0.0.1:80/x"])
def test_http_urls_must_be_absolute(url: str) -> None:
    with pytest.raises(StorageError, match="error parsing URL"):
        ic.http_storage(url)
    with pytest.raises(StorageError, match="error parsing URL"):
        ic.redirect_storage(url)


def _redirector(target: str, status: int = 302) -> type[http.server.BaseHTTPRequestHandler]:
    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/hop":
                self.send_response(307)
                self.send_header("Location", "/final")
            else:
                self.send_response(status)
                if target:
                    self.send_header("Location", target)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Redirect


def test_redirect_storage_follows_to_the_served_repository(served_repo: str) -> None:
    target = served_repo.replace("http://", "http+icechunk://") + "/repo"
    for base in _serve(_redirector(target)):
        np.testing.assert_array_equal(_read(ic.redirect_storage(f"{base}/final")), EXPECTED)
        # Relative redirects are followed until a storage URL comes back.
        np.testing.assert_array_equal(_read(ic.Storage.new_redirect(f"{base}/hop")), EXPECTED)


@pytest.mark.parametrize(
    ("target", "status", "message"),
    [
        ("ftp://elsewhere/repo", 302, "not a supported storage URL"),
        ("", 200, "without a redirect"),
    ],
)
def test_redirect_failures_are_clear(target: str, status: int, message: str) -> None:
    for base in _serve(_redirector(target, status)):
        with pytest.raises(StorageError, match=message):
            ic.Repository.exists(ic.redirect_storage(f"{base}/r"))


def test_redirect_to_a_dead_server_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="cannot find target Storage instance"):
        ic.Repository.exists(ic.redirect_storage("http://127.0.0.1:9/r"))
