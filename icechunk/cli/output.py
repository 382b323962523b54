"""What the ``icechunk`` command prints: the invocation context, tables, JSON shapes."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from icechunk.snapshots import Diff, SnapshotInfo
from icechunk.cli.arguments import Aborted, UsageError

# ---------------------------------------------------------------------------------------------
# output


@dataclass
class _Context:
    """One command invocation: its parsed arguments and its streams."""

    args: argparse.Namespace
    stdin: TextIO
    stdout: TextIO
    stderr: TextIO

    @property
    def json(self) -> bool:
        return bool(self.args.json or self.args.json_global)

    def emit(self, data: Any, human: Callable[[], str]) -> None:
        """Print ``data`` as JSON with ``--json``, else the text ``human()`` returns."""
        if self.json:
            self.stdout.write(json.dumps(data, indent=2, allow_nan=False, default=_jsonable))
            self.stdout.write("\n")
        else:
            text = human()
            self.stdout.write(text if text.endswith("\n") else text + "\n")

    def confirm(self, action: str, warning: str = "") -> None:
        """Ask whether to ``action`` (a lower-case phrase) unless ``--yes`` was given.

        Raises
        ------
        UsageError
            There is no terminal to ask (stdin is not a TTY) and ``--yes`` is missing.
        Aborted
            The user did not answer yes.
        """
        if self.args.yes:
            return
        if not self.stdin.isatty():
            raise UsageError(f"refusing to {action} without --yes (no terminal to ask)")
        note = f" {warning}." if warning else ""
        self.stderr.write(f"{action[:1].upper()}{action[1:]}?{note} [y/N] ")
        self.stderr.flush()
        answer = self.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            raise Aborted("aborted: nothing was changed")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _fields(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _fields(value: object) -> dict[str, Any]:
    """The public data fields of a value object (a dataclass or an attribute bag)."""
    if dataclasses.is_dataclass(value):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    names = [n for n in dir(value) if not n.startswith("_")]
    return {n: getattr(value, n) for n in names if not callable(getattr(value, n))}


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, under an upper-case header row."""
    if not rows:
        return "(none)"
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.extend(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
    )
    return "\n".join(line.rstrip() for line in lines)


def _when(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _one_line(text: str, limit: int = 72) -> str:
    lines = text.splitlines() or [""]
    first = lines[0] + (" [...]" if len(lines) > 1 else "")
    return first if len(first) <= limit else first[: limit - 3] + "..."


def _compact(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=_jsonable)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _size(n: int) -> str:
    """A byte count for people: ``512 B``, ``1.5 KiB``, ``3.2 GiB``."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if value < 1024 or unit == "PiB":
            break
    return f"{value:.1f} {unit}"


def _snapshot_json(info: SnapshotInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "parent_id": info.parent_id,
        "written_at": info.written_at.isoformat(),
        "message": info.message,
        "metadata": info.metadata,
    }


def _diff_json(diff: Diff) -> dict[str, Any]:
    return {
        "new_groups": sorted(diff.new_groups),
        "new_arrays": sorted(diff.new_arrays),
        "deleted_groups": sorted(diff.deleted_groups),
        "deleted_arrays": sorted(diff.deleted_arrays),
        "updated_groups": sorted(diff.updated_groups),
        "updated_arrays": sorted(diff.updated_arrays),
        "updated_chunks": {p: sorted(c) for p, c in sorted(diff.updated_chunks.items())},
        "moved_nodes": [list(m) for m in diff.moved_nodes],
        "is_empty": diff.is_empty(),
    }
