"""The chunk-reference iterator behind :meth:`IcechunkStore.array_chunk_iterator`.

:class:`ChunkRefBatches` (re-exported by :mod:`icechunk.store`) and the generator that reads one
array's chunk references, in columnar batches, from the session a store wraps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

from icechunk.errors import ErrorKind, InvalidInputError

if TYPE_CHECKING:
    from icechunk._core.change_set import ChunkPayload
    from icechunk._core.zarr_metadata import NodeMetadata

__all__ = ["ChunkRefBatches", "chunk_ref_batches"]


class ChunkRefSource(Protocol):
    """What the iterator reads from: the parts of a store's session it uses."""

    def node_metadata(self, path: str) -> NodeMetadata | None: ...

    async def list_chunks(self, path: str) -> list[tuple[int, ...]]: ...

    async def chunk_payloads(
        self, array_path: str, coords: list[tuple[int, ...]]
    ) -> list[ChunkPayload | None]: ...

    @property
    def config(self) -> Any: ...


class ChunkRefBatches(AsyncIterator[tuple[Any, ...]]):
    """The async iterator :meth:`IcechunkStore.array_chunk_iterator` returns.

    ``async for batch in it`` iterates; ``await it.aclose()`` ends it early. Once exhausted or
    closed, ``__anext__`` raises ``StopAsyncIteration``.
    """

    def __init__(self, batches: AsyncIterator[tuple[Any, ...]]) -> None:
        self._batches = batches
        self._closed = False

    def __aiter__(self) -> ChunkRefBatches:
        return self

    async def __anext__(self) -> tuple[Any, ...]:
        if self._closed:
            raise StopAsyncIteration("The iterator is exhausted")
        try:
            return await anext(self._batches)
        except StopAsyncIteration:
            self._closed = True
            raise StopAsyncIteration("The iterator is exhausted") from None

    async def aclose(self) -> None:
        self._closed = True
        close = getattr(self._batches, "aclose", None)
        if close is not None:
            await close()


def chunk_ref_batches(
    session: ChunkRefSource, array_path: str, batch_size: object
) -> ChunkRefBatches:
    """The :class:`ChunkRefBatches` of ``array_path`` in ``session`` (``batch_size`` checked).

    Raises
    ------
    InvalidInputError
        ``batch_size`` is not a positive integer.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(
            f"batch_size must be a positive integer, got {batch_size!r}",
            ErrorKind.INVALID_ARGUMENT,
        )
    return ChunkRefBatches(_batches(session, array_path, batch_size))


async def _batches(
    session: ChunkRefSource, array_path: str, batch_size: int
) -> AsyncIterator[tuple[Any, ...]]:
    import numpy as np

    from icechunk.change_set import InlinePayload, NativePayload
    from icechunk.format.ids import encode_id
    from icechunk.virtual import absolute_locations

    path = "/" + array_path.strip("/") if array_path.strip("/") else "/"
    meta = session.node_metadata(path)
    if meta is None or not meta.is_array:
        return
    ndim = meta.ndim
    coords = await session.list_chunks(path)
    for start in range(0, len(coords), batch_size):
        part = coords[start : start + batch_size]
        payloads = await session.chunk_payloads(path, part)
        kinds: list[int] = []
        paths: list[str] = []
        offsets: list[int] = []
        lengths: list[int] = []
        inlined: dict[int, bytes] = {}
        for row, payload in enumerate(payloads):
            assert payload is not None  # list_chunks lists initialized chunks only
            if isinstance(payload, InlinePayload):
                kinds.append(3)
                paths.append("")
                offsets.append(0)
                lengths.append(len(payload.data))
                inlined[row] = bytes(payload.data)
            elif isinstance(payload, NativePayload):
                kinds.append(1)
                paths.append(encode_id(payload.chunk_id))
                offsets.append(payload.offset)
                lengths.append(payload.length)
            else:
                kinds.append(2)
                (location,) = absolute_locations(session.config, [payload.location])
                paths.append(location)
                offsets.append(payload.offset)
                lengths.append(payload.length)
        yield (
            np.asarray(part, dtype=np.uint32).reshape(len(part), ndim),
            np.asarray(kinds, dtype=np.uint8),
            paths,
            np.asarray(offsets, dtype=np.uint64),
            np.asarray(lengths, dtype=np.uint64),
            inlined,
        )
