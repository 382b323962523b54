"""Storage on cloud object stores (S3 and S3-compatible servers, Google Cloud Storage, Azure Blob).

One class, :class:`ObjectStoreStorage`, drives all three through `obstore
<https://developmentseed.org/obstore/>`_ (Python bindings of the Rust ``object_store`` crate);
users reach it through factories shaped like the real Icechunk's: :func:`s3_storage`,
:func:`gcs_storage`, :func:`azure_storage` and :func:`from_url`.

Guarantees and how they are met
-------------------------------
* **Create-only** puts send ``If-None-Match: *`` (obstore ``mode="create"``); **compare-and-swap**
  sends ``If-Match: <etag>`` (obstore ``UpdateVersion``). On GCS the version token carries the
  object generation too, because that is what GCS compares.
* **A lost success response is not a conflict** (the problem of Icechunk's design document 017).
  An HTTP client that retries a conditional PUT whose response was lost gets ``412`` from its own,
  already applied, first attempt. Every conditional put therefore stores a fresh random id in the
  object's user metadata (``icechunkwriteid``, the key real Icechunk 2.3 writes). When the put
  fails with a precondition error or with a transient error, the object is read back (a
  ``HEAD``); if it carries our id, the write happened and the put returns success.
* **Retries.** obstore retries each request (connection errors, 5xx, timeouts of safe requests)
  with exponential backoff; :class:`StorageRetriesSettings` bounds how long. On top of that, reads
  interrupted after the response started (which obstore does not retry) are retried once, and
  conditional puts that failed transiently are retried with the *same* write id, so the read-back
  recognises whichever attempt landed.
* **Bounded concurrency:** at most ``max_concurrent_requests`` requests in flight per event loop;
  with ``StorageConcurrencySettings`` a large range read is split into concurrent requests.
* **Large objects** are uploaded with a multipart upload (8 MiB parts, sent in parallel);
  conditional puts (small: refs and the repo-info file) are always single requests.
* **Missing buckets are reported as such.** Before its first request in each process the storage
  lists the repository root once: a ``NoSuchBucket`` answer becomes a :class:`StorageError`
  naming the bucket, instead of "repository not found" (and before anything is written: some
  servers, SeaweedFS among them, create a missing bucket on the first PUT).

Pickling and secrets
--------------------
obstore store objects are built lazily, once per process, from the plain configuration this
class keeps; pickling carries that configuration, *including credentials* (a worker process needs
them). ``repr()`` and error messages never show secrets: messages are rebuilt from the status code
and the server's error code and message only, with every configured secret masked, and the
original obstore exception (whose text may quote request details) is not chained.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import random
import re
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn, cast

import obstore
from obstore import exceptions as obx

from icechunk.errors import (
    InvalidInputError,
    ObjectNotFoundError,
    PreconditionFailedError,
    StorageError,
)
from icechunk.storage._common import check_byte_range, resolve_byte_range, validate_key
from icechunk.storage._credentials import StoreKind
from icechunk.storage._obstore_errors import (
    _CONFLICT,
    _NOT_FOUND,
    _QUERY_RE,
    _RETRIED_RE,
    _SECRET_CONFIG_KEYS,
    _XML_CODE_RE,
    _XML_MESSAGE_RE,
    _already_retried,
    _is_missing_bucket,
    _is_range_refusal,
    _is_transient,
    _never_sent,
    _status_of,
)
from icechunk.storage._obstore_versions import _version_token
from icechunk.storage._obstore_writes import WRITE_ID_METADATA_KEY, ObjectStoreWrites
from icechunk.storage._settings import (
    StorageConcurrencySettings,
    StorageRetriesSettings,
    StorageSettings,
)
from icechunk.storage.base import (
    ByteRange,
    ObjectInfo,
    OffsetRange,
    RangeRequest,
    SuffixRange,
    VersionInfo,
)

if TYPE_CHECKING:
    from obstore import GetOptions
    from obstore.store import ObjectStore

__all__ = ["WRITE_ID_METADATA_KEY", "ObjectStoreStorage"]

_JITTER = random.Random()
"""Private RNG for retry jitter: a library must not draw from (or disturb) the global one."""

_LIST_CHUNK = 1000
_READ_TRIES = 2

# -- process exit -----------------------------------------------------------------------------

_EXIT_GRACE_SECONDS = 0.25
_last_io = 0.0


def _note_io() -> None:
    global _last_io
    _last_io = time.monotonic()


@atexit.register
def _settle_before_exit() -> None:
    """Give obstore's runtime threads a moment after the last request before Python finalizes.

    obstore's async calls complete their Python future and only then release the Python objects
    they hold, from a runtime thread. A process that exits right after an ``await`` can reach
    interpreter finalization in between, and the process then dies of ``SIGABRT`` (observed
    with obstore 0.12.1 in about one short-lived process in seven). Waiting until a quarter of a
    second has passed since the last request avoids that; a process idle that long pays nothing.
    """
    wait = _last_io + _EXIT_GRACE_SECONDS - time.monotonic()
    if _last_io and wait > 0:
        time.sleep(wait)


class ObjectStoreStorage(ObjectStoreWrites):
    """A repository under ``prefix`` in one bucket (or container) of an object store.

    Build it with :func:`s3_storage`, :func:`gcs_storage`, :func:`azure_storage` or
    :func:`from_url` rather than directly.

    Parameters
    ----------
    kind
        ``"s3"``, ``"gcs"`` or ``"azure"``.
    bucket
        The bucket (the container for Azure).
    prefix
        The repository root inside the bucket; leading and trailing ``/`` are ignored.
    config
        obstore store configuration (the keys of ``S3Config``, ``GCSConfig`` or ``AzureConfig``),
        credentials included.
    client_options
        obstore HTTP client options (``ClientConfig``).
    retries
        Per-request retry policy.
    credential_provider
        A picklable callable returning fresh credentials, or ``None``.
    max_concurrent_requests
        At most this many requests in flight at once per event loop.
    check_bucket
        List the root once per process before the first request, so that a missing bucket is
        reported as such (see the module documentation).
    """

    supports_conditional_update = True

    def __init__(
        self,
        kind: StoreKind,
        bucket: str,
        prefix: str,
        config: Mapping[str, Any] | None = None,
        client_options: Mapping[str, Any] | None = None,
        *,
        retries: StorageRetriesSettings | None = None,
        credential_provider: Callable[[], Any] | None = None,
        max_concurrent_requests: int = 64,
        check_bucket: bool = True,
        concurrency: StorageConcurrencySettings | None = None,
        read_only: bool = False,
    ) -> None:
        if kind not in ("s3", "gcs", "azure"):
            raise InvalidInputError(f"unknown object store kind {kind!r}")
        if not bucket or "/" in bucket:
            raise InvalidInputError(f"invalid bucket name {bucket!r}")
        if max_concurrent_requests < 1:
            raise InvalidInputError("max_concurrent_requests must be at least 1")
        self._kind: StoreKind = kind
        self._bucket = bucket
        self._prefix = (prefix or "").strip("/")
        self._config = dict(config or {})
        self._client_options = dict(client_options or {})
        self._retries = retries or StorageRetriesSettings()
        self._credential_provider = credential_provider
        self._max_concurrent = max_concurrent_requests
        self._check_bucket = check_bucket
        self._concurrency = concurrency
        self._read_only = read_only
        self._lock = threading.Lock()
        self._store: tuple[int, ObjectStore] | None = None
        self._bucket_checked_pid: int | None = None
        self._semaphores: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, asyncio.Semaphore
        ] = weakref.WeakKeyDictionary()
        self._secrets = tuple(
            sorted(
                {
                    str(v)
                    for k, v in self._config.items()
                    if k.lower()
                    .removeprefix("aws_")
                    .removeprefix("google_")
                    .removeprefix("azure_storage_")
                    in _SECRET_CONFIG_KEYS
                    and isinstance(v, str)
                    and len(v) >= 4
                },
                key=len,
                reverse=True,
            )
        )

    # -- identity, pickling, repr ---------------------------------------------------------------

    @property
    def kind(self) -> StoreKind:
        return self._kind

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def url(self) -> str:
        """``s3://bucket/prefix`` (``gs://`` or ``az://`` for the other kinds)."""
        scheme = {"s3": "s3", "gcs": "gs", "azure": "az"}[self._kind]
        return f"{scheme}://{self._bucket}/{self._prefix}".rstrip("/")

    @property
    def _endpoint(self) -> str | None:
        for key in ("endpoint", "aws_endpoint", "endpoint_url", "base_url"):
            if isinstance(self._config.get(key), str):
                return str(self._config[key])
        return None

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild,
            (
                self._kind,
                self._bucket,
                self._prefix,
                self._config,
                self._client_options,
                self._retries,
                self._credential_provider,
                self._max_concurrent,
                self._check_bucket,
                self._concurrency,
                self._read_only,
            ),
        )

    def __repr__(self) -> str:
        endpoint = self._endpoint
        where = f", endpoint={endpoint!r}" if endpoint else ""
        return f"ObjectStoreStorage({self.url!r}{where})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ObjectStoreStorage):
            return NotImplemented
        return (self._kind, self._bucket, self._prefix, self._endpoint) == (
            other._kind,
            other._bucket,
            other._prefix,
            other._endpoint,
        )

    def __hash__(self) -> int:
        return hash((ObjectStoreStorage, self._kind, self._bucket, self._prefix))

    def configured(self, settings: StorageSettings) -> ObjectStoreStorage:
        """A copy using ``settings``: its ``retries`` replace this storage's retry policy, its
        ``timeouts`` the client's connect and per-request timeouts, and its ``concurrency``
        splits large range reads into concurrent requests (see :func:`split_range`); fields
        left ``None`` keep the current values."""
        client_options = dict(self._client_options)
        if settings.timeouts is not None:
            client_options.update(settings.timeouts._to_obstore())
        return ObjectStoreStorage(
            self._kind,
            self._bucket,
            self._prefix,
            self._config,
            client_options,
            retries=settings.retries or self._retries,
            credential_provider=self._credential_provider,
            max_concurrent_requests=self._max_concurrent,
            check_bucket=self._check_bucket,
            concurrency=settings.concurrency or self._concurrency,
            read_only=self._read_only,
        )

    def default_settings(self) -> StorageSettings:
        """The retry policy and read splitting in use (timeouts: the client's defaults)."""
        return StorageSettings(retries=self._retries, concurrency=self._concurrency)

    # -- store construction -------------------------------------------------------------------

    def _build_store(self) -> ObjectStore:
        from obstore.store import AzureStore, GCSStore, S3Store

        kwargs: dict[str, Any] = {
            "prefix": self._prefix or None,
            "config": dict(self._config),
            "client_options": dict(self._client_options),
            "retry_config": self._retries.to_obstore(),
        }
        if self._credential_provider is not None:
            kwargs["credential_provider"] = self._credential_provider
        try:
            if self._kind == "s3":
                return S3Store(self._bucket, **kwargs)
            if self._kind == "gcs":
                return GCSStore(self._bucket, **kwargs)
            return AzureStore(self._bucket, **kwargs)
        except (obx.BaseError, ValueError, TypeError, RuntimeError) as exc:
            raise StorageError(
                f"could not configure {self._kind} storage for {self.url}: "
                f"{self._redact(str(exc).split(chr(10))[0])}"
            ) from None

    def _get_store(self) -> ObjectStore:
        """The obstore store of this process, built on first use (and again after a fork)."""
        pid = os.getpid()
        cached = self._store
        if cached is not None and cached[0] == pid:
            return cached[1]
        with self._lock:
            cached = self._store
            if cached is None or cached[0] != pid:
                cached = (pid, self._build_store())
                self._store = cached
            return cached[1]

    async def _ready_store(self) -> ObjectStore:
        store = self._get_store()
        if self._check_bucket and self._bucket_checked_pid != os.getpid():
            await self._verify_bucket(store)
        return store

    async def _verify_bucket(self, store: ObjectStore) -> None:
        try:
            async with self._slot():
                await obstore.list_with_delimiter_async(store, None)
        except (obx.PermissionDeniedError, obx.UnauthenticatedError):
            # Credentials allowed to read and write but not to list are legitimate; the real
            # operations will report a genuine authorization failure themselves.
            pass
        except (obx.BaseError, OSError, ValueError, RuntimeError) as exc:
            self._raise(exc, "list", "")
        self._bucket_checked_pid = os.getpid()

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """Hold one of the ``max_concurrent_requests`` request slots of the running loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            sem = self._semaphores.get(loop)
            if sem is None:
                sem = asyncio.Semaphore(self._max_concurrent)
                self._semaphores[loop] = sem
        async with sem:
            try:
                yield
            finally:
                _note_io()

    # -- error translation --------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _detail(self, exc: BaseException) -> str:
        """A short, secret-free description of an obstore failure."""
        text = str(exc)
        status = _status_of(text)
        code = _XML_CODE_RE.search(text)
        message = _XML_MESSAGE_RE.search(text)
        parts: list[str] = []
        if status is not None:
            parts.append(f"HTTP {status}")
        if code:
            parts.append(code.group(1))
        if message:
            parts.append(message.group(1))
        if not code and not message:
            first = text.split("\n\nDebug source", 1)[0].split("\n", 1)[0]
            first = re.sub(r"^Generic \w+ error: ", "", first)
            first = first.split(": <?xml", 1)[0]
            parts.append(_QUERY_RE.sub(r"\1", first)[:400])
        retried = _RETRIED_RE.search(text)
        if retried and int(retried.group(1)) > 0:
            parts.append(f"gave up after {retried.group(1)} retries")
        return self._redact(f"{type(exc).__name__}: " + "; ".join(parts))

    def _error(self, exc: BaseException, action: str, key: str) -> Exception:
        """Translate an obstore (or transport) exception into this library's error tree."""
        what = f"{self.url}/{key}" if key else self.url
        if isinstance(exc, _NOT_FOUND) and not _is_missing_bucket(exc):
            return ObjectNotFoundError(f"object not found: {what}")
        if isinstance(exc, _CONFLICT):
            return PreconditionFailedError(f"conditional put of {what} failed: {self._detail(exc)}")
        if isinstance(exc, obx.BaseError | OSError | ValueError | RuntimeError):
            detail = self._detail(exc)
            if _is_missing_bucket(exc):
                hint = f"the bucket {self._bucket!r} does not exist"
            elif isinstance(exc, obx.PermissionDeniedError | obx.UnauthenticatedError) or (
                _status_of(str(exc)) in (401, 403)
            ):
                hint = "access denied: check the credentials and their permissions"
            elif _never_sent(exc):
                endpoint = self._endpoint or "the default endpoint"
                hint = f"could not connect to {endpoint}"
            elif _is_transient(exc):
                hint = "the object store is unreachable or failing"
            else:
                hint = "the object store refused the request"
            return StorageError(
                f"{self._kind} storage could not {action} {what}: {hint} ({detail})"
            )
        return exc if isinstance(exc, Exception) else StorageError(str(exc))

    def _raise(self, exc: BaseException, action: str, key: str) -> NoReturn:
        raise self._error(exc, action, key) from None

    async def get_with_options(
        self, key: str, options: Mapping[str, Any]
    ) -> tuple[bytes, Mapping[str, Any]]:
        """Read ``key`` with obstore ``GetOptions`` (ranges, ``if_match``...); retried as :meth:`get`.

        For callers that need obstore's conditional reads, such as the virtual chunk fetcher;
        ``key`` is relative to the prefix and is not checked against Icechunk's key rules.
        Returns the bytes and obstore's object metadata (``e_tag``, ``last_modified``...).

        Raises
        ------
        ObjectNotFoundError
            ``key`` does not exist.
        PreconditionFailedError
            A condition in ``options`` does not hold.
        StorageError
            Any other failure, after the retries.
        """
        store = await self._ready_store()

        async def op() -> tuple[bytes, Mapping[str, Any]]:
            result = await obstore.get_async(store, key, options=cast(Any, options))
            return bytes(await result.bytes_async()), result.meta

        return await self._with_retries("read", key, op)

    async def _with_retries[T](self, action: str, key: str, op: Callable[[], Awaitable[T]]) -> T:
        """Run one idempotent operation; retry once what obstore's own retries did not cover."""
        for attempt in range(_READ_TRIES):
            try:
                async with self._slot():
                    return await op()
            except (obx.BaseError, OSError, ValueError, RuntimeError) as exc:
                if attempt + 1 < _READ_TRIES and _is_transient(exc) and not _already_retried(exc):
                    await asyncio.sleep(self._backoff(attempt))
                    continue
                self._raise(exc, action, key)
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(self, attempt: int) -> float:
        cap = self._retries.max_backoff_ms / 1000
        return _JITTER.uniform(0, min(cap, self._retries.initial_backoff_ms / 1000 * 2**attempt))

    # -- Storage: reads -------------------------------------------------------------------------

    async def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        # docstring inherited
        validate_key(key)
        check_byte_range(byte_range)
        if isinstance(byte_range, RangeRequest) and self._concurrency is not None:
            parts = split_range(
                byte_range.start,
                byte_range.end,
                self._concurrency.max_concurrent_requests_for_object,
                self._concurrency.ideal_concurrent_request_size,
            )
            if len(parts) > 1:
                pieces = await asyncio.gather(
                    *(self._get_one(key, RangeRequest(a, b)) for a, b in parts)
                )
                return b"".join(pieces)
        return await self._get_one(key, byte_range)

    async def _get_one(self, key: str, byte_range: ByteRange | None) -> bytes:
        store = await self._ready_store()
        options: GetOptions = {}
        match byte_range:
            case None:
                pass
            case RangeRequest(start=start, end=end) if start == end:
                return await self._empty_range(store, key)
            case RangeRequest(start=start, end=end):
                options["range"] = (start, end)
            case OffsetRange(offset=offset):
                options["range"] = {"offset": offset}
            case SuffixRange(suffix=0):
                return await self._empty_range(store, key)
            case SuffixRange(suffix=suffix):
                options["range"] = {"suffix": suffix}

        async def op() -> bytes | None:
            try:
                result = await obstore.get_async(store, key, options=options)
                return bytes(await result.bytes_async())
            except obx.BaseError as exc:
                if byte_range is not None and _is_range_refusal(exc):
                    return None
                raise

        data = await self._with_retries("read", key, op)
        if data is not None:
            return data
        # The server refused the range: 416 when it starts at or past the end, or a whole-object
        # answer for a range of an empty object. Decide from the object's size instead.
        size = await self._size(store, key)
        start, end = resolve_byte_range(byte_range, size)
        if start == end:
            return b""
        raise StorageError(
            f"{self._kind} storage could not read bytes [{start}, {end}) of {self.url}/{key}: "
            "the server refused the range request"
        )

    async def _size(self, store: ObjectStore, key: str) -> int:
        async def op() -> int:
            return int((await obstore.head_async(store, key))["size"])

        return await self._with_retries("read", key, op)

    async def _empty_range(self, store: ObjectStore, key: str) -> bytes:
        await self._size(store, key)  # raises ObjectNotFoundError for a missing key
        return b""

    async def get_with_version(self, key: str) -> tuple[bytes, VersionInfo]:
        # docstring inherited
        validate_key(key)
        store = await self._ready_store()

        async def op() -> tuple[bytes, VersionInfo]:
            result = await obstore.get_async(store, key)
            data = bytes(await result.bytes_async())
            return data, _version_token(self._kind, result.meta)

        return await self._with_retries("read", key, op)

    async def exists(self, key: str) -> bool:
        # docstring inherited
        validate_key(key)
        store = await self._ready_store()
        try:
            await self._size(store, key)
        except ObjectNotFoundError:
            return False
        return True

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        # docstring inherited
        store = await self._ready_store()
        # obstore lists "directories": list the deepest one containing the prefix, then filter.
        directory = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        stream = obstore.list(store, directory or None, chunk_size=_LIST_CHUNK)
        while True:
            try:
                async with self._slot():
                    batch = await anext(stream)
            except StopAsyncIteration:
                return
            except (obx.BaseError, OSError, ValueError, RuntimeError) as exc:
                self._raise(exc, "list", prefix)
            for meta in batch:
                path = meta["path"]
                if path.startswith(prefix):
                    yield ObjectInfo(path, int(meta["size"]), _utc(meta["last_modified"]))


def split_range(
    start: int, end: int, max_parts: int | None, ideal_size: int | None
) -> list[tuple[int, int]]:
    """``[start, end)`` cut into at most ``max_parts`` consecutive pieces of about
    ``ideal_size`` bytes (``StorageConcurrencySettings``); one piece when either is ``None``.

    Pieces are as equal as possible and cover the range exactly, in order.
    """
    length = end - start
    if not max_parts or not ideal_size or max_parts < 2 or length <= ideal_size:
        return [(start, end)]
    count = min(max_parts, -(-length // ideal_size))
    base, extra = divmod(length, count)
    parts: list[tuple[int, int]] = []
    at = start
    for i in range(count):
        size = base + (1 if i < extra else 0)
        parts.append((at, at + size))
        at += size
    return parts


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _rebuild(
    kind: StoreKind,
    bucket: str,
    prefix: str,
    config: dict[str, Any],
    client_options: dict[str, Any],
    retries: StorageRetriesSettings,
    credential_provider: Callable[[], Any] | None,
    max_concurrent: int,
    check_bucket: bool,
    concurrency: StorageConcurrencySettings | None = None,
    read_only: bool = False,
) -> ObjectStoreStorage:
    return ObjectStoreStorage(
        kind,
        bucket,
        prefix,
        config,
        client_options,
        retries=retries,
        credential_provider=credential_provider,
        max_concurrent_requests=max_concurrent,
        check_bucket=check_bucket,
        concurrency=concurrency,
        read_only=read_only,
    )
