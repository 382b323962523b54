"""Reading virtual chunks: one fetcher per URL scheme, and the checksum checks.

:func:`fetch` resolves a reference's container, refuses containers the repository was not
authorized to read and ``..`` paths that climb out of them, and reads the byte range through
the container's fetcher, built once per repository and container:

* ``file://``: a positional read (in the default thread pool above :data:`INLINE_READ_BYTES`);
* ``s3://``: obstore, through the same :class:`~icechunk.storage.obstore.ObjectStoreStorage`
  the repository storage uses (retries, error translation, secrets kept out of messages);
* ``http(s)://``: obstore's HTTP store, one client per origin.

Checksums are checked on every read, and no bytes are returned when they fail: an ETag must equal
the object's, and the object must not have been modified after the recorded second (requests
also carry ``If-Match`` / ``If-Unmodified-Since``, so servers can refuse early).
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import unquote, urlsplit

from icechunk.errors import (
    ErrorKind,
    InvalidInputError,
    ObjectNotFoundError,
    PreconditionFailedError,
    StorageError,
)
from icechunk.virtual import (
    DOCS,
    INVALID_REF,
    MODIFIED,
    NO_CONTAINER,
    SHORT_OBJECT,
    UNAUTHORIZED,
    ObjectStoreConfig,
    UnauthorizedVirtualChunkContainerError,
    VirtualChunkContainer,
    VirtualChunkModifiedError,
    file_etag,
    find_container,
    repo_containers,
    resolve_location,
)

if TYPE_CHECKING:
    from icechunk._core.change_set import VirtualPayload
    from icechunk.config import RepositoryConfig
    from icechunk.storage import ObjectStoreStorage

__all__ = ["INLINE_READ_BYTES", "fetch"]


def _same_etag(expected: str, actual: str | None) -> bool:
    if actual is None:
        return False
    return expected.strip().strip('"') == actual.strip().strip('"')


class _Fetcher(Protocol):
    async def fetch(self, url: str, start: int, end: int, payload: VirtualPayload) -> bytes: ...


def _modified_error(url: str, what: str) -> VirtualChunkModifiedError:
    return VirtualChunkModifiedError(
        f"the checksum of the object owning the virtual chunk has changed ({url}): {what}; the "
        "object was modified after the virtual reference was written, so its bytes may no "
        "longer be the chunk's. Re-create the reference (with the new checksum) to read it.",
        MODIFIED,
    )


def _check_meta(url: str, payload: VirtualPayload, etag: str | None, mtime_ns: int | None) -> None:
    """Raise :class:`VirtualChunkModifiedError` if the object no longer matches the checksum."""
    if payload.checksum_etag is not None and not _same_etag(payload.checksum_etag, etag):
        raise _modified_error(
            url, f"its ETag is {etag!r}, the reference recorded {payload.checksum_etag!r}"
        )
    seconds = payload.checksum_last_modified
    if seconds and mtime_ns is not None and mtime_ns > seconds * 1_000_000_000:
        when = datetime.fromtimestamp(mtime_ns / 1e9, UTC).isoformat()
        recorded = datetime.fromtimestamp(seconds, UTC).isoformat()
        raise _modified_error(
            url, f"it was last modified at {when}, after the recorded checksum time {recorded}"
        )


def _short_read(url: str, start: int, expected: int, got: int) -> StorageError:
    return StorageError(
        f"error retrieving virtual chunk, not enough data. Expected: ({expected}), available "
        f"({got}), reading {url} from byte {start}",
        SHORT_OBJECT,
    )


INLINE_READ_BYTES = 64 * 1024
"""Local reads up to this size run on the event loop: a worker-thread hop costs more than they do."""


class _LocalFetcher:
    """``file://`` objects: one positional read per request.

    Reads larger than :data:`INLINE_READ_BYTES` run in the default thread pool, so the event
    loop keeps serving other requests while the disk works; small ones (typically served from
    the page cache in microseconds) run inline.
    """

    async def fetch(self, url: str, start: int, end: int, payload: VirtualPayload) -> bytes:
        path = unquote(urlsplit(url).path)

        def read() -> bytes:
            fd = os.open(path, os.O_RDONLY)
            try:
                st = os.fstat(fd)
                _check_meta(url, payload, file_etag(st), st.st_mtime_ns)
                return os.pread(fd, end - start, start) if end > start else b""
            finally:
                os.close(fd)

        try:
            data = read() if end - start <= INLINE_READ_BYTES else await asyncio.to_thread(read)
        except FileNotFoundError:
            raise ObjectNotFoundError(f"the object of a virtual chunk is missing: {url}") from None
        except OSError as e:
            raise StorageError(f"cannot read virtual chunk at {url}: {e}") from None
        if len(data) != end - start:
            raise _short_read(url, start, end - start, len(data))
        return data


def _get_options(payload: VirtualPayload, start: int, end: int) -> dict[str, Any]:
    options: dict[str, Any] = {"range": (start, end)}
    if payload.checksum_etag is not None:
        etag = payload.checksum_etag
        options["if_match"] = etag if etag.startswith('"') else f'"{etag}"'
    if payload.checksum_last_modified:
        options["if_unmodified_since"] = datetime.fromtimestamp(payload.checksum_last_modified, UTC)
    return options


def _meta_mtime_ns(meta: Mapping[str, Any]) -> int | None:
    modified = meta.get("last_modified")
    if not isinstance(modified, datetime):
        return None
    return int(modified.timestamp()) * 1_000_000_000 + modified.microsecond * 1000


class _S3Fetcher:
    """``s3://`` objects through the obstore-backed storage class, one per bucket."""

    def __init__(self, container: VirtualChunkContainer, credentials: Any) -> None:
        self._container = container
        self._credentials = credentials
        self._buckets: dict[str, ObjectStoreStorage] = {}
        self._lock = threading.Lock()

    def _storage(self, bucket: str) -> ObjectStoreStorage:
        with self._lock:
            storage = self._buckets.get(bucket)
            if storage is None:
                storage = self._build(bucket)
                self._buckets[bucket] = storage
            return storage

    def _build(self, bucket: str) -> ObjectStoreStorage:
        from icechunk.storage import (
            Credentials,
            S3Credentials,
            S3StaticCredentials,
            s3_storage_from_options,
            wrapped_credentials,
        )

        store = self._container.store
        assert isinstance(
            store, ObjectStoreConfig.S3 | ObjectStoreConfig.S3Compatible | ObjectStoreConfig.Tigris
        )
        opts = store.options
        creds = self._credentials
        if isinstance(creds, Credentials.S3):
            creds = wrapped_credentials(creds)
        if isinstance(creds, S3StaticCredentials):
            creds = S3Credentials.Static(creds)
        elif creds is None:
            creds = S3Credentials.Anonymous() if opts.anonymous else S3Credentials.FromEnv()
        if not isinstance(creds, S3Credentials):
            raise InvalidInputError(
                f"the credentials authorizing {self._container.url_prefix} are not S3 "
                f"credentials: {type(creds).__name__}",
                ErrorKind.INVALID_ARGUMENT,
            )
        return s3_storage_from_options(
            opts,
            bucket,
            None,
            creds,  # type: ignore[arg-type]
            check_bucket=False,  # a virtual container may not grant listing
        )

    async def fetch(self, url: str, start: int, end: int, payload: VirtualPayload) -> bytes:

        parts = urlsplit(url)
        key = unquote(parts.path.lstrip("/"))
        storage = self._storage(parts.netloc)
        options = _get_options(payload, start, end)
        try:
            data, meta = await storage.get_with_options(key, cast(Any, options))
        except PreconditionFailedError:
            raise _modified_error(url, "the object store refused the conditional read") from None
        except ObjectNotFoundError:
            raise ObjectNotFoundError(f"the object of a virtual chunk is missing: {url}") from None
        _check_meta(url, payload, meta.get("e_tag"), _meta_mtime_ns(meta))
        if len(data) != end - start:
            raise _short_read(url, start, end - start, len(data))
        return data


class _HttpFetcher:
    """``http(s)://`` objects through obstore's HTTP store, one client per origin."""

    def __init__(self, container: VirtualChunkContainer) -> None:
        store = container.store
        assert isinstance(store, ObjectStoreConfig.Http)
        self._opts = dict(store.opts or {})
        self._headers = dict(store.headers or {})
        self._origins: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _store(self, origin: str) -> Any:
        from obstore.store import HTTPStore

        with self._lock:
            store = self._origins.get(origin)
            if store is None:
                options: dict[str, Any] = {"allow_http": origin.startswith("http://")}
                options.update(self._opts)
                if self._headers:
                    options["default_headers"] = self._headers
                store = HTTPStore.from_url(origin, client_options=cast(Any, options))
                self._origins[origin] = store
            return store

    async def fetch(self, url: str, start: int, end: int, payload: VirtualPayload) -> bytes:
        import obstore
        from obstore import exceptions as obx

        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        path = unquote(parts.path.lstrip("/"))
        store = self._store(origin)
        try:
            result = await obstore.get_async(
                store, path, options=cast(Any, _get_options(payload, start, end))
            )
            data = bytes(await result.bytes_async())
            meta = result.meta
        except obx.PreconditionError:
            raise _modified_error(url, "the server refused the conditional read") from None
        except (obx.NotFoundError, FileNotFoundError):
            raise ObjectNotFoundError(f"the object of a virtual chunk is missing: {url}") from None
        except (obx.BaseError, OSError, ValueError, RuntimeError) as e:
            first = str(e).split("\n", 1)[0][:300]
            raise StorageError(f"cannot read virtual chunk at {url}: {first}") from None
        _check_meta(url, payload, meta.get("e_tag"), _meta_mtime_ns(meta))
        if len(data) != end - start:
            raise _short_read(url, start, end - start, len(data))
        return data


class _Repo(Protocol):
    """What fetching needs of a repository's object service (``RepoObjects``)."""

    config: RepositoryConfig
    authorized: dict[str, Any]


_FETCHERS: weakref.WeakKeyDictionary[_Repo, dict[str, _Fetcher]] = weakref.WeakKeyDictionary()
_FETCHERS_LOCK = threading.Lock()


def _fetcher(repo: _Repo, container: VirtualChunkContainer) -> _Fetcher:
    """The cached fetcher of ``container`` for ``repo`` (built on first use)."""
    with _FETCHERS_LOCK:
        per_repo = _FETCHERS.setdefault(repo, {})
        found = per_repo.get(container.url_prefix)
        if found is not None:
            return found
        store = container.store
        fetcher: _Fetcher
        if isinstance(store, ObjectStoreConfig.LocalFileSystem):
            fetcher = _LocalFetcher()
        elif isinstance(
            store, ObjectStoreConfig.S3 | ObjectStoreConfig.S3Compatible | ObjectStoreConfig.Tigris
        ):
            fetcher = _S3Fetcher(container, repo.authorized.get(container.url_prefix))
        elif isinstance(store, ObjectStoreConfig.Http):
            fetcher = _HttpFetcher(container)
        else:
            raise InvalidInputError(
                f"reading virtual chunks from a {type(store).__name__} container "
                f"({container.url_prefix}) is not supported by this library; supported: local "
                "files, S3-compatible object stores and HTTP(S) servers",
                ErrorKind.INVALID_ARGUMENT,
            )
        per_repo[container.url_prefix] = fetcher
        return fetcher


async def fetch(repo: _Repo, payload: VirtualPayload, start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of a virtual chunk (relative to the chunk's own offset).

    Raises
    ------
    InvalidInputError
        No container serves the location (``no-container-for-virtual-chunk``).
    UnauthorizedVirtualChunkContainerError
        The repository was not authorized to read the container.
    VirtualChunkModifiedError
        The object changed after the reference was written (checksum mismatch).
    ObjectNotFoundError, StorageError
        The object is missing, shorter than the reference, or could not be read.
    """
    containers = repo_containers(repo.config)
    url = resolve_location(containers, payload.location)
    container = find_container(containers, payload.location)
    if container is None:
        raise InvalidInputError(
            f"no virtual chunk container can handle the chunk location ({payload.location}), "
            "edit the repository configuration adding a virtual chunk container for the chunk "
            f"references, {DOCS}",
            NO_CONTAINER,
        )
    if container.url_prefix not in repo.authorized:
        raise UnauthorizedVirtualChunkContainerError(
            "a virtual chunk in this repository resolves to the url prefix "
            f"{container.url_prefix}, to be able to fetch the chunk you need to authorize the "
            "virtual chunk container when you open/create the repository "
            f"(authorize_virtual_chunk_access={{{container.url_prefix!r}: ...}}), {DOCS}",
            UNAUTHORIZED,
        )
    _check_inside(url, container)
    if end <= start:
        return b""
    offset = payload.offset
    return await _fetcher(repo, container).fetch(url, offset + start, offset + end, payload)


def _check_inside(url: str, container: VirtualChunkContainer) -> None:
    """Refuse ``file``/``http(s)`` URLs whose ``..`` segments climb out of their container.

    Authorization is by URL prefix, so ``file:///data/../etc/passwd`` must not pass as a
    ``file:///data/`` URL. (Object store keys are opaque: ``..`` is a plain key there.)
    """
    parts = urlsplit(url)
    if parts.scheme not in ("file", "http", "https"):
        return
    segments = unquote(parts.path).split("/")
    if ".." in segments or "." in segments:
        raise InvalidInputError(
            f"virtual chunk location {url} has `.` or `..` path segments; they could lead out "
            f"of its container {container.url_prefix}, so it is refused",
            INVALID_REF,
        )
