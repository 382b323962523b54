"""``IcechunkStore``: the zarr v3 store over a :class:`~icechunk.session.Session`.

The zarr key space maps onto the session's nodes and chunks: ``zarr.json`` and
``<path>/zarr.json`` are node metadata, ``<path>/c/<i>/<j>...`` (``<path>/c`` for 0-d arrays) are
chunks. Nothing else is a valid key. This is the only module that imports zarr's ``Store`` ABC.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from zarr.abc.store import (
    ByteRequest,
    OffsetByteRequest,
    RangeByteRequest,
    Store,
    SuffixByteRequest,
)
from zarr.core.buffer import Buffer, BufferPrototype

from icechunk.errors import ErrorKind, InvalidInputError, ReadOnlyError
from icechunk.storage.base import ByteRange, OffsetRange, RangeRequest, SuffixRange

if TYPE_CHECKING:
    from icechunk.session import Session

__all__ = ["IcechunkStore"]


def _invalid_key(key: str, why: str = "") -> InvalidInputError:
    return InvalidInputError(
        f"invalid zarr key `{key}`{': ' + why if why else ''}; icechunk stores only zarr v3 "
        "metadata (`zarr.json`, `<path>/zarr.json`) and chunk keys (`<path>/c/<i>/<j>...`)",
        ErrorKind.INVALID_KEY,
    )


def _to_range(byte_range: ByteRequest | None) -> ByteRange | None:
    match byte_range:
        case None:
            return None
        case RangeByteRequest(start, end):
            return RangeRequest(start, end)
        case OffsetByteRequest(offset):
            return OffsetRange(offset)
        case SuffixByteRequest(suffix):
            return SuffixRange(suffix)
    raise InvalidInputError(f"unsupported byte request {byte_range!r}")


def _node_path(segments: list[str]) -> str:
    return "/" + "/".join(segments) if segments else "/"


def _node_key(path: str) -> str:
    return "zarr.json" if path == "/" else path[1:] + "/zarr.json"


def _chunk_key(path: str, coords: tuple[int, ...]) -> str:
    head = "" if path == "/" else path[1:] + "/"
    return head + "/".join(["c", *map(str, coords)])


class IcechunkStore(Store):
    """A zarr store reading and writing through a session. Get it from ``session.store``."""

    supports_writes = True
    supports_deletes = True
    supports_listing = True
    supports_partial_writes = False

    def __init__(self, session: Session, read_only: bool | None = None) -> None:
        super().__init__(read_only=session.read_only if read_only is None else read_only)
        self._session = session
        self._is_open = True

    # -- identity, pickling ---------------------------------------------------------------

    @property
    def session(self) -> Session:
        return self._session

    @property
    def read_only(self) -> bool:
        return self._read_only or self._session.read_only

    @property
    def supports_consolidated_metadata(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IcechunkStore) and other._session is self._session

    def __hash__(self) -> int:
        return id(self._session)

    def __repr__(self) -> str:
        return f"<IcechunkStore session={self._session!r}>"

    def __getstate__(self) -> dict[str, Any]:
        return {"session": self._session, "read_only": self._read_only}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._session = state["session"]
        self._read_only = state["read_only"] or self._session.read_only
        self._is_open = True

    def with_read_only(self, read_only: bool = False) -> IcechunkStore:
        # A read-only session stays read-only whatever the flag says (writes still fail).
        return IcechunkStore(self._session, read_only=read_only)

    def _check_writable(self) -> None:
        if self.read_only:
            self._session._require_writable()
            raise ReadOnlyError("this store is read-only", ErrorKind.READ_ONLY_STORE)

    # -- key parsing ----------------------------------------------------------------------

    def _parse(self, key: str) -> tuple[str, tuple[int, ...] | None]:
        """``(node path, None)`` for metadata keys, ``(array path, coords)`` for chunk keys."""
        if not key or key.startswith("/") or key.endswith("/"):
            raise _invalid_key(key)
        segments = key.split("/")
        if any(s in ("", ".", "..") for s in segments):
            raise _invalid_key(key, "empty, `.` or `..` path segments are not allowed")
        if segments[-1] == "zarr.json":
            return _node_path(segments[:-1]), None
        candidates = [i for i, s in enumerate(segments) if s == "c"]
        for i in reversed(candidates):
            tail = segments[i + 1 :]
            if not all(t.isdigit() and t.isascii() for t in tail):
                continue
            path = _node_path(segments[:i])
            meta = self._session.node_metadata(path)
            if meta is not None and meta.is_array:
                return path, tuple(int(t) for t in tail)
        if candidates and all(
            t.isdigit() and t.isascii() for t in segments[candidates[-1] + 1 :]
        ):
            # well-formed chunk key of a node that does not exist (or is not an array)
            return _node_path(segments[: candidates[-1]]), tuple(
                int(t) for t in segments[candidates[-1] + 1 :]
            )
        raise _invalid_key(key)

    # -- reads ----------------------------------------------------------------------------

    async def get(
        self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        try:
            path, coords = self._parse(key)
        except InvalidInputError:
            return None
        if coords is None:
            data = await self._session.get_metadata(path)
            if data is not None and byte_range is not None:
                from icechunk.repository import _resolve_range

                start, end = _resolve_range(len(data), _to_range(byte_range))
                data = data[start:end]
        else:
            data = await self._session.get_chunk(path, coords, _to_range(byte_range))
        return None if data is None else prototype.buffer.from_bytes(data)

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> list[Buffer | None]:
        return list(
            await asyncio.gather(*(self.get(k, prototype, r) for k, r in key_ranges))
        )

    async def exists(self, key: str) -> bool:
        try:
            path, coords = self._parse(key)
        except InvalidInputError:
            return False
        if coords is None:
            return self._session.node_metadata(path) is not None
        return await self._session.chunk_exists(path, coords)

    async def getsize(self, key: str) -> int:
        path, coords = self._parse(key)
        size: int | None
        if coords is None:
            data = await self._session.get_metadata(path)
            size = None if data is None else len(data)
        else:
            size = await self._session.chunk_size(path, coords)
        if size is None:
            raise FileNotFoundError(key)
        return size

    # -- writes ---------------------------------------------------------------------------

    async def set(self, key: str, value: Buffer) -> None:
        self._check_writable()
        path, coords = self._parse(key)
        data = value.to_bytes()
        if coords is None:
            await self._session.set_metadata(path, data)
        else:
            await self._session.set_chunk(path, coords, data)

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        if not await self.exists(key):
            await self.set(key, value)

    async def delete(self, key: str) -> None:
        self._check_writable()
        path, coords = self._parse(key)
        if coords is None:
            if self._session.node_metadata(path) is not None:
                await self._session.delete_node(path)
        else:
            await self._session.delete_chunk(path, coords)

    async def delete_dir(self, prefix: str) -> None:
        self._check_writable()
        prefix = prefix.strip("/")
        path = "/" + prefix if prefix else "/"
        if self._session.node_metadata(path) is not None:
            await self._session.delete_node(path)
            return
        # a prefix inside an array's chunk space, e.g. "a/c" or "a/c/1"
        keys = [k async for k in self.list_prefix(prefix + "/" if prefix else "")]
        for k in keys:
            await self.delete(k)

    async def set_partial_values(
        self, key_start_values: Iterable[tuple[str, int, bytes | bytearray | memoryview]]
    ) -> None:
        raise NotImplementedError("partial writes are not implemented by Icechunk")

    async def clear(self) -> None:
        self._check_writable()
        for path, _ in self._session.list_nodes():
            if self._session.node_metadata(path) is not None:
                await self._session.delete_node(path)

    # -- listing --------------------------------------------------------------------------

    async def _keys(self) -> AsyncIterator[str]:
        for path, is_array in self._session.list_nodes():
            yield _node_key(path)
            if is_array:
                for coords in await self._session.list_chunks(path):
                    yield _chunk_key(path, coords)

    async def list(self) -> AsyncIterator[str]:
        async for key in self._keys():
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        async for key in self._keys():
            if key.startswith(prefix):
                yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        prefix = prefix.rstrip("/")
        head = prefix + "/" if prefix else ""
        seen: set[str] = set()
        async for key in self._keys():
            if key.startswith(head):
                child = key[len(head) :].split("/", 1)[0]
                if child and child not in seen:
                    seen.add(child)
                    yield child

    async def is_empty(self, prefix: str) -> bool:
        async for _ in self.list_prefix(prefix):
            return False
        return True
