"""Session methods for chunks: reads, writes, virtual references, chunk listings.

Part of :class:`icechunk.session.Session` (a base class of it).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any, cast

import numpy as np

from icechunk._core.change_set import (
    ChunkPayload,
    InlinePayload,
    NativePayload,
)
from icechunk._core.tree import Node
from icechunk._core.virtual_refs import plan_virtual_refs
from icechunk._session_base import (
    _BULK_MIN_REFS,
    ChunkType,
    SessionBase,
    _normalize_path,
)
from icechunk._sync import sync, sync_twin
from icechunk.errors import (
    ErrorKind,
    InvalidInputError,
)
from icechunk.format import layout
from icechunk.format.ids import new_id12
from icechunk.format.model import (
    NodeSnapshot,
)
from icechunk.storage.base import ByteRange


class SessionChunkMethods(SessionBase):
    """The chunk methods of :class:`Session`."""

    # -- chunk reads ----------------------------------------------------------------------

    def _staged_payload(
        self, node_id: bytes, coords: tuple[int, ...]
    ) -> tuple[bool, ChunkPayload | None]:
        for cs in self._layers():
            writes = cs.chunks.get(node_id)
            if writes is not None and coords in writes:
                return True, writes[coords]
        return False, None

    async def _base_payload(
        self, node: NodeSnapshot, coords: tuple[int, ...]
    ) -> ChunkPayload | None:
        assert node.array is not None
        for mref in node.array.manifests:
            if all(lo <= c < hi for c, (lo, hi) in zip(coords, mref.extents, strict=False)):
                payload = await self._repo._objects.manifest_ref(
                    mref.object_id, node.id, self._tree.manifest_files.get(mref.object_id), coords
                )
                if payload is not None:
                    return payload
        return None

    async def _payload(self, node: Node, coords: tuple[int, ...]) -> ChunkPayload | None:
        found, payload = self._staged_payload(node.node_id, coords)
        if found:
            return payload
        if node.base is None or node.base.array is None:
            return None
        return await self._base_payload(node.base, coords)

    async def get_chunk(
        self, path: str, coords: tuple[int, ...], byte_range: ByteRange | None = None
    ) -> bytes | None:
        """The encoded chunk bytes (or a range of them), or ``None`` if never written."""
        node = self._node(path)
        if node is None or not node.meta.is_array:
            return None
        payload = await self._payload(node, coords)
        if payload is None:
            return None
        return await self._repo._objects.fetch_payload(payload, byte_range)

    async def chunk_exists(self, path: str, coords: tuple[int, ...]) -> bool:
        """Whether chunk ``coords`` of the array at ``path`` is initialized (staged or stored)."""
        node = self._node(path)
        if node is None or not node.meta.is_array:
            return False
        return await self._payload(node, coords) is not None

    async def chunk_type_async(
        self, array_path: str, chunk_coordinates: Iterable[int]
    ) -> ChunkType:
        """Whether the chunk is uninitialized, or stored natively, virtually or inline."""
        node = self._node(_normalize_path(array_path))
        if node is None or not node.meta.is_array:
            return ChunkType.uninitialized
        payload = await self._payload(node, tuple(int(c) for c in chunk_coordinates))
        if payload is None:
            return ChunkType.uninitialized
        if isinstance(payload, NativePayload):
            return ChunkType.native
        if isinstance(payload, InlinePayload):
            return ChunkType.inline
        return ChunkType.virtual

    chunk_type = sync_twin(chunk_type_async)

    async def chunk_size(self, path: str, coords: tuple[int, ...]) -> int | None:
        """The stored size in bytes of chunk ``coords`` of the array at ``path``; ``None`` if
        the chunk is uninitialized or ``path`` is not an array."""
        node = self._node(path)
        if node is None or not node.meta.is_array:
            return None
        payload = await self._payload(node, coords)
        if payload is None:
            return None
        if isinstance(payload, InlinePayload):
            return len(payload.data)
        return payload.length

    async def list_chunks(self, path: str) -> list[tuple[int, ...]]:
        """Coordinates of every initialized chunk of the array at ``path``, sorted."""
        node = self._node(path)
        if node is None or not node.meta.is_array:
            return []
        return await self._chunks_of(node, node.meta.num_chunks)

    async def chunk_payloads(
        self, array_path: str, coords: list[tuple[int, ...]]
    ) -> list[ChunkPayload | None]:
        """Where each chunk of ``coords`` of the array at ``array_path`` lives (staged or
        stored); ``None`` for an uninitialized chunk, or for every chunk when there is no
        array there. What :meth:`IcechunkStore.array_chunk_iterator` reports."""
        node = self._node(_normalize_path(array_path))
        if node is None or not node.meta.is_array:
            return [None] * len(coords)
        return [await self._payload(node, c) for c in coords]

    async def _chunks_of(self, node: Node, bounds: tuple[int, ...]) -> list[tuple[int, ...]]:
        coords: set[tuple[int, ...]] = set()
        if node.base is not None and node.base.array is not None:
            for mref in node.base.array.manifests:
                index = await self._repo._objects.manifest_index(
                    mref.object_id, node.node_id, self._tree.manifest_files.get(mref.object_id)
                )
                if index is not None:
                    coords.update(map(tuple, index.refs.coords.tolist()))
        for cs in reversed(self._layers()):
            for c, payload in cs.chunks.get(node.node_id, {}).items():
                if payload is None:
                    coords.discard(c)
                else:
                    coords.add(c)
        return sorted(c for c in coords if all(x < b for x, b in zip(c, bounds, strict=False)))

    def _array_for_write(self, path: str, coords: tuple[int, ...]) -> Node:
        node = self._node(path)
        if node is None or not node.meta.is_array:
            raise InvalidInputError(
                f"invalid chunk write: there is no array at `{path}`", ErrorKind.INVALID_KEY
            )
        bounds = node.meta.num_chunks
        if len(coords) != len(bounds) or any(
            c < 0 or c >= b for c, b in zip(coords, bounds, strict=False)
        ):
            raise InvalidInputError(
                f"invalid chunk index {list(coords)} for array `{path}` with "
                f"{list(bounds)} chunks per dimension",
                ErrorKind.INVALID_CHUNK_INDEX,
            )
        return node

    async def set_chunk(self, path: str, coords: tuple[int, ...], data: bytes | memoryview) -> None:
        """Stage encoded chunk bytes; uploads them now unless they are small enough to inline.

        ``data`` may be a flat byte ``memoryview``: it is uploaded without a copy (inline
        chunks are copied), so it must not change until this returns, and is not kept.
        """
        self._require_writable()
        raw: object = coords  # callers outside the type checker pass anything
        if not isinstance(raw, tuple) or not (
            all(type(c) is int for c in raw)  # the usual case, fast
            or all(isinstance(c, numbers.Integral) and not isinstance(c, bool) for c in raw)
        ):
            raise InvalidInputError(
                f"invalid chunk index {coords!r} for `{path}`: expected a tuple of integers",
                ErrorKind.INVALID_CHUNK_INDEX,
            )
        coords = tuple(int(c) for c in coords)
        node = self._array_for_write(path, coords)
        if len(data) == 0:
            raise InvalidInputError(
                f"refusing to write a zero-length chunk at `{path}` {list(coords)}",
                ErrorKind.ZERO_LENGTH_CHUNK,
            )
        if len(data) <= self._repo.config.effective_inline_chunk_threshold_bytes:
            self._changes.set_inline(node.node_id, coords, bytes(data))
            return
        chunk_id = new_id12()
        # Every storage's put takes any flat bytes-like object (the in-memory and object
        # stores copy what is not ``bytes``; local storage writes it as is): no copy here.
        await self._repo.storage.put(layout.chunk_key(chunk_id), cast("bytes", data))
        self._changes.set_native(node.node_id, coords, chunk_id, len(data))

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
    ) -> list[int]:
        """Stage virtual chunk references for the array at ``path`` (columns of equal length).

        ``coords`` is an ``(n, ndim)`` integer array; ``offsets``, ``lengths`` and
        ``last_modified`` (seconds, 0 for none) integer arrays. See
        :func:`icechunk._core.virtual_refs.plan_virtual_refs` for the checks: any bad reference
        raises :class:`~icechunk.errors.InvalidInputError` and stages nothing. References are
        staged in bulk (``ChangeSet.set_chunk_refs``); of several with the same coordinates
        the last one wins.

        Returns
        -------
        list[int]
            Positions refused because no virtual chunk container matches their location (only
            with ``validate_containers``); every other reference is staged.
        """
        self._require_writable()
        node = self._node(_normalize_path(path))
        if node is None or not node.meta.is_array:
            raise InvalidInputError(
                f"cannot set virtual references: there is no array at `{path}`",
                ErrorKind.INVALID_KEY,
            )
        refs, failed = plan_virtual_refs(
            self._repo._objects,
            node.path,
            node.meta.num_chunks,
            coords,
            locations,
            offsets,
            lengths,
            etags,
            last_modified,
            validate_containers=validate_containers,
        )
        if len(refs) >= _BULK_MIN_REFS:
            # staged columnar: no Python object per reference, and validated as a whole
            self._changes.set_chunk_refs(node.node_id, refs)
        else:
            # a few refs (set_virtual_ref in a loop): merging each into the bulk columns
            # would cost O(staged) per call, so they are staged one by one
            from icechunk._core.chunk_refs import payload_at

            for i, row in enumerate(refs.coords.tolist()):
                self._changes.set_chunk(node.node_id, tuple(row), payload_at(refs, i))
        return failed

    async def delete_chunk(self, path: str, coords: tuple[int, ...]) -> None:
        """Stage the deletion of chunk ``coords``; outside the chunk grid it does nothing.

        Raises
        ------
        ReadOnlyError
            The session is read-only.
        """
        self._require_writable()
        node = self._node(path)
        if node is None or not node.meta.is_array:
            return
        bounds = node.meta.num_chunks
        if len(coords) != len(bounds) or any(c >= b for c, b in zip(coords, bounds, strict=False)):
            return  # out-of-grid deletes are no-ops (icechunk 2.3 behaviour)
        self._changes.set_chunk(node.node_id, coords, None)

    # -- async twins needed by integrations ------------------------------------------------

    async def all_virtual_chunk_locations_async(self) -> list[str]:
        """Every distinct URL the virtual chunks of this session point to, sorted.

        Reads each array's manifests once and applies the staged changes, all columnar (no
        Python object per reference, so millions of references take a fraction of a second).
        """
        from icechunk._core.chunk_refs import pick, rows_in
        from icechunk._core.staged_changes import staged_columns
        from icechunk.format.model import ChunkKind

        out: set[str | None] = set()
        for path, is_array in self.list_nodes():
            if not is_array:
                continue
            node = self._node(path)
            assert node is not None
            bounds = node.meta.num_chunks
            ndim = len(bounds)
            # the staged layers, top-most first: a coordinate counts in the first that has it
            staged = np.zeros((0, ndim), dtype=np.uint32)
            for cs in self._layers():
                writes = cs.chunks.get(node.node_id)
                if not writes:
                    continue
                coords, refs = staged_columns(writes, ndim)
                if refs.location:
                    keep = (refs.kind == ChunkKind.VIRTUAL) & ~rows_in(refs.coords, staged)
                    out.update(pick(refs.location, np.flatnonzero(keep)))
                staged = np.concatenate([staged, coords])
            if node.base is None or node.base.array is None:
                continue
            for mref in node.base.array.manifests:
                index = await self._repo._objects.manifest_index(
                    mref.object_id, node.node_id, self._tree.manifest_files.get(mref.object_id)
                )
                if index is None or not index.refs.location:
                    continue
                refs = index.refs
                keep = refs.kind == ChunkKind.VIRTUAL
                if ndim:
                    keep &= (refs.coords < np.asarray(bounds, dtype=np.uint64)).all(axis=1)
                if len(staged):
                    keep &= ~rows_in(refs.coords, staged)
                out.update(pick(refs.location, np.flatnonzero(keep)))
        out.discard(None)
        from icechunk.virtual import absolute_locations

        return sorted(
            absolute_locations(self._repo.config, {loc for loc in out if loc is not None})
        )

    all_virtual_chunk_locations = sync_twin(all_virtual_chunk_locations_async)

    def chunk_coordinates(
        self, array_path: str, batch_size: int = 1000
    ) -> Iterable[tuple[int, ...]]:
        """Coordinates of every initialized chunk of the array at ``array_path``, sorted."""
        return sync(self.list_chunks(_normalize_path(array_path)))
