"""The 39-byte header of binary metadata objects and the zstd framing of their payload.

Layout (all four binary object kinds: snapshot, manifest, transaction log, repo info)::

    offset  len  field
    0       12   magic, the UTF-8 of "ICE🧊CHUNK"
    12      24   implementation name, ASCII, right-padded with spaces (ignored by readers)
    36      1    spec version: 1 or 2
    37      1    file type (see FileType)
    38      1    compression: 1 = zstd (the only value real Icechunk 2.x accepts)
    39      ...  one zstd frame holding one flatbuffer

Real Icechunk 1.x writes zstd frames without a content size (streaming encoder), 2.x with one;
:func:`decompress` accepts both and bounds the output size so a corrupt or hostile object cannot
exhaust memory.
"""

from __future__ import annotations

import threading
from typing import Final

import zstandard

from icechunk.errors import ErrorKind, FormatError, InvalidInputError
from icechunk.format.model import FileType

__all__ = [
    "COMPRESSION_ZSTD",
    "DEFAULT_COMPRESSION_LEVEL",
    "HEADER_SIZE",
    "IMPL_NAME",
    "MAGIC",
    "MAX_DECOMPRESSED_SIZE",
    "SPEC_VERSIONS",
    "compress",
    "decode_object",
    "decompress",
    "encode_object",
    "make_header",
]

MAGIC: Final = "ICE🧊CHUNK".encode()
"""The 12 magic bytes every binary object starts with."""
HEADER_SIZE: Final = 39
IMPL_NAME: Final = "ic-py-0.1.0"
"""Written at offset 12; readers ignore it."""
SPEC_VERSIONS: Final = (1, 2)
COMPRESSION_ZSTD: Final = 1
DEFAULT_COMPRESSION_LEVEL: Final = 3
MAX_DECOMPRESSED_SIZE: Final = 2 * 1024**3
"""Largest payload accepted, like the real verifier's 2 GiB apparent-size limit."""

_IMPL_FIELD: Final = IMPL_NAME.encode("ascii").ljust(24, b" ")
_RLE_RATIO: Final = 1 << 15
_COMPRESSORS: Final = threading.local()
"""Upper bound of zstd's expansion per input byte (a 4-byte RLE block yields 128 KiB)."""
_FILE_TYPE_NAMES: Final = {t.value: t.name.lower().replace("_", " ") for t in FileType}


def make_header(file_type: FileType, spec_version: int) -> bytes:
    """The 39 header bytes for a ``file_type`` object of ``spec_version``.

    Raises
    ------
    InvalidInputError
        ``spec_version`` is not 1 or 2.
    """
    if spec_version not in SPEC_VERSIONS:
        raise InvalidInputError(
            f"cannot write spec version {spec_version!r}: supported versions are 1 and 2",
            ErrorKind.UNSUPPORTED_SPEC_VERSION,
        )
    return MAGIC + _IMPL_FIELD + bytes((spec_version, int(file_type), COMPRESSION_ZSTD))


def compress(
    payload: bytes | bytearray | memoryview, level: int = DEFAULT_COMPRESSION_LEVEL
) -> bytes:
    """One zstd frame of ``payload``, with its content size recorded in the frame header."""
    threads = -1 if len(payload) >= 8 << 20 else 0
    if threads:
        return _compressor(level, threads).compress(payload)
    # one compressor per thread and level: creating one costs more than compressing a
    # small object (a compressor must not be used by two threads at once)
    cache: dict[int, zstandard.ZstdCompressor] = _COMPRESSORS.__dict__.setdefault("by_level", {})
    cctx = cache.get(level)
    if cctx is None:
        cctx = cache[level] = _compressor(level, 0)
    return cctx.compress(payload)


def _compressor(level: int, threads: int) -> zstandard.ZstdCompressor:
    # the frame checksum makes readers detect corrupted metadata instead of decoding it
    return zstandard.ZstdCompressor(
        level=level, write_content_size=True, write_checksum=True, threads=threads
    )


def decompress(
    frame: bytes | memoryview,
    name: str,
    max_size: int = MAX_DECOMPRESSED_SIZE,
    dctx: zstandard.ZstdDecompressor | None = None,
) -> bytes:
    """Decompress exactly one zstd frame, with or without a recorded content size.

    Parameters
    ----------
    frame
        The compressed bytes; must hold one complete frame and nothing after it.
    name
        The object key, used in error messages.
    max_size
        Largest output accepted. Decompression stops (with an error) soon after the output
        exceeds it, so memory use stays bounded whatever the input.
    dctx
        A decompressor to use (e.g. one holding a dictionary); a fresh one by default.

    Raises
    ------
    FormatError
        The data is not a complete zstd frame, is followed by other bytes, disagrees with its
        recorded content size, or decompresses to more than ``max_size`` bytes.
    """
    view = memoryview(frame)
    try:
        params = zstandard.get_frame_parameters(view)
    except zstandard.ZstdError as e:
        raise FormatError(f"corrupt object `{name}`: invalid zstd frame ({e})") from None
    declared = params.content_size
    if declared != zstandard.CONTENTSIZE_UNKNOWN and declared > max_size:
        raise FormatError(
            f"corrupt object `{name}`: zstd frame declares {declared} bytes, "
            f"more than the limit of {max_size}"
        )
    if declared != zstandard.CONTENTSIZE_UNKNOWN and declared <= len(view) * _RLE_RATIO:
        # (a larger declared size cannot be genuine: the streaming path below reports it)
        return _decompress_sized(view, name, declared, dctx)
    dobj = (dctx or zstandard.ZstdDecompressor()).decompressobj()
    parts: list[bytes] = []
    total = 0
    pos = 0
    try:
        while pos < len(view) and not dobj.eof:
            # feed small enough pieces that one call cannot overshoot the limit by much
            step = max(4096, min(1 << 22, (max_size - total) // _RLE_RATIO))
            out = dobj.decompress(view[pos : pos + step])
            pos += step
            if out:
                total += len(out)
                if total > max_size:
                    raise FormatError(
                        f"corrupt object `{name}`: payload decompresses to more than "
                        f"{max_size} bytes"
                    )
                parts.append(out)
    except zstandard.ZstdError as e:
        raise FormatError(f"corrupt object `{name}`: invalid zstd data ({e})") from None
    if not dobj.eof:
        raise FormatError(f"corrupt object `{name}`: truncated zstd frame")
    if dobj.unused_data or pos < len(view):
        raise FormatError(f"corrupt object `{name}`: unexpected bytes after the zstd frame")
    if declared != zstandard.CONTENTSIZE_UNKNOWN and declared != total:
        raise FormatError(
            f"corrupt object `{name}`: zstd frame declares {declared} bytes but holds {total}"
        )
    return parts[0] if len(parts) == 1 else b"".join(parts)


def encode_object(
    payload: bytes | bytearray | memoryview,
    file_type: FileType,
    spec_version: int,
    level: int = DEFAULT_COMPRESSION_LEVEL,
) -> bytes:
    """Header plus the zstd-compressed ``payload``: the complete bytes of an object."""
    return make_header(file_type, spec_version) + compress(payload, level)


def decode_object(
    data: bytes | bytearray | memoryview,
    name: str,
    file_type: FileType,
    spec_versions: tuple[int, ...] = SPEC_VERSIONS,
    max_size: int = MAX_DECOMPRESSED_SIZE,
) -> tuple[int, bytes]:
    """Check the header of an object and decompress its payload.

    Parameters
    ----------
    data
        The complete object bytes.
    name
        The object key, used in error messages.
    file_type
        The kind of object expected at ``name``.
    spec_versions
        Spec versions accepted for this object kind.
    max_size
        Largest decompressed payload accepted.

    Returns
    -------
    tuple[int, bytes]
        The spec version from the header and the decompressed payload.

    Raises
    ------
    FormatError
        Wrong magic, file type, spec version or compression byte; a truncated header; or a
        payload that is not a single valid zstd frame.
    """
    view = memoryview(data)
    what = _FILE_TYPE_NAMES.get(int(file_type), "object")
    if len(view) < HEADER_SIZE:
        raise FormatError(
            f"corrupt {what} `{name}`: {len(view)} bytes is too short for the "
            f"{HEADER_SIZE}-byte header"
        )
    if view[:12] != MAGIC:
        raise FormatError(f"corrupt {what} `{name}`: not an Icechunk object (bad magic bytes)")
    spec, ftype, comp = view[36], view[37], view[38]
    if ftype != int(file_type):
        found = _FILE_TYPE_NAMES.get(ftype, f"unknown type {ftype}")
        raise FormatError(
            f"corrupt {what} `{name}`: header says file type {ftype} ({found}), "
            f"expected {int(file_type)} ({what})"
        )
    if spec not in spec_versions:
        raise FormatError(
            f"{what} `{name}` has unsupported spec version {spec} "
            f"(supported: {', '.join(map(str, spec_versions))})",
            ErrorKind.FORMAT,
        )
    if comp != COMPRESSION_ZSTD:
        raise FormatError(
            f"corrupt {what} `{name}`: unsupported compression {comp} (only 1, zstd, is valid)"
        )
    return spec, decompress(view[HEADER_SIZE:], name, max_size)


def _decompress_sized(
    view: memoryview, name: str, declared: int, dctx: zstandard.ZstdDecompressor | None
) -> bytes:
    """Decompress a frame that records its content size (already checked against the limit).

    One call into zstd: the output buffer is exactly ``declared`` bytes, zstd refuses a frame
    whose content does not match it, and bytes after the frame are refused; so memory stays
    bounded by the declared size (itself checked against the limit by the caller).
    """
    try:
        out = (dctx or zstandard.ZstdDecompressor()).decompress(
            view, max_output_size=declared, allow_extra_data=False
        )
    except zstandard.ZstdError as e:
        if "unused data" in str(e):
            detail = "unexpected bytes after the zstd frame"
        elif "full frame" in str(e):
            detail = "truncated zstd frame"
        else:
            detail = f"invalid zstd data ({e})"
        raise FormatError(f"corrupt object `{name}`: {detail}") from None
    if len(out) != declared:
        raise FormatError(
            f"corrupt object `{name}`: zstd frame declares {declared} bytes but holds {len(out)}"
        )
    return out
