"""The manifests of a commit: which to keep, which to write, and their extents.

At commit (and in :meth:`Repository.rewrite_manifests`) every array with chunk changes gets its
chunk references laid out in manifests according to the repository's
:class:`~icechunk.config.ManifestSplittingConfig`:

* A *split* is a box of chunk indices. Along a dimension with split size ``s`` (a number of
  chunks) the boxes are ``[k*s, (k+1)*s)``, fixed multiples of ``s`` counted from chunk 0; a
  dimension without a split size is one box. The first array condition of the config that
  matches the array decides the sizes (see ``ManifestSplittingConfig.split_sizes_for``).
* Each manifest written here holds the references of one array in one split, and its
  ``ManifestRef`` extents are the bounding box of those references (``[min, max + 1)`` per
  dimension), as the real Icechunk writes them.
* Only what must change is rewritten. The splits holding changed (written or deleted) chunks are
  *dirty*. An existing manifest of the array whose extents meet a dirty split is *consumed*:
  its references are merged with the changes and redistributed, which makes the splits of its
  references dirty as well (repeated until nothing changes). Every other existing manifest is
  kept as it is, with its id and extents. So appending along a split dimension rewrites only
  the last split's manifest, and manifests written under another splitting config stay in use
  while they lie inside one split of the new config and are not touched.
* When the config changed since the existing manifests were written, a consumed manifest that
  spans several of the new splits is redistributed into all of them (that is how the real
  Icechunk 2.3.0 behaves); manifests nobody touches keep the old layout until
  :meth:`Repository.rewrite_manifests` rewrites every array.

Manifests are encoded (large ones in a worker thread) and uploaded concurrently, at most
:data:`MAX_CONCURRENT_MANIFEST_WRITES` at a time, each exactly once.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from icechunk._core.change_set import ChunkPayload
from icechunk._core.chunk_refs import coord_keys, take_refs
from icechunk._core.staged_changes import changed_coords, merge_refs
from icechunk.config import ManifestSplittingConfig
from icechunk.format import layout
from icechunk.format.ids import new_id12
from icechunk.format.model import (
    ArrayManifest,
    ChunkRefs,
    Manifest,
    ManifestFileInfo,
    ManifestRef,
)
from icechunk.storage.base import WriteMode

if TYPE_CHECKING:
    from icechunk._core.objects import RepoObjects
    from icechunk._core.tree import ReadTree

__all__ = [
    "MAX_CONCURRENT_MANIFEST_WRITES",
    "ArrayManifestJob",
    "ManifestWriter",
    "extents_of",
    "mark_for_rewrite",
    "partition_refs",
    "rewrites_manifests",
    "split_keys",
    "unique_rows",
]

MAX_CONCURRENT_MANIFEST_WRITES = 16
"""Manifests encoded and uploaded at the same time by one commit."""

DEFAULT_MANIFEST_FETCHES = 16
"""Existing manifests fetched at the same time by one commit, unless
``ManifestConfig.max_concurrent_manifest_fetches_during_commit`` says otherwise."""

THREAD_ENCODE_MIN_REFS = 20_000
"""Manifests with at least this many references are encoded in a worker thread, so that the
event loop keeps serving uploads meanwhile; smaller ones are cheaper to encode inline."""

_UNSPLIT = 1 << 32
"""Split size standing for "not split": larger than any ``uint32`` chunk index."""

Coords = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ArrayManifestJob:
    """One array whose manifests a commit must lay out.

    Attributes
    ----------
    node_id
        The array's 8-byte node id.
    path
        Its absolute path (matched by the splitting config's array conditions).
    num_chunks
        Chunks per dimension of the array's *new* shape; references outside are dropped.
    dimension_names
        Dimension names of the new metadata (matched by ``DimensionName`` conditions).
    base_refs
        The array's manifest refs in the base snapshot (empty for a new array).
    changes
        Staged chunk changes by coordinates (``None`` deletes), or ``None``/empty for none.
    rewrite
        Rewrite every existing manifest of the array to the current config, even if nothing
        changed (``rewrite_manifests``).
    changed
        The ``(n, ndim)`` coordinates of ``changes`` in their iteration order, if the caller
        already has them (``chunk_refs.changed_coords``); computed when ``None``.
    """

    node_id: bytes
    path: str
    num_chunks: tuple[int, ...]
    dimension_names: tuple[str | None, ...] | None
    base_refs: tuple[ManifestRef, ...]
    changes: Mapping[Coords, ChunkPayload | None] | None
    rewrite: bool = False
    changed: npt.NDArray[np.uint32] | None = None

    @property
    def ndim(self) -> int:
        return len(self.num_chunks)


def _sizes_array(sizes: Sequence[int | None]) -> npt.NDArray[np.int64]:
    return np.array([_UNSPLIT if s is None else s for s in sizes], dtype=np.int64)


def split_keys(
    coords: npt.NDArray[np.uint32], sizes: Sequence[int | None]
) -> npt.NDArray[np.int64]:
    """The split index of each row of ``coords`` (shape ``(n, ndim)``) for split ``sizes``."""
    n, ndim = coords.shape
    if ndim == 0:
        return np.zeros((n, 0), dtype=np.int64)
    return coords.astype(np.int64) // _sizes_array(sizes)


def extents_of(refs: ChunkRefs) -> tuple[tuple[int, int], ...]:
    """Bounding box ``((min, max + 1), ...)`` of non-empty ``refs``; ``()`` for 0-d arrays."""
    if refs.coords.shape[1] == 0:
        return ()
    lo = refs.coords.min(axis=0).tolist()
    hi = refs.coords.max(axis=0).tolist()
    return tuple((int(a), int(b) + 1) for a, b in zip(lo, hi, strict=True))


def partition_refs(refs: ChunkRefs, sizes: Sequence[int | None]) -> list[ChunkRefs]:
    """Split sorted ``refs`` into one sorted, non-empty group per split, in split order."""
    n, ndim = refs.coords.shape
    if n == 0:
        return []
    if ndim == 0 or all(s is None for s in sizes):
        return [refs]
    keys = split_keys(refs.coords, sizes).astype(np.uint32)
    kbytes = coord_keys(keys)
    order = np.argsort(kbytes, kind="stable")  # stable: each group stays sorted by coords
    sorted_keys = kbytes[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    bounds = [*starts.tolist(), n]
    return [take_refs(refs, order[a:b]) for a, b in itertools.pairwise(bounds)]


def unique_rows(keys: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The distinct rows of non-negative ``keys`` (shape ``(n, ndim)``), sorted.

    Same result as ``np.unique(keys, axis=0)`` but sorts one integer per row (the row's
    position in the bounding grid of the keys) instead of structured rows: about 20 times
    faster on a million rows. Falls back to ``np.unique`` when that grid has 2**62 cells or more.
    """
    n, ndim = keys.shape
    if n < 2 or ndim == 0:
        return keys[:1] if ndim == 0 else keys
    lo = keys.min(axis=0)
    span = keys.max(axis=0) - lo + 1
    if float(np.prod(span.astype(np.float64))) >= 2.0**62:
        out: npt.NDArray[np.int64] = np.unique(keys, axis=0)
        return out
    flat = np.ravel_multi_index(tuple((keys - lo).T), tuple(span.tolist()))
    cells = np.unique(flat)
    rows = np.stack(np.unravel_index(cells, tuple(span.tolist())), axis=1)
    return rows.astype(np.int64, copy=False).reshape(len(cells), ndim) + lo


class _DirtySplits:
    """The dirty splits of one array: those whose manifest must be (re)written."""

    __slots__ = ("_keys", "_set", "_sizes", "ndim")

    def __init__(self, ndim: int, sizes: Sequence[int | None]) -> None:
        self.ndim = ndim
        self._sizes = _sizes_array(sizes)
        self._set: set[tuple[int, ...]] = set()
        self._keys = np.zeros((0, ndim), dtype=np.int64)

    def add(self, keys: npt.NDArray[np.int64]) -> None:
        """Mark the splits of the rows of ``keys`` (split keys, shape ``(n, ndim)``) dirty."""
        if len(keys) > 1:
            keys = unique_rows(keys)
        fresh = {k for k in map(tuple, keys.tolist()) if k not in self._set}
        if fresh:
            self._set.update(fresh)
            new = np.array(sorted(fresh), dtype=np.int64).reshape(len(fresh), self.ndim)
            self._keys = np.concatenate([self._keys, new])

    def met_by(self, mref: ManifestRef) -> bool:
        """Whether the extents of ``mref`` meet a dirty split."""
        if not self._set:
            return False
        if self.ndim == 0 or len(mref.extents) != self.ndim:
            return True  # 0-d: a single split; malformed extents: rewrite to be safe
        lo = np.array([a for a, _ in mref.extents], dtype=np.int64) // self._sizes
        hi = np.array([max(a, b - 1) for a, b in mref.extents], dtype=np.int64) // self._sizes
        if np.array_equal(lo, hi):  # inside one split: the common case, a set lookup
            return tuple(lo.tolist()) in self._set
        inside = (self._keys >= lo) & (self._keys <= hi)
        return bool(np.any(np.all(inside, axis=1)))


_REWRITE_FLAG = "_rewrite_manifests"


def mark_for_rewrite(session: object) -> None:
    """Make the next commit of ``session`` rewrite every array's manifests.

    Used by :meth:`Repository.rewrite_manifests` on a fresh writable session of its own.
    """
    vars(session)[_REWRITE_FLAG] = True


def rewrites_manifests(session: object) -> bool:
    """Whether :func:`mark_for_rewrite` was called on ``session``."""
    return bool(vars(session).get(_REWRITE_FLAG, False))


class ManifestWriter:
    """Lays out and writes the manifests of one commit.

    Parameters
    ----------
    repo
        The repository written to (storage, encoding, manifest cache).
    base
        The base snapshot's tree: existing manifests are looked up in its manifest list.
    splitting
        The splitting config to honour; ``None`` writes one manifest per changed array.

    After :meth:`write_arrays` returns, every new manifest is stored and listed in
    :attr:`new_manifests`.
    """

    def __init__(
        self,
        repo: RepoObjects,
        base: ReadTree,
        splitting: ManifestSplittingConfig | None,
        *,
        max_fetches: int | None = None,
        max_writes: int = MAX_CONCURRENT_MANIFEST_WRITES,
    ) -> None:
        self._repo = repo
        self._base = base
        self._splitting = splitting
        self._fetches = asyncio.Semaphore(max(1, max_fetches or DEFAULT_MANIFEST_FETCHES))
        self._writes = asyncio.Semaphore(max(1, max_writes))
        self.new_manifests: dict[bytes, ManifestFileInfo] = {}
        """Every manifest written by this writer, by id."""

    def split_sizes(self, job: ArrayManifestJob) -> tuple[int | None, ...]:
        """Per-dimension split size (chunks) for ``job``'s array; ``None`` = unsplit."""
        if self._splitting is None or job.ndim == 0:
            return (None,) * job.ndim
        return self._splitting.split_sizes_for(job.path, job.dimension_names, job.ndim)

    async def write_arrays(self, jobs: Sequence[ArrayManifestJob]) -> list[tuple[ManifestRef, ...]]:
        """The new manifest refs of each job's array, in ``jobs`` order, once all are stored.

        Arrays are processed concurrently. Raises what fetching an existing manifest or
        storing a new one raises; manifests already stored then stay behind as orphans (no
        snapshot references them), like chunks of an abandoned session.
        """
        return list(await asyncio.gather(*(self._array(job) for job in jobs)))

    async def _array(self, job: ArrayManifestJob) -> tuple[ManifestRef, ...]:
        # bulk-staged refs (ChunkWrites) stay columnar: never turned into one object per ref
        changes = job.changes if job.changes else {}
        if not changes and not job.rewrite:
            return tuple(job.base_refs)
        ndim = job.ndim
        sizes = self.split_sizes(job)
        kept: list[ManifestRef] = list(job.base_refs)
        old: list[ChunkRefs] = []
        coords = job.changed
        if coords is None:
            coords = changed_coords(changes, ndim)
        if job.rewrite:
            old = await self._load(job.node_id, kept)
            kept = []
        elif kept:
            # consume every manifest meeting a dirty split; its refs make their splits dirty
            dirty = _DirtySplits(ndim, sizes)
            dirty.add(split_keys(coords, sizes))
            while kept:
                consumed = [m for m in kept if dirty.met_by(m)]
                if not consumed:
                    break
                gone = {m.object_id for m in consumed}
                kept = [m for m in kept if m.object_id not in gone]
                loaded = await self._load(job.node_id, consumed)
                old += loaded
                for refs in loaded:
                    dirty.add(split_keys(refs.coords, sizes))
        merged = merge_refs(old, changes, ndim, job.num_chunks, coords=coords)
        groups = partition_refs(merged, sizes)
        new_refs = await asyncio.gather(*(self._write(job.node_id, g) for g in groups))
        return tuple(sorted([*kept, *new_refs], key=lambda m: m.extents))

    async def _load(self, node_id: bytes, mrefs: Sequence[ManifestRef]) -> list[ChunkRefs]:
        async def one(mref: ManifestRef) -> ChunkRefs | None:
            async with self._fetches:
                index = await self._repo.manifest_index(
                    mref.object_id, node_id, self._base.manifest_files.get(mref.object_id)
                )
            return None if index is None else index.refs

        found = await asyncio.gather(*(one(m) for m in mrefs))
        return [r for r in found if r is not None]

    async def _write(self, node_id: bytes, refs: ChunkRefs) -> ManifestRef:
        manifest_id = new_id12()
        manifest = Manifest(manifest_id, [ArrayManifest(node_id, refs)], self._repo.spec_version)
        async with self._writes:
            if len(refs) >= THREAD_ENCODE_MIN_REFS:
                data = await asyncio.to_thread(self._repo.encode_manifest, manifest)
            else:
                data = self._repo.encode_manifest(manifest)
            await self._repo.storage.put(
                layout.manifest_key(manifest_id), data, WriteMode.OVERWRITE
            )
        self.new_manifests[manifest_id] = ManifestFileInfo(manifest_id, len(data), len(refs))
        return ManifestRef(manifest_id, extents_of(refs))
