"""``IcechunkStore``: the zarr v3 store over a :class:`~icechunk.session.Session`.

The zarr key space maps onto the session's nodes and chunks: ``zarr.json`` and
``<path>/zarr.json`` are node metadata, ``<path>/c/<i>/<j>...`` (``<path>/c`` for 0-d arrays) are
chunks. Nothing else is a valid key. This is the only module that imports zarr's ``Store`` ABC.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol

from typing_extensions import TypeVar
from zarr.abc.store import (
    ByteRequest,
    OffsetByteRequest,
    RangeByteRequest,
    Store,
    SuffixByteRequest,
)
from zarr.core.buffer import Buffer, BufferPrototype

from icechunk._core.virtual_refs import grid_columns, single_ref_columns, spec_columns
from icechunk._store_chunk_refs import ChunkRefBatches, chunk_ref_batches
from icechunk._sync import sync
from icechunk.errors import ErrorKind, InvalidInputError, ReadOnlyError
from icechunk.storage import resolve_byte_range
from icechunk.storage.base import ByteRange, OffsetRange, RangeRequest, SuffixRange
from icechunk.virtual import no_container_error

if TYPE_CHECKING:
    from icechunk._core.change_set import ChunkPayload
    from icechunk._core.zarr_metadata import NodeMetadata
    from icechunk.storage.base import Storage
    from icechunk.virtual import VirtualChunkSpec

__all__ = ["IcechunkStore", "StoreSession"]


class _StorageOwner(Protocol):
    """What a store needs of a session's repository: its storage (for equality and hashing)."""

    @property
    def storage(self) -> Storage: ...


class StoreSession(Protocol):
    """What an :class:`IcechunkStore` uses of the session it wraps.

    :class:`~icechunk.session.Session` satisfies it. A protocol, not the class, so that this
    module sits below ``icechunk.session`` in the layers (``Session.store`` builds a store;
    the store never imports the session module). At runtime ``IcechunkStore.session`` is the
    very object the store was built over.
    """

    @property
    def _repo(self) -> _StorageOwner: ...

    @property
    def read_only(self) -> bool: ...

    @property
    def _store_read_only(self) -> bool: ...

    @property
    def has_uncommitted_changes(self) -> bool: ...

    @property
    def snapshot_id(self) -> str: ...

    def _require_writable(self) -> None: ...

    def node_metadata(self, path: str) -> NodeMetadata | None: ...

    def list_nodes(self) -> list[tuple[str, bool]]: ...

    async def get_metadata(self, path: str) -> bytes | None: ...

    async def set_metadata(self, path: str, user_data: bytes) -> None: ...

    async def delete_node(self, path: str) -> None: ...

    async def get_chunk(
        self, path: str, coords: tuple[int, ...], byte_range: ByteRange | None = None
    ) -> bytes | None: ...

    async def chunk_exists(self, path: str, coords: tuple[int, ...]) -> bool: ...

    async def chunk_size(self, path: str, coords: tuple[int, ...]) -> int | None: ...

    async def list_chunks(self, path: str) -> list[tuple[int, ...]]: ...

    async def chunk_payloads(
        self, array_path: str, coords: list[tuple[int, ...]]
    ) -> list[ChunkPayload | None]: ...

    @property
    def config(self) -> Any: ...

    async def set_chunk(
        self, path: str, coords: tuple[int, ...], data: bytes | memoryview
    ) -> None: ...

    async def delete_chunk(self, path: str, coords: tuple[int, ...]) -> None: ...

    async def set_virtual_refs_columns(
        self,
        path: str,
        coords: Any,
        locations: list[str],
        offsets: Any,
        lengths: Any,
        etags: list[str | None] | None = None,
        last_modified: Any = None,
        *,
        validate_containers: bool = True,
    ) -> list[int]: ...


#: The session type a store wraps: ``IcechunkStore[Session]`` (what ``Session.store`` returns)
#: types ``store.session`` as the real :class:`~icechunk.session.Session`.
SessionT = TypeVar("SessionT", bound=StoreSession, default=StoreSession)


def _invalid_key(key: str, why: str = "") -> InvalidInputError:
    return InvalidInputError(
        f"invalid zarr key `{key}`{': ' + why if why else ''}; icechunk stores only zarr v3 "
        "metadata (`zarr.json`, `<path>/zarr.json`) and chunk keys (`<path>/c/<i>/<j>...`)",
        ErrorKind.INVALID_KEY,
    )


class _ReadOnlyStoreError(ReadOnlyError, ValueError):
    """A write through a read-only store.

    A :class:`~icechunk.errors.ReadOnlyError` that is also the ``ValueError`` zarr's ``Store``
    contract documents for writes to read-only stores.
    """


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
    # zarr's own stores use this wording; zarr's store conformance tests match on it.
    raise InvalidInputError(
        f"Unexpected byte_range, got {byte_range!r}; expected None, RangeByteRequest, "
        "OffsetByteRequest or SuffixByteRequest",
        ErrorKind.INVALID_ARGUMENT,
    )


def _node_path(segments: list[str]) -> str:
    return "/" + "/".join(segments) if segments else "/"


def _node_key(path: str) -> str:
    return "zarr.json" if path == "/" else path[1:] + "/zarr.json"


def _byte_view(value: Buffer) -> memoryview | bytes:
    """The bytes of ``value`` as a flat byte view sharing its memory, or a copy if none can."""
    view = memoryview(value.as_buffer_like())
    if view.c_contiguous and view.ndim == 1 and view.format in ("B", "b", "c"):
        return view.cast("B") if view.format != "B" else view
    return value.to_bytes()


def _chunk_key(path: str, coords: tuple[int, ...]) -> str:
    head = "" if path == "/" else path[1:] + "/"
    return head + "/".join(["c", *map(str, coords)])


class IcechunkStore(Store, Generic[SessionT]):
    """A zarr store reading and writing through a session. Get it from ``session.store``."""

    supports_writes = True
    supports_deletes = True
    supports_listing = True
    supports_partial_writes = False

    def __init__(self, session: SessionT, read_only: bool | None = None) -> None:
        super().__init__(read_only=session._store_read_only if read_only is None else read_only)
        self._session = session
        # Like every zarr store, a new store is not "open" yet: zarr opens it on first use
        # (``StorePath`` calls ``_ensure_open``). Opening only flips this flag.

    # -- identity, pickling ---------------------------------------------------------------

    @property
    def session(self) -> SessionT:
        return self._session

    @property
    def read_only(self) -> bool:
        return self._read_only or self._session._store_read_only

    @property
    def supports_consolidated_metadata(self) -> bool:
        return False

    async def _ensure_open(self) -> None:
        # Idempotent (no "already open" error when two tasks race to open the same store).
        self._is_open = True

    def _frozen_view(self) -> tuple[Any, str] | None:
        """``(storage, snapshot id)`` when the session is a read-only view of one snapshot.

        Such stores show exactly that snapshot, so two of them (e.g. a store and its
        unpickled copy) compare equal. Stores with staged changes compare by session identity.
        """
        session = self._session
        if not session.read_only or session.has_uncommitted_changes:
            return None
        return session._repo.storage, session.snapshot_id

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IcechunkStore):
            return False
        if other._session is self._session:
            return True
        mine = self._frozen_view()
        return mine is not None and mine == other._frozen_view()

    def __hash__(self) -> int:
        try:
            return hash(self._session._repo.storage)
        except TypeError:  # an unhashable storage: equal stores still hash equal
            return 0

    def __repr__(self) -> str:
        return f"<IcechunkStore read_only={self.read_only} session={self._session!r}>"

    def __getstate__(self) -> dict[str, Any]:
        return {"session": self._session, "read_only": self._read_only}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A writable (non-fork) session unpickles as a read-only view (see Session), so the
        # store copy is read-only too; its writes raise ReadOnlyError pointing to fork().
        self._session = state["session"]
        self._read_only = state["read_only"]
        self._is_open = False

    def with_read_only(self, read_only: bool = False) -> IcechunkStore[SessionT]:
        """A new (not yet open) store over the same session with the given flag.

        ``with_read_only(False)`` cannot make a read-only session writable: the new store
        still reports ``read_only`` and its writes raise :class:`ReadOnlyError`.
        """
        return IcechunkStore(self._session, read_only=read_only)

    def _check_writable(self) -> None:
        if not self.read_only:
            return
        reason = (
            "this store was opened read-only (zarr mode 'r' or `with_read_only(True)`) over a "
            "writable session; write through `session.store`"
        )
        kind = ErrorKind.READ_ONLY_STORE
        try:
            self._session._require_writable()
        except ReadOnlyError as e:
            reason, kind = e.message, e.kind
        raise _ReadOnlyStoreError(
            f"store was opened in read-only mode and does not support writing: {reason}", kind
        )

    # -- key parsing ----------------------------------------------------------------------

    def _parse(self, key: str) -> tuple[str, tuple[int, ...] | None]:
        """``(node path, None)`` for metadata keys, ``(array path, coords)`` for chunk keys."""
        if not key or key.startswith("/") or key.endswith("/"):
            raise _invalid_key(key)
        if any(ord(c) < 32 for c in key) or "\\" in key:
            raise _invalid_key(key, "control characters and backslashes are not allowed")
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise _invalid_key(key, "keys must be valid Unicode") from None
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
        if candidates and all(t.isdigit() and t.isascii() for t in segments[candidates[-1] + 1 :]):
            # well-formed chunk key of a node that does not exist (or is not an array)
            return _node_path(segments[: candidates[-1]]), tuple(
                int(t) for t in segments[candidates[-1] + 1 :]
            )
        raise _invalid_key(key)

    # -- reads ----------------------------------------------------------------------------

    async def get(
        self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        """The value at ``key`` (or the requested bytes of it), or ``None`` if there is none.

        Keys that are not valid Icechunk keys (zarr v2 probes such as ``.zgroup``) read as
        missing.
        """
        byte_request = _to_range(byte_range)
        try:
            path, coords = self._parse(key)
        except InvalidInputError:
            return None
        if coords is None:
            data = await self._session.get_metadata(path)
            if data is not None and byte_request is not None:
                start, end = resolve_byte_range(byte_request, len(data))
                data = data[start:end]
        else:
            data = await self._session.get_chunk(path, coords, byte_request)
        return None if data is None else prototype.buffer.from_bytes(data)

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> list[Buffer | None]:
        return list(await asyncio.gather(*(self.get(k, prototype, r) for k, r in key_ranges)))

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
        """Store ``value`` at ``key``: node metadata, or an encoded chunk.

        Chunk bytes are handed to the session without a copy (a 1 MiB copy costs more CPU
        than the rest of the write path); ``value`` is not kept after this returns.
        """
        self._check_writable()
        path, coords = self._parse(key)
        if coords is None:
            await self._session.set_metadata(path, value.to_bytes())
        else:
            await self._session.set_chunk(path, coords, _byte_view(value))

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
        """Delete every key under ``prefix`` (a directory: ``foo`` never touches ``foo-bar``).

        A node's path deletes the node and its descendants; a prefix inside an array's chunk
        space (``a/c``, ``a/c/1``) deletes those chunks; ``""`` deletes everything.
        """
        self._check_writable()
        prefix = prefix.strip("/")
        path = "/" + prefix if prefix else "/"
        if self._session.node_metadata(path) is not None:
            await self._session.delete_node(path)
            return
        keys = [k async for k in self.list_prefix(prefix + "/" if prefix else "")]
        # deleting a node deletes its descendants: delete outermost nodes first, then chunks
        for k in sorted(keys, key=lambda k: (not k.endswith("zarr.json"), k.count("/"), k)):
            await self.delete(k)

    async def set_partial_values(
        self, key_start_values: Iterable[tuple[str, int, bytes | bytearray | memoryview]]
    ) -> None:
        raise NotImplementedError("partial writes are not implemented by Icechunk")

    async def clear(self) -> None:
        """Delete every group and array of the session (the repository's history is kept)."""
        self._check_writable()
        for path, _ in self._session.list_nodes():
            if self._session.node_metadata(path) is not None:
                await self._session.delete_node(path)

    def sync_clear(self) -> None:
        """:meth:`clear`, blocking: delete every group and array of the session.

        The repository's history is kept; the deletions are uncommitted changes of the session.

        Raises
        ------
        ReadOnlyError
            The session is read-only.
        """
        sync(self.clear())

    def array_chunk_iterator(self, array_path: str, batch_size: int = 100_000) -> ChunkRefBatches:
        """Columnar batches of the chunk references of one array, as an async iterator.

        Each batch is a 6-tuple whose row ``i`` describes one initialized chunk:

        - ``coords``: ``uint32`` array ``(n, ndim)`` of chunk-grid coordinates,
        - ``kinds``: ``uint8`` array of :class:`~icechunk.ChunkType` values (native 1,
          virtual 2, inline 3),
        - ``paths``: ``list[str]``: the chunk id for native chunks, the absolute URL for virtual
          ones (``vcc://`` locations expanded by their container), ``""`` for inline ones,
        - ``offsets``, ``lengths``: ``uint64`` arrays (inline: offset 0, length of the bytes),
        - ``inlined``: ``dict[int, bytes]``: the bytes of the inline rows, keyed by row index.

        The session's uncommitted changes are included; chunks never written (or deleted) are
        not yielded. A path that is not an array yields nothing. The references are read when
        iteration starts; ``aclose()`` ends the iterator early.

        Parameters
        ----------
        array_path
            The array's path (``"a"`` or ``"/group/var"``).
        batch_size
            Most rows per batch (at least 1).
        """
        return chunk_ref_batches(self._session, array_path, batch_size)

    async def getsize_prefix(self, prefix: str) -> int:
        """Total size in bytes of the metadata and chunks under ``prefix``.

        Sums :meth:`getsize` over :meth:`list_prefix`: chunk sizes are the stored (encoded)
        sizes, virtual chunks count their referenced length.
        """
        total = 0
        async for key in self.list_prefix(prefix):
            total += await self.getsize(key)
        return total

    # -- listing --------------------------------------------------------------------------

    async def _keys(self, prefix: str = "") -> AsyncIterator[str]:
        """Every key starting with ``prefix`` (a plain string prefix), node by node."""
        for path, is_array in self._session.list_nodes():
            key = _node_key(path)
            if key.startswith(prefix):
                yield key
            if not is_array:
                continue
            chunk_head = _chunk_key(path, ())  # every chunk key of this array starts with it
            if not (chunk_head.startswith(prefix) or prefix.startswith(chunk_head)):
                continue
            for coords in await self._session.list_chunks(path):
                chunk = _chunk_key(path, coords)
                if chunk.startswith(prefix):
                    yield chunk

    async def list(self) -> AsyncIterator[str]:
        async for key in self._keys():
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        # Directory semantics, as the real Icechunk: "z" lists what is under "z/" (not the
        # root's "zarr.json"), and "/" is the root.
        if prefix == "/":
            prefix = ""
        elif prefix and not prefix.endswith("/"):
            prefix += "/"
        async for key in self._keys(prefix):
            yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        prefix = prefix.rstrip("/")
        head = prefix + "/" if prefix else ""
        seen: set[str] = set()
        async for key in self._keys(head):
            child = key[len(head) :].split("/", 1)[0]
            if child and child not in seen:
                seen.add(child)
                yield child

    async def is_empty(self, prefix: str) -> bool:
        """Whether no key lives under the directory ``prefix`` (``"fo"`` does not see ``foo/``)."""
        prefix = prefix.strip("/")
        async for _ in self._keys(prefix + "/" if prefix else ""):
            return False
        return True

    # -- virtual references -----------------------------------------------------------------

    async def set_virtual_ref_async(
        self,
        key: str,
        location: str,
        *,
        offset: int,
        length: int,
        checksum: str | datetime | None = None,
        validate_container: bool = True,
    ) -> None:
        """Make the chunk at ``key`` (``array/c/0/1``) point to bytes of an external object.

        ``checksum`` is the object's ETag or a timezone-aware last-modified time: reads fail
        with :class:`~icechunk.virtual.VirtualChunkModifiedError` if the object changes.

        Raises
        ------
        InvalidInputError
            Not a chunk key, chunk outside the grid, bad offset/length/URL/checksum, or (with
            ``validate_container``) no virtual chunk container matches ``location``.
        """
        self._check_writable()
        path, coords = self._parse(key)
        if coords is None:
            raise _invalid_key(key, "virtual references are set on chunk keys")
        columns = single_ref_columns(coords, location, offset, length, checksum)
        failed = await self._session.set_virtual_refs_columns(
            path, *columns, validate_containers=validate_container
        )
        if failed:
            raise no_container_error(location)

    def set_virtual_ref(
        self,
        key: str,
        location: str,
        *,
        offset: int,
        length: int,
        checksum: str | datetime | None = None,
        validate_container: bool = True,
    ) -> None:
        """Synchronous :meth:`set_virtual_ref_async`."""
        sync(
            self.set_virtual_ref_async(
                key,
                location,
                offset=offset,
                length=length,
                checksum=checksum,
                validate_container=validate_container,
            )
        )

    async def set_virtual_refs_async(
        self,
        array_path: str,
        chunks: Sequence[VirtualChunkSpec],
        *,
        validate_containers: bool = True,
    ) -> builtins.list[tuple[int, ...]] | None:
        """Set many virtual references of the array at ``array_path``.

        Returns
        -------
        list[tuple[int, ...]] | None
            ``None`` when every reference was staged; otherwise the chunk indices refused
            because no virtual chunk container matches their location (the others are staged).

        Raises
        ------
        InvalidInputError
            A chunk outside the grid or a malformed reference: nothing is staged.
        """
        self._check_writable()
        columns = spec_columns(chunks)
        failed = await self._session.set_virtual_refs_columns(
            array_path, *columns, validate_containers=validate_containers
        )
        return [tuple(chunks[i].index) for i in failed] or None

    def set_virtual_refs(
        self,
        array_path: str,
        chunks: Sequence[VirtualChunkSpec],
        *,
        validate_containers: bool = True,
    ) -> builtins.list[tuple[int, ...]] | None:
        """Synchronous :meth:`set_virtual_refs_async`."""
        return sync(
            self.set_virtual_refs_async(array_path, chunks, validate_containers=validate_containers)
        )

    async def set_virtual_refs_arr_async(
        self,
        array_path: str,
        chunk_grid_shape: tuple[int, ...],
        locations: Sequence[str],
        offsets: Any,
        lengths: Any,
        *,
        validate_containers: bool = True,
        arr_offset: tuple[int, ...] | None = None,
        checksum: datetime | str | None = None,
    ) -> builtins.list[tuple[int, ...]] | None:
        """Set virtual references from flat columns, one entry per chunk of a block.

        Entry ``i`` of ``locations``/``offsets``/``lengths`` is the chunk at the C-order
        position ``i`` of a block of ``chunk_grid_shape`` chunks, placed at ``arr_offset``
        (chunk coordinates, default the origin). Empty locations are skipped. ``checksum``
        applies to every reference.

        Returns
        -------
        list[tuple[int, ...]] | None
            As :meth:`set_virtual_refs_async`.
        """
        self._check_writable()
        coords, locs, offs, lens, etags, modified = grid_columns(
            chunk_grid_shape, locations, offsets, lengths, arr_offset, checksum
        )
        failed = await self._session.set_virtual_refs_columns(
            array_path,
            coords,
            locs,
            offs,
            lens,
            etags,
            modified,
            validate_containers=validate_containers,
        )
        return [tuple(coords[i].tolist()) for i in failed] or None

    def set_virtual_refs_arr(
        self,
        array_path: str,
        chunk_grid_shape: tuple[int, ...],
        locations: Sequence[str],
        offsets: Any,
        lengths: Any,
        *,
        validate_containers: bool = True,
        arr_offset: tuple[int, ...] | None = None,
        checksum: datetime | str | None = None,
    ) -> builtins.list[tuple[int, ...]] | None:
        """Synchronous :meth:`set_virtual_refs_arr_async`."""
        return sync(
            self.set_virtual_refs_arr_async(
                array_path,
                chunk_grid_shape,
                locations,
                offsets,
                lengths,
                validate_containers=validate_containers,
                arr_offset=arr_offset,
                checksum=checksum,
            )
        )
