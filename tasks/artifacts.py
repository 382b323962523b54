"""What a user sees in Prefect's UI for a data commit: artifacts of the flow run.

* ``icechunk-commit`` (markdown): snapshot id, branch, range appended, counts, time;
* ``icechunk-regions`` (table): one row per region written;
* ``icechunk-inspect`` (link): the repository, with the CLI command that shows the commit;
* a progress artifact, updated as regions complete (:class:`RegionProgress`).

Nothing here reveals credentials: only the repository location (without any user or password
a URL may carry), snapshot ids and counts are shown.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from tasks.events import public_location
from tasks.regions import Region

__all__ = [
    "RegionProgress",
    "commit_summary_markdown",
    "inspect_command",
    "publish_commit_artifacts",
    "regions_table",
]


def _size(nbytes: int) -> str:
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def inspect_command(location: str, snapshot_id: str) -> str:
    """The shell command that shows this commit with the ``icechunk`` CLI."""
    where = public_location(location)
    return f"icechunk log {shlex.quote(where)} --snapshot {snapshot_id} -n 1"


def _link(location: str) -> str:
    where = public_location(location)
    if urlsplit(where).scheme in ("", "file"):
        path = urlsplit(where).path if where.startswith("file:") else where
        return Path(path).absolute().as_uri()
    return where


def commit_summary_markdown(
    *,
    location: str,
    branch: str,
    snapshot_id: str,
    message: str,
    metadata: Mapping[str, Any],
    written_at: datetime | None,
    created: bool,
    seconds: float | None = None,
) -> str:
    """The markdown commit summary."""
    appended = metadata.get("appended") or {}
    steps = metadata.get("steps", 0)
    dim = metadata.get("dim", "?")
    lines = [
        f"### Icechunk commit `{snapshot_id}`",
        "",
        f"**{message}**" + ("" if created else " (committed by an earlier attempt of this run)"),
        "",
        "| commit | |",
        "|---|---|",
        f"| repository | `{public_location(location)}` |",
        f"| branch | `{branch}` |",
        f"| snapshot | `{snapshot_id}` |",
        (
            f"| appended | {steps} `{dim}` steps, positions "
            f"[{appended.get('start', '?')}, {appended.get('stop', '?')}): "
            f"{appended.get('first', '?')} .. {appended.get('last', '?')} |"
        ),
        f"| regions | {len(metadata.get('regions', []))} |",
        f"| chunks written | {metadata.get('chunks_written', '?')} |",
        f"| bytes written | {_size(int(metadata.get('bytes_written', 0)))} (uncompressed) |",
        f"| committed at | {written_at:%Y-%m-%d %H:%M:%S %Z} |"
        if written_at
        else "| committed at | ? |",
    ]
    if seconds is not None:
        lines.append(f"| write + commit time | {seconds:.1f} s |")
    lines += [
        f"| source | {metadata.get('source', '?')} |",
        f"| idempotency key | `{metadata.get('idempotency_key', '-')}` |",
        "",
        f"Inspect: `{inspect_command(location, snapshot_id)}`",
    ]
    return "\n".join(lines) + "\n"


def regions_table(regions: Sequence[Region], steps_bytes: int) -> list[dict[str, Any]]:
    """One row per region: target and source positions, steps, bytes (uncompressed)."""
    return [
        {
            "region": str(r),
            "target_start": r.target_start,
            "target_stop": r.target_stop,
            "source_start": r.source_start,
            "source_stop": r.source_stop,
            "steps": r.size,
            "bytes": r.size * steps_bytes,
            "status": "written",
        }
        for r in regions
    ]


def publish_commit_artifacts(
    *,
    location: str,
    branch: str,
    snapshot_id: str,
    message: str,
    metadata: Mapping[str, Any],
    regions: Sequence[Region],
    written_at: datetime | None,
    created: bool,
    seconds: float | None = None,
) -> None:
    """Create the commit summary, the regions table and the inspect link for this flow run."""
    create_markdown_artifact(
        key="icechunk-commit",
        markdown=commit_summary_markdown(
            location=location,
            branch=branch,
            snapshot_id=snapshot_id,
            message=message,
            metadata=metadata,
            written_at=written_at,
            created=created,
            seconds=seconds,
        ),
        description=f"Icechunk commit {snapshot_id} on {branch}",
    )
    steps = max(1, int(metadata.get("steps", 0) or 0))
    per_step = int(metadata.get("bytes_written", 0) or 0) // steps
    create_table_artifact(
        key="icechunk-regions",
        table=regions_table(regions, per_step),
        description=f"Regions written for commit {snapshot_id}",
    )
    create_link_artifact(
        key="icechunk-inspect",
        link=_link(location),
        link_text=inspect_command(location, snapshot_id),
        description=f"Run `{inspect_command(location, snapshot_id)}` to inspect the commit",
    )


class RegionProgress:
    """A progress artifact of the flow run, updated as regions complete."""

    def __init__(self, total: int, description: str) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.artifact_id: UUID = create_progress_artifact(
            progress=0.0, key="icechunk-progress", description=description
        )

    def advance(self, n: int = 1) -> float:
        """Count ``n`` more regions done; update the artifact; return the percentage."""
        self.done = min(self.total, self.done + n)
        percent = 100.0 * self.done / self.total
        update_progress_artifact(self.artifact_id, progress=percent)
        return percent
