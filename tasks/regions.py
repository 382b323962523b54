"""Pure planning helpers: which regions of the target each write task fills.

Region boundaries fall on zarr chunk boundaries of the target (except where the existing data
ends mid-chunk), so no two tasks ever write the same chunk and forks merge without overlap.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Region", "plan_regions"]


@dataclass(frozen=True)
class Region:
    """Source positions ``[source_start, source_stop)`` written from target ``target_start`` on."""

    source_start: int
    source_stop: int
    target_start: int

    @property
    def size(self) -> int:
        return self.source_stop - self.source_start

    @property
    def target_stop(self) -> int:
        return self.target_start + self.size

    def __str__(self) -> str:
        return f"[{self.target_start}:{self.target_stop})"


def plan_regions(
    source_start: int,
    source_stop: int,
    target_start: int,
    chunk_length: int,
    chunks_per_region: int = 1,
) -> list[Region]:
    """Cut source positions ``[source_start, source_stop)``, to be written from
    ``target_start`` on, into regions of ``chunks_per_region`` target chunks each.

    Raises
    ------
    ValueError
        Empty or negative ranges, non-positive chunk sizes.
    """
    if source_stop < source_start or source_start < 0 or target_start < 0:
        raise ValueError(f"invalid range [{source_start}, {source_stop}) -> {target_start}")
    if chunk_length <= 0 or chunks_per_region <= 0:
        raise ValueError("chunk_length and chunks_per_region must be positive")
    step = chunk_length * chunks_per_region
    regions = []
    offset = target_start - source_start
    t = target_start
    t_end = target_start + (source_stop - source_start)
    while t < t_end:
        boundary = (t // step + 1) * step  # next region boundary, aligned to target chunks
        stop = min(boundary, t_end)
        regions.append(Region(t - offset, stop - offset, t))
        t = stop
    return regions
