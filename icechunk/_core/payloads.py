"""Where a chunk's bytes are: in a chunk object, inline in the manifest, or in a virtual file."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ChunkPayload", "InlinePayload", "NativePayload", "VirtualPayload"]


@dataclass(frozen=True, slots=True)
class NativePayload:
    """A chunk stored in ``chunks/<chunk_id>``, bytes ``[offset, offset + length)``."""

    chunk_id: bytes
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class InlinePayload:
    """A small chunk kept in the manifest itself."""

    data: bytes


@dataclass(frozen=True, slots=True)
class VirtualPayload:
    """A chunk inside an external object (``s3://``, ``file://``, ``http(s)://`` ...)."""

    location: str
    offset: int
    length: int
    checksum_etag: str | None = None
    checksum_last_modified: int = 0
    """Seconds since the epoch; 0 means no checksum."""


type ChunkPayload = NativePayload | InlinePayload | VirtualPayload
