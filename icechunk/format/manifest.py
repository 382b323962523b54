"""Chunk manifests (``manifests/<id>``, file type 2), spec 1 and spec 2, vectorised with numpy.

Flatbuffer slots::

    Manifest       0 id  1 arrays  2 location_dictionary (v2)  3 compression_algorithm (v2,
                   default 1)  4 extra
    ArrayManifest  0 node_id  1 refs  2 extra
    ChunkRef       0 index  1 inline  2 offset  3 length  4 chunk_id  5 location
                   6 checksum_etag  7 checksum_last_modified  8 compressed_location (v2)  9 extra

Encoding. Each array's refs vector and ChunkRef tables are laid out by numpy as one
position-independent block; the few outer tables are written around the blocks front to back
(see ``_assemble``), so no per-ref builder call and no extra copy is needed. Every ref gets a table whose layout depends only on which fields it has (its *code*),
so all refs of one code share one vtable and fixed field positions; fixed-size fields are
scattered with numpy, and only variable-length children (inline bytes, URLs, etags) are copied
one by one. A record is::

    table (8-aligned): soffset, index uoffset, [length u64, offset u64], [uoffsets of inline /
                       location / etag], [last_modified u32], [chunk_id 12 bytes], padding
    index vector:      u32 ndim, ndim x u32
    variable children: inline bytes / location string / etag string, each 4-aligned

A native ref of a 2-d array is therefore 48 bytes. Offsets equal to 0 are omitted, as real
Icechunk does.

Virtual locations. Spec 2 writes ``compression_algorithm = 0`` explicitly and plain ``location``
strings, unless :class:`LocationCompression` says to compress: then a zstd dictionary trained
on a sample of the manifest's locations goes to ``location_dictionary``, every virtual ref gets
its URL as one zstd frame (made with that dictionary) in ``compressed_location`` instead of
``location``, and ``compression_algorithm`` is omitted (its schema default, 1, means zstd with
a dictionary), as the real Icechunk writes it.

Decoding reads all ChunkRef tables of an array column-wise with
:class:`~icechunk.format.flatbuf.TableColumns`, whatever their vtables; dictionary-compressed
virtual locations are decompressed with the manifest's zstd dictionary.
:class:`ManifestView` opens a manifest without decoding its refs and finds single refs by
binary search (refs are sorted by coordinates), for reads that need only a few chunks.
"""

from __future__ import annotations

from icechunk.format._manifest_common import ascending_rows
from icechunk.format._manifest_decode import ManifestView, decode_manifest
from icechunk.format._manifest_encode import LocationCompression, checked_refs, encode_manifest

__all__ = [
    "LocationCompression",
    "ManifestView",
    "ascending_rows",
    "checked_refs",
    "decode_manifest",
    "encode_manifest",
]
