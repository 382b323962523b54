"""Reading virtual chunks: bytes inside objects that live outside the repository."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from icechunk.errors import ErrorKind, InvalidInputError, StorageError

if TYPE_CHECKING:
    from icechunk.change_set import VirtualPayload
    from icechunk.repository import Repository

__all__ = ["fetch_virtual"]


async def fetch_virtual(repo: Repository, payload: VirtualPayload, start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of a virtual chunk (relative to the chunk's own offset)."""
    url = urlparse(payload.location)
    if url.scheme != "file":
        raise InvalidInputError(
            f"reading virtual chunks from `{url.scheme}://` locations is not supported yet "
            f"({payload.location})",
            ErrorKind.INVALID_ARGUMENT,
        )
    path = unquote(url.path)

    def read() -> bytes:
        with open(path, "rb") as f:
            f.seek(payload.offset + start)
            return f.read(end - start)

    try:
        return await asyncio.to_thread(read)
    except OSError as e:
        raise StorageError(f"cannot read virtual chunk at {payload.location}: {e}") from e
