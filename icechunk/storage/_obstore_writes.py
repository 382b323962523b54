"""The write half of :class:`~icechunk.storage._obstore.ObjectStoreStorage`: puts and deletes.

Plain, conditional (``IfMatch`` / create-only, with a write id that recognises our own
acknowledged-but-lost attempt) and multipart puts, and batched deletes, over obstore. A mixin:
the storage class supplies the store, the retry loop and the error translation it names.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn, cast

import obstore
from obstore import exceptions as obx

from icechunk.errors import (
    ErrorKind,
    InvalidInputError,
    ObjectNotFoundError,
    StorageError,
)
from icechunk.storage._common import validate_key
from icechunk.storage._credentials import StoreKind
from icechunk.storage._obstore_errors import (
    _CONFLICT,
    _is_transient,
    _never_sent,
)
from icechunk.storage._obstore_versions import _update_version, _version_token
from icechunk.storage.base import (
    IfMatch,
    PutMode,
    Storage,
    VersionInfo,
    WriteMode,
)

if TYPE_CHECKING:
    from obstore import GetResult
    from obstore.store import ObjectStore


WRITE_ID_METADATA_KEY = "icechunkwriteid"
"""User-metadata key holding the per-attempt id of a conditional put.

The same key, and the same kind of value (a random UUID), as real Icechunk 2.3 writes: observed
as ``x-amz-meta-icechunkwriteid`` on objects it wrote through S3.
"""

_MULTIPART_CHUNK = 8 * 1024 * 1024
_MULTIPART_CONCURRENCY = 8
_CONDITIONAL_TRIES = 3


class ObjectStoreWrites(Storage):
    """Puts and deletes of an obstore-backed storage (mixed into ``ObjectStoreStorage``)."""

    if TYPE_CHECKING:
        _kind: StoreKind
        _read_only: bool

        @property
        def url(self) -> str: ...

        async def _ready_store(self) -> ObjectStore: ...

        def _slot(self) -> contextlib.AbstractAsyncContextManager[None]: ...

        def _raise(self, exc: BaseException, action: str, key: str) -> NoReturn: ...

        async def _with_retries[T](
            self, action: str, key: str, op: Callable[[], Awaitable[T]]
        ) -> T: ...

        def _backoff(self, attempt: int) -> float: ...

    def _refuse_writes(self) -> None:
        if self._read_only:
            raise StorageError(
                f"{self.url} was opened read-only (an eventually consistent Tigris storage, "
                "use_weak_consistency=True): it cannot write or delete objects",
                ErrorKind.REPO_READ_ONLY,
            )

    async def put(self, key: str, data: bytes, mode: PutMode = WriteMode.OVERWRITE) -> VersionInfo:
        # docstring inherited
        validate_key(key)
        self._refuse_writes()
        match mode:
            case WriteMode.OVERWRITE | WriteMode.CREATE | IfMatch():
                pass
            case _:
                raise InvalidInputError(f"unknown put mode: {mode!r}")
        payload = data if isinstance(cast(object, data), bytes) else bytes(data)
        store = await self._ready_store()
        if mode is WriteMode.OVERWRITE:
            return await self._put_overwrite(store, key, payload)
        return await self._put_conditional(store, key, payload, mode)

    async def _put_overwrite(self, store: ObjectStore, key: str, data: bytes) -> VersionInfo:
        async def op() -> VersionInfo:
            result = await obstore.put_async(
                store,
                key,
                data,
                chunk_size=_MULTIPART_CHUNK,
                max_concurrency=_MULTIPART_CONCURRENCY,
            )
            return self._put_version(result)

        return await self._with_retries("write", key, op)

    def _put_version(self, result: Mapping[str, Any]) -> VersionInfo:
        version = result.get("version")
        if self._kind != "gcs":
            version = None
        return _version_token(self._kind, {"e_tag": result.get("e_tag"), "version": version})

    async def _put_conditional(
        self, store: ObjectStore, key: str, data: bytes, mode: WriteMode | IfMatch
    ) -> VersionInfo:
        write_id = str(uuid.uuid4())
        attributes = {WRITE_ID_METADATA_KEY: write_id}
        omode: Any = (
            "create" if mode is WriteMode.CREATE else _update_version(cast(IfMatch, mode).version)
        )
        for attempt in range(_CONDITIONAL_TRIES):
            try:
                async with self._slot():
                    result = await obstore.put_async(
                        store, key, data, mode=omode, attributes=attributes, use_multipart=False
                    )
                return self._put_version(result)
            except _CONFLICT as exc:
                # Maybe our own earlier attempt (or an HTTP-level retry of it) already landed.
                landed = await self._written_by(store, key, write_id)
                if landed is not None:
                    return landed
                self._raise(exc, "write", key)
            except (obx.BaseError, OSError, ValueError, RuntimeError) as exc:
                if not _is_transient(exc):
                    self._raise(exc, "write", key)
                if not _never_sent(exc):
                    landed = await self._written_by(store, key, write_id)
                    if landed is not None:
                        return landed
                if attempt + 1 == _CONDITIONAL_TRIES:
                    self._raise(exc, "write", key)
                await asyncio.sleep(self._backoff(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _written_by(self, store: ObjectStore, key: str, write_id: str) -> VersionInfo | None:
        """The object's version if it is the one a put with ``write_id`` wrote, else ``None``."""

        async def op() -> GetResult:
            return await obstore.get_async(store, key, options={"head": True})

        try:
            result = await self._with_retries("read back", key, op)
        except ObjectNotFoundError:
            return None
        except StorageError as exc:
            raise StorageError(
                f"the outcome of a conditional put of {self.url}/{key} is unknown: the put failed "
                f"and reading the object back failed too ({exc})"
            ) from None
        for name, value in result.attributes.items():
            if name.lower() == WRITE_ID_METADATA_KEY and value == write_id:
                return _version_token(self._kind, result.meta)
        return None

    async def delete(self, keys: Iterable[str]) -> None:
        # docstring inherited
        paths = list(dict.fromkeys(validate_key(k) for k in keys))
        if not paths:
            return
        self._refuse_writes()
        store = await self._ready_store()

        async def bulk() -> None:
            await obstore.delete_async(store, paths)

        try:
            await self._with_retries("delete", paths[0], bulk)
        except ObjectNotFoundError:
            # Some stores report missing keys in a batch; delete one by one, ignoring those.
            for path in paths:

                async def one(path: str = path) -> None:
                    await obstore.delete_async(store, path)

                try:
                    await self._with_retries("delete", path, one)
                except ObjectNotFoundError:
                    pass
