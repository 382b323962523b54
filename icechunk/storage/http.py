"""Read-only storage over plain HTTP(S), and storage found by following an HTTP redirect.

:class:`HttpStorage` reads a repository published by any web server (``GET`` with a ``Range``
header; a server that ignores ranges is handled by slicing the full answer). It cannot write,
delete or list: a repository served this way is opened read-only (spec 2 repositories open
from their ``repo`` object without listing). :class:`RedirectStorage` asks ``base_url`` once
per process where the repository lives: the server answers with a 3xx whose ``Location`` is a
storage URL (``s3://``, ``gs://``, ``az://``, ``r2://``, ``tigris://`` or
``http+icechunk://host/path``, the last meaning plain HTTP storage at ``http://host/path``;
``https+icechunk://`` likewise) and every operation is delegated to that storage.

Only the standard library is used (``urllib`` in worker threads), so both work without obstore.
"""

from __future__ import annotations

import asyncio
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from icechunk.errors import ErrorKind, InvalidInputError, ObjectNotFoundError, StorageError
from icechunk.storage._common import check_byte_range, resolve_byte_range, validate_key
from icechunk.storage.base import (
    ByteRange,
    ObjectInfo,
    OffsetRange,
    PutMode,
    RangeRequest,
    Storage,
    SuffixRange,
    VersionInfo,
    WriteMode,
)

__all__ = ["HttpStorage", "RedirectStorage", "parse_http_url"]

_TIMEOUT_S = 60.0
_MAX_REDIRECTS = 10


def parse_http_url(base_url: str, owner: str = "http_storage") -> str:
    """``base_url`` checked to be an absolute URL with a scheme and a host, without a trailing ``/``.

    Raises
    ------
    StorageError
        It is not (the real one's "error parsing URL ... relative URL without a base").
    """
    if not isinstance(base_url, str):
        raise InvalidInputError(
            f"{owner}: base_url must be a str, not {type(base_url).__name__}",
            ErrorKind.INVALID_ARGUMENT,
        )
    parts = urllib.parse.urlsplit(base_url)
    if not parts.scheme or not parts.netloc:
        raise StorageError(
            f'error parsing URL: "{base_url}": relative URL without a base (give an absolute '
            f"URL such as http://host/path/to/repo)"
        )
    return base_url.rstrip("/")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _read_only(url: str) -> StorageError:
    return StorageError(
        f"HTTP storage {url} is read-only: it cannot write, delete or list objects",
        ErrorKind.REPO_READ_ONLY,
    )


class HttpStorage(Storage):
    """A repository published under ``base_url`` by a web server (read-only).

    Parameters
    ----------
    base_url
        The URL of the repository root.
    opts
        Transport options: ``timeout`` (seconds, default 60) and ``allow_http`` are read;
        other keys are accepted and ignored.
    headers
        HTTP headers sent with every request (``{"authorization": "Bearer ..."}``).
    """

    supports_conditional_update = False

    def __init__(
        self,
        base_url: str,
        opts: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._url = parse_http_url(base_url)
        scheme = urllib.parse.urlsplit(self._url).scheme
        if scheme not in ("http", "https"):
            raise StorageError(
                f"http_storage reads http:// and https:// URLs, not {scheme}:// ({base_url})"
            )
        self._opts = {str(k): str(v) for k, v in (opts or {}).items()}
        self._headers = {str(k): str(v) for k, v in (headers or {}).items()}
        try:
            self._timeout = float(self._opts.get("timeout", _TIMEOUT_S))
        except ValueError:
            raise InvalidInputError(
                f"http_storage: opts['timeout'] must be a number of seconds, "
                f"not {self._opts['timeout']!r}",
                ErrorKind.INVALID_ARGUMENT,
            ) from None

    @property
    def url(self) -> str:
        return self._url

    def __repr__(self) -> str:
        return f"HttpStorage({self._url!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (HttpStorage, (self._url, self._opts, self._headers))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HttpStorage) and other._url == self._url

    def __hash__(self) -> int:
        return hash((HttpStorage, self._url))

    def _fetch(self, key: str, range_header: str | None) -> tuple[int, bytes, Mapping[str, str]]:
        url = f"{self._url}/{urllib.parse.quote(key)}"
        request = urllib.request.Request(url, headers=dict(self._headers))
        if range_header:
            request.add_header("Range", range_header)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise ObjectNotFoundError(f"object not found: {key} ({url})") from None
            if exc.code == 416:
                return 416, b"", dict(exc.headers)
            raise StorageError(f"GET {url} failed: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise StorageError(f"GET {url} failed: {reason}") from None

    async def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        validate_key(key)
        check_byte_range(byte_range)
        header: str | None = None
        match byte_range:
            case RangeRequest(start=start, end=end):
                if end <= start:
                    if not await self.exists(key):
                        raise ObjectNotFoundError(f"object not found: {key}")
                    return b""
                header = f"bytes={start}-{end - 1}"
            case OffsetRange(offset=offset):
                header = f"bytes={offset}-"
            case SuffixRange(suffix=suffix):
                if suffix == 0:
                    await self.get(key, RangeRequest(0, 0))
                    return b""
                header = f"bytes=-{suffix}"
        status, body, _ = await asyncio.to_thread(self._fetch, key, header)
        if status == 416:
            return b""
        if status == 200 and byte_range is not None:  # the server ignored the range
            start, end = resolve_byte_range(byte_range, len(body))
            return body[start:end]
        return body

    async def get_with_version(self, key: str) -> tuple[bytes, VersionInfo]:
        validate_key(key)
        _, body, headers = await asyncio.to_thread(self._fetch, key, None)
        etag = headers.get("ETag") or headers.get("Last-Modified") or str(hash(body))
        return body, VersionInfo(etag)

    async def exists(self, key: str) -> bool:
        try:
            await asyncio.to_thread(self._fetch, validate_key(key), "bytes=0-0")
        except ObjectNotFoundError:
            return False
        return True

    async def put(self, key: str, data: bytes, mode: PutMode = WriteMode.OVERWRITE) -> VersionInfo:
        raise _read_only(self._url)

    async def delete(self, keys: Iterable[str]) -> None:
        raise _read_only(self._url)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        if self._url:  # always: the branch only makes this method an async generator
            raise _read_only(self._url)
        yield ObjectInfo(prefix, 0, datetime.now(UTC))

    async def is_empty(self) -> bool:
        return not (await self.exists("repo") or await self.exists("refs/branch.main/ref.json"))


def storage_for_location(location: str) -> Storage:
    """The storage a redirect's ``Location`` names (see the module documentation).

    Raises
    ------
    StorageError
        An unsupported scheme.
    """
    parts = urllib.parse.urlsplit(location)
    scheme = parts.scheme.lower()
    if scheme in ("http+icechunk", "https+icechunk"):
        real = scheme.removesuffix("+icechunk")
        return HttpStorage(urllib.parse.urlunsplit((real, *parts[1:])))
    if scheme in ("s3", "gs", "gcs", "az", "azure", "abfs", "r2", "tigris"):
        from icechunk.storage._url import from_url

        if scheme in ("r2", "tigris"):
            from icechunk.storage._factories_s3 import new_r2, new_tigris

            options = _EnvOptions()
            bucket, prefix = parts.netloc, parts.path.strip("/")
            if scheme == "r2":
                return new_r2(options, bucket, prefix, account_id=_env("R2_ACCOUNT_ID"))
            return new_tigris(options, bucket, prefix, use_weak_consistency=True)
        return from_url(location)
    raise StorageError(
        f"Redirect Storage error: the redirect target {location!r} is not a supported storage "
        "URL (s3://, gs://, az://, r2://, tigris://, http+icechunk://, https+icechunk://)"
    )


def _env(name: str) -> str | None:
    import os

    return os.environ.get(name)


class _EnvOptions:
    """``S3Options``-shaped defaults for redirect targets (region and endpoint from ``AWS_*``)."""

    def __init__(self) -> None:
        self.region = _env("AWS_REGION")
        self.endpoint_url = _env("AWS_ENDPOINT_URL")
        self.allow_http = bool(self.endpoint_url and self.endpoint_url.startswith("http://"))
        self.anonymous = False
        self.force_path_style = True
        self.network_stream_timeout_seconds = 60
        self.requester_pays = False


class RedirectStorage(Storage):
    """The storage that ``base_url`` redirects to, resolved on first use in each process.

    Raises (on first use)
    ---------------------
    StorageError
        The server cannot be reached, answers without a redirect, redirects in a loop, or to an
        unsupported scheme.
    """

    def __init__(self, base_url: str) -> None:
        self._url = parse_http_url(base_url, "redirect_storage")
        self._lock = threading.Lock()
        self._target: Storage | None = None

    @property
    def url(self) -> str:
        return self._url

    def __repr__(self) -> str:
        return f"RedirectStorage({self._url!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (RedirectStorage, (self._url,))

    @property
    def supports_conditional_update(self) -> bool:  # type: ignore[override]
        return self._target.supports_conditional_update if self._target is not None else False

    def _resolve(self) -> Storage:
        opener = urllib.request.build_opener(_NoRedirect)
        url = self._url
        for _ in range(_MAX_REDIRECTS):
            scheme = urllib.parse.urlsplit(url).scheme.lower()
            if scheme not in ("http", "https"):
                return storage_for_location(url)
            try:
                with opener.open(urllib.request.Request(url), timeout=_TIMEOUT_S) as response:
                    status = response.status
                    location = response.headers.get("Location")
            except urllib.error.HTTPError as exc:
                status, location = exc.code, exc.headers.get("Location")
            except (urllib.error.URLError, OSError) as exc:
                raise StorageError(
                    f"Redirect Storage error: Request to redirect url ({self._url}) failed, "
                    f"cannot find target Storage instance: {getattr(exc, 'reason', exc)}"
                ) from None
            if not (300 <= status < 400) or not location:
                raise StorageError(
                    f"Redirect Storage error: {url} answered HTTP {status} without a redirect; "
                    "cannot find target Storage instance"
                )
            url = urllib.parse.urljoin(url, location)
        raise StorageError(
            f"Redirect Storage error: more than {_MAX_REDIRECTS} redirects from {self._url}"
        )

    async def _storage(self) -> Storage:
        if self._target is None:
            target = await asyncio.to_thread(self._resolve)
            with self._lock:
                if self._target is None:
                    self._target = target
        return self._target

    async def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        return await (await self._storage()).get(key, byte_range)

    async def get_with_version(self, key: str) -> tuple[bytes, VersionInfo]:
        return await (await self._storage()).get_with_version(key)

    async def exists(self, key: str) -> bool:
        return await (await self._storage()).exists(key)

    async def put(self, key: str, data: bytes, mode: PutMode = WriteMode.OVERWRITE) -> VersionInfo:
        return await (await self._storage()).put(key, data, mode)

    async def delete(self, keys: Iterable[str]) -> None:
        await (await self._storage()).delete(keys)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        async for info in (await self._storage()).list(prefix):
            yield info

    async def is_empty(self) -> bool:
        return await (await self._storage()).is_empty()
