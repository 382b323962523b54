"""The ``icechunk`` command-line tool: look into and maintain a repository from a shell.

Run ``icechunk --help`` or ``python -m icechunk --help``. Every command names the repository
first (after its action, for ``branch`` and ``tag``)::

    icechunk info REPO
    icechunk log REPO [--branch B | --tag T | --snapshot ID] [-n N]
    icechunk branch list|create|delete|reset REPO ...
    icechunk tag list|create|delete REPO ...
    icechunk diff REPO --from REF [--to REF]
    icechunk expire REPO --older-than WHEN [--delete-expired-branches] [--delete-expired-tags]
    icechunk gc REPO --older-than WHEN [--dry-run]
    icechunk stats REPO

``REPO`` is a local directory, a ``file://`` URL, or an object-store URL (``s3://bucket/prefix``,
``gs://bucket/prefix``, ``az://container/prefix``). For S3, ``--endpoint-url``, ``--region`` and
``--anonymous`` configure the client; credentials come from ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN`` (or the usual AWS environment and instance
metadata when those are unset).

A ``REF`` is ``branch:NAME``, ``tag:NAME`` or ``snapshot:ID``; a bare value is a snapshot id when
it has the form of one (20 Crockford base32 characters) and a branch name otherwise.

Output
    Readable tables on stdout; with ``--json`` one JSON document on stdout instead and nothing
    else there. Prompts and progress go to stderr.

Exit status
    ``0`` success; ``1`` an Icechunk error (repository, ref or snapshot not found, conflict,
    storage failure ...) or a declined confirmation, reported as one line on stderr (``--debug``
    adds the traceback; with ``--json`` stdout also gets ``{"error": {"kind", "message"}}``);
    ``2`` a usage error, including a destructive command (``branch delete``/``reset``,
    ``tag delete``, ``expire``, ``gc`` without ``--dry-run``) run without ``--yes`` where nobody
    can be asked.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TextIO
from urllib.parse import urlsplit

from icechunk.errors import IcechunkError, RepositoryNotFoundError
from icechunk.format.ids import parse_snapshot_id

if TYPE_CHECKING:
    from icechunk.repository import Repository
    from icechunk.snapshots import Diff, SnapshotInfo
    from icechunk.storage.base import Storage

__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_USAGE", "RefSpec", "main", "parse_older_than"]

EXIT_OK = 0
"""The command did what it was asked."""
EXIT_ERROR = 1
"""An Icechunk error, or the user declined a confirmation; nothing further was changed."""
EXIT_USAGE = 2
"""Bad command-line input, or a destructive command without ``--yes`` and no terminal to ask."""

_PROG = "icechunk"
_MAIN = "main"


# ---------------------------------------------------------------------------------------------
# errors


class UsageError(Exception):
    """Command-line input that parses but makes no sense; the command exits with status 2."""


class Aborted(Exception):
    """The user answered no to a confirmation prompt; the command exits with status 1."""


# ---------------------------------------------------------------------------------------------
# argument values


@dataclass(frozen=True, slots=True)
class RefSpec:
    """A reference to a snapshot given on the command line: a branch, a tag or a snapshot id.

    Parse one with :meth:`parse`; ``str()`` gives the canonical ``kind:name`` form.
    """

    kind: Literal["branch", "tag", "snapshot"]
    name: str

    @classmethod
    def parse(cls, text: str) -> RefSpec:
        """Parse ``branch:NAME``, ``tag:NAME``, ``snapshot:ID`` or a bare id or branch name.

        Raises
        ------
        argparse.ArgumentTypeError
            The text is empty, or an explicit prefix has nothing after it.
        """
        kind, sep, rest = text.partition(":")
        if sep and kind in ("branch", "tag", "snapshot"):
            if not rest:
                raise argparse.ArgumentTypeError(f"{text!r}: a name must follow {kind}:")
            return cls(kind, rest)  # type: ignore[arg-type]  # narrowed by the check above
        if not text:
            raise argparse.ArgumentTypeError("an empty reference")
        if _is_snapshot_id(text):
            return cls("snapshot", text)
        return cls("branch", text)

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"

    def arguments(self, prefix: str = "") -> dict[str, str]:
        """Keyword arguments selecting this ref in ``Repository`` methods.

        ``prefix`` is prepended to the names, e.g. ``"from_"`` for :meth:`Repository.diff`.
        """
        key = "snapshot_id" if self.kind == "snapshot" else self.kind
        return {prefix + key: self.name}

    def resolve(self, repo: Repository) -> str:
        """The id of the snapshot this ref points to.

        Raises
        ------
        RefNotFoundError, SnapshotNotFoundError, InvalidInputError
            The branch or tag does not exist, the snapshot is unknown, or the id is malformed.
        """
        if self.kind == "branch":
            return repo.lookup_branch(self.name)
        if self.kind == "tag":
            return repo.lookup_tag(self.name)
        return repo.lookup_snapshot(self.name).id


def _is_snapshot_id(text: str) -> bool:
    try:
        parse_snapshot_id(text)
    except IcechunkError:
        return False
    return True


_DURATION = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_older_than(text: str, now: datetime | None = None) -> datetime:
    """The cut-off time given by ``--older-than``, as an aware UTC datetime.

    Parameters
    ----------
    text
        An ISO 8601 date or date-time (a naive one is taken as UTC), or a duration before
        ``now`` written as a sequence of ``<int><unit>`` with units ``w``, ``d``, ``h``, ``m``,
        ``s`` in that order (``7d``, ``1d12h``, ``90m``).
    now
        The reference time for durations; the current time by default.

    Raises
    ------
    argparse.ArgumentTypeError
        ``text`` is neither form.
    """
    text = text.strip()
    match = _DURATION.fullmatch(text)
    if text and match is not None:
        weeks, days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
        span = timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
        return (now or datetime.now(UTC)) - span
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither an ISO 8601 time (2026-01-31, 2026-01-31T12:00:00Z) "
            "nor a duration (7d, 12h, 1d12h, 30m)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


# ---------------------------------------------------------------------------------------------
# opening the repository


def _storage_for(location: str, args: argparse.Namespace) -> Storage:
    """The storage at ``location`` (a path or URL), configured by the storage options.

    Raises
    ------
    UsageError
        ``memory://`` (nothing to open from a new process), or S3 options with another scheme.
    IcechunkError
        The URL is malformed or its backend is not installed.
    """
    from icechunk.storage import from_url

    s3_options = {
        "--endpoint-url": args.endpoint_url,
        "--region": args.region,
        "--anonymous": args.anonymous or None,
    }
    scheme = urlsplit(location).scheme.lower() if "://" in location else ""
    if scheme not in ("s3", "s3a"):
        given = [flag for flag, value in s3_options.items() if value is not None]
        if given:
            raise UsageError(f"{', '.join(given)} only apply to s3:// repositories")
    if scheme == "memory":
        raise UsageError(
            "memory:// names a repository private to one process; give a path or a "
            "file://, s3://, gs:// or az:// URL"
        )
    if scheme == "file" and not urlsplit(location).path:
        raise UsageError(f"{location!r} names no directory: write file:///absolute/path")
    if scheme in ("s3", "s3a"):
        return from_url(location, **_s3_options(args))
    return from_url(location)


def _s3_options(args: argparse.Namespace) -> dict[str, Any]:
    endpoint = args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    options: dict[str, Any] = {"region": region, "endpoint_url": endpoint}
    if endpoint and endpoint.startswith("http://"):
        options["allow_http"] = True
    if args.anonymous:
        options["anonymous"] = True
        return options
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        options["access_key_id"] = key
        options["secret_access_key"] = secret
        options["session_token"] = os.environ.get("AWS_SESSION_TOKEN") or None
    return options


def _open(ctx: _Context) -> Repository:
    from icechunk.repository import Repository

    location: str = ctx.args.repo
    try:
        return Repository.open(_storage_for(location, ctx.args))
    except RepositoryNotFoundError as exc:
        raise RepositoryNotFoundError(f"no Icechunk repository at {location}", exc.kind) from None


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


# ---------------------------------------------------------------------------------------------
# commands: reading


def _cmd_info(ctx: _Context) -> int:
    repo = _open(ctx)
    branches = {name: repo.lookup_branch(name) for name in sorted(repo.list_branches())}
    tags = {name: repo.lookup_tag(name) for name in sorted(repo.list_tags())}
    history = list(repo.ancestry(branch=_MAIN)) if _MAIN in branches else []
    metadata = repo.get_metadata() if repo.spec_version >= 2 else None
    latest = next(iter(repo.ops_log()), None) if repo.spec_version >= 2 else None
    config = repo.config
    data = {
        "location": ctx.args.repo,
        "spec_version": repo.spec_version,
        "branches": branches,
        "tags": tags,
        "snapshots_on_main": len(history),
        "main_tip_written_at": history[0].written_at.isoformat() if history else None,
        "metadata": metadata,
        "latest_update": None
        if latest is None
        else {"kind": latest.kind.kind, "at": latest.updated_at.isoformat()},
        "config": {
            "inline_chunk_threshold_bytes": config.effective_inline_chunk_threshold_bytes,
            "compression_level": config.effective_compression_level,
            "num_updates_per_repo_info_file": config.effective_num_updates_per_repo_info_file,
            "manifest_splitting": config.splitting is not None,
            "virtual_chunk_containers": sorted(config.virtual_chunk_containers or {}),
        },
    }

    def human() -> str:
        cfg = data["config"]
        fields = [
            ("Repository", ctx.args.repo),
            ("Spec version", str(repo.spec_version)),
            ("Snapshots on main", str(len(history))),
            ("Last commit on main", _when(history[0].written_at) if history else "-"),
            ("Metadata", "(spec 1: none)" if metadata is None else _compact(metadata, 200)),
        ]
        if latest is not None:
            fields.append(("Latest update", f"{latest.kind.kind} at {_when(latest.updated_at)}"))
        fields.append(
            (
                "Config",
                (
                    f"inline chunks <= {cfg['inline_chunk_threshold_bytes']} B, "
                    f"zstd level {cfg['compression_level']}, manifest splitting "
                    f"{'on' if cfg['manifest_splitting'] else 'off'}"
                ),
            )
        )
        width = max(len(k) for k, _ in fields)
        lines = [f"{k.ljust(width)}  {v}" for k, v in fields]
        lines += ["", "Branches", _table(["name", "snapshot"], list(branches.items()))]
        lines += ["", "Tags", _table(["name", "snapshot"], list(tags.items()))]
        return "\n".join(lines)

    ctx.emit(data, human)
    return EXIT_OK


def _log_ref(args: argparse.Namespace) -> RefSpec:
    if args.tag is not None:
        return RefSpec("tag", args.tag)
    if args.snapshot is not None:
        return RefSpec("snapshot", args.snapshot)
    return RefSpec("branch", args.branch or _MAIN)


def _cmd_log(ctx: _Context) -> int:
    repo = _open(ctx)
    ref = _log_ref(ctx.args)
    entries = list(repo.ancestry(**ref.arguments()))
    if ctx.args.max_count is not None:
        entries = entries[: ctx.args.max_count]

    def human() -> str:
        rows = [
            [
                e.id,
                _when(e.written_at),
                _one_line(e.message),
                _compact(e.metadata) if e.metadata else "",
            ]
            for e in entries
        ]
        return _table(["snapshot", "written at", "message", "metadata"], rows)

    ctx.emit({"ref": str(ref), "snapshots": [_snapshot_json(e) for e in entries]}, human)
    return EXIT_OK


def _cmd_diff(ctx: _Context) -> int:
    repo = _open(ctx)
    start: RefSpec = ctx.args.from_ref
    end: RefSpec = ctx.args.to_ref
    diff = repo.diff(**start.arguments("from_"), **end.arguments("to_"))
    data = {"from": str(start), "to": str(end), **_diff_json(diff)}
    ctx.emit(data, lambda: f"Changes from {start} to {end}\n\n{diff}")
    return EXIT_OK


def _cmd_stats(ctx: _Context) -> int:
    repo = _open(ctx)
    stats = repo.chunk_storage_stats()
    data = {
        "native_bytes": int(stats.native_bytes),
        "virtual_bytes": int(stats.virtual_bytes),
        "inlined_bytes": int(stats.inlined_bytes),
        "non_virtual_bytes": int(stats.non_virtual_bytes()),
        "total_bytes": int(stats.total_bytes()),
    }

    def human() -> str:
        rows = [
            [name.removesuffix("_bytes").replace("_", "-"), str(n), _size(n)]
            for name, n in data.items()
        ]
        return "Chunk storage (all branches and tags)\n\n" + _table(
            ["chunks", "bytes", "size"], rows
        )

    ctx.emit(data, human)
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# commands: branches and tags


def _ref_rows(repo: Repository, refs: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for name, snapshot_id in refs.items():
        info = repo.lookup_snapshot(snapshot_id)
        out.append(
            {
                "name": name,
                "snapshot_id": snapshot_id,
                "written_at": info.written_at.isoformat(),
                "message": info.message,
            }
        )
    return out


def _print_refs(ctx: _Context, key: str, rows: list[dict[str, Any]]) -> None:
    def human() -> str:
        table = [
            [
                r["name"],
                r["snapshot_id"],
                _when(datetime.fromisoformat(r["written_at"])),
                _one_line(r["message"], 50),
            ]
            for r in rows
        ]
        return _table(["name", "snapshot", "written at", "message"], table)

    ctx.emit({key: rows}, human)


def _cmd_branch_list(ctx: _Context) -> int:
    repo = _open(ctx)
    tips = {name: repo.lookup_branch(name) for name in sorted(repo.list_branches())}
    _print_refs(ctx, "branches", _ref_rows(repo, tips))
    return EXIT_OK


def _cmd_branch_create(ctx: _Context) -> int:
    repo = _open(ctx)
    source: RefSpec = ctx.args.source or RefSpec("branch", _MAIN)
    snapshot_id = source.resolve(repo)
    repo.create_branch(ctx.args.name, snapshot_id)
    data = {"branch": ctx.args.name, "snapshot_id": snapshot_id, "from": str(source)}
    ctx.emit(data, lambda: f"Created branch {ctx.args.name} at {snapshot_id} ({source})")
    return EXIT_OK


def _cmd_branch_delete(ctx: _Context) -> int:
    repo = _open(ctx)
    name: str = ctx.args.name
    tip = repo.lookup_branch(name)  # a missing branch fails before the prompt
    ctx.confirm(f"delete branch {name} (at {tip})")
    repo.delete_branch(name)
    data = {"branch": name, "deleted": True, "previous_snapshot_id": tip}
    ctx.emit(data, lambda: f"Deleted branch {name} (was at {tip})")
    return EXIT_OK


def _cmd_branch_reset(ctx: _Context) -> int:
    repo = _open(ctx)
    name: str = ctx.args.name
    target: RefSpec = ctx.args.to
    tip = repo.lookup_branch(name)
    snapshot_id = target.resolve(repo)
    ctx.confirm(f"reset branch {name} from {tip} to {snapshot_id}")
    # compare-and-swap on the tip shown in the prompt: a concurrent commit makes this a conflict
    repo.reset_branch(name, snapshot_id, from_snapshot_id=tip)
    data = {"branch": name, "snapshot_id": snapshot_id, "previous_snapshot_id": tip}
    ctx.emit(data, lambda: f"Reset branch {name} to {snapshot_id} (was at {tip})")
    return EXIT_OK


def _cmd_tag_list(ctx: _Context) -> int:
    repo = _open(ctx)
    targets = {name: repo.lookup_tag(name) for name in sorted(repo.list_tags())}
    _print_refs(ctx, "tags", _ref_rows(repo, targets))
    return EXIT_OK


def _cmd_tag_create(ctx: _Context) -> int:
    repo = _open(ctx)
    args = ctx.args
    if args.snapshot is not None:
        source = RefSpec("snapshot", args.snapshot)
    elif args.branch is not None:
        source = RefSpec("branch", args.branch)
    else:
        source = args.source
    snapshot_id = source.resolve(repo)
    repo.create_tag(args.name, snapshot_id)
    data = {"tag": args.name, "snapshot_id": snapshot_id, "from": str(source)}
    ctx.emit(data, lambda: f"Created tag {args.name} at {snapshot_id} ({source})")
    return EXIT_OK


def _cmd_tag_delete(ctx: _Context) -> int:
    repo = _open(ctx)
    name: str = ctx.args.name
    target = repo.lookup_tag(name)
    ctx.confirm(f"delete tag {name} (at {target})", "A deleted tag name can never be used again")
    repo.delete_tag(name)
    data = {"tag": name, "deleted": True, "previous_snapshot_id": target}
    ctx.emit(data, lambda: f"Deleted tag {name} (was at {target})")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# commands: maintenance


def _cmd_expire(ctx: _Context) -> int:
    repo = _open(ctx)
    args = ctx.args
    cutoff: datetime = args.older_than
    branches_before, tags_before = repo.list_branches(), repo.list_tags()
    removing = [
        what
        for what, flag in (
            ("branches", args.delete_expired_branches),
            ("tags", args.delete_expired_tags),
        )
        if flag
    ]
    extra = f" and delete the {' and '.join(removing)} pointing to them" if removing else ""
    ctx.confirm(
        f"expire the snapshots of {args.repo} written before {_when(cutoff)}{extra}",
        "This rewrites history and cannot be undone",
    )
    expired = repo.expire_snapshots(
        cutoff,
        delete_expired_branches=args.delete_expired_branches,
        delete_expired_tags=args.delete_expired_tags,
    )
    deleted_branches = sorted(branches_before - repo.list_branches())
    deleted_tags = sorted(tags_before - repo.list_tags())
    data = {
        "older_than": cutoff.isoformat(),
        "expired_snapshots": sorted(expired),
        "deleted_branches": deleted_branches,
        "deleted_tags": deleted_tags,
    }

    def human() -> str:
        lines = [f"Expired {len(expired)} snapshot(s) written before {_when(cutoff)}"]
        lines += [f"    {sid}" for sid in sorted(expired)]
        if deleted_branches:
            lines.append(f"Deleted branches: {', '.join(deleted_branches)}")
        if deleted_tags:
            lines.append(f"Deleted tags: {', '.join(deleted_tags)}")
        if expired:
            lines.append("Run `icechunk gc` to delete their objects from storage.")
        return "\n".join(lines)

    ctx.emit(data, human)
    return EXIT_OK


class _Progress:
    """Reports ``(phase, done, total)`` callbacks on stderr, at most a few times a second.

    On a terminal each phase is one line rewritten in place; elsewhere each report is a line.
    """

    def __init__(self, stream: TextIO, interval: float = 0.5) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._interval = interval
        self._phase: str | None = None
        self._last = 0.0

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        new_phase = phase != self._phase
        finished = total > 0 and done >= total
        if not (new_phase or finished or now - self._last >= self._interval):
            return
        if new_phase and self._phase is not None and self._tty:
            self._stream.write("\n")
        self._phase, self._last = phase, now
        text = f"gc: {phase}: {done}/{total}"
        self._stream.write(f"\r{text}" if self._tty else text + "\n")
        self._stream.flush()

    def close(self) -> None:
        if self._tty and self._phase is not None:
            self._stream.write("\n")
            self._stream.flush()


def _cmd_gc(ctx: _Context) -> int:
    repo = _open(ctx)
    args = ctx.args
    cutoff: datetime = args.older_than
    if not args.dry_run:
        ctx.confirm(
            f"delete the objects of {args.repo} unreachable from every branch and tag and "
            f"created before {_when(cutoff)}",
            "This cannot be undone",
        )
    progress = None if args.quiet else _Progress(ctx.stderr)
    try:
        summary = repo.garbage_collect(cutoff, dry_run=args.dry_run, progress=progress)
    finally:
        if progress is not None:
            progress.close()
    counts = {k: v for k, v in _fields(summary).items() if isinstance(v, int)}
    others = {k: v for k, v in _fields(summary).items() if not isinstance(v, int)}
    data = {"dry_run": args.dry_run, "older_than": cutoff.isoformat(), **counts, **others}

    def human() -> str:
        verb = "Would delete" if args.dry_run else "Deleted"
        rows = [
            [name.removesuffix("_deleted").replace("_", " "), str(n)]
            for name, n in counts.items()
            if name.endswith("_deleted") and name != "bytes_deleted"
        ]
        head = f"{verb} {_size(counts.get('bytes_deleted', 0))} of unreachable objects"
        body = _table(["objects", "count"], rows)
        tail = [f"{k}: {_compact(v)}" for k, v in others.items() if v]
        tail += [
            f"{k.replace('_', ' ')}: {v}"
            for k, v in counts.items()
            if not k.endswith("_deleted") and v
        ]
        return "\n".join([head, "", body, *tail])

    ctx.emit(data, human)
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# the parser


def _add_common(parser: argparse.ArgumentParser, *, destructive: bool = False) -> None:
    parser.add_argument("repo", metavar="REPO", help="repository path or URL (s3://bucket/prefix)")
    out = parser.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    out.add_argument("--debug", action="store_true", help="show the traceback of an error")
    s3 = parser.add_argument_group("S3 storage")
    s3.add_argument("--endpoint-url", help="S3-compatible endpoint (default: $AWS_ENDPOINT_URL)")
    s3.add_argument("--region", help="bucket region (default: $AWS_REGION)")
    s3.add_argument("--anonymous", action="store_true", help="send unsigned requests")
    if destructive:
        parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    else:
        parser.set_defaults(yes=False)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``icechunk`` command (each command's handler in ``func``)."""
    from icechunk import __version__

    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Inspect and maintain Icechunk repositories.",
        epilog="Exit status: 0 ok, 1 Icechunk error or declined confirmation, 2 usage error.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--json", dest="json_global", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--debug", dest="debug_global", action="store_true", help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = commands.add_parser("info", help="summary: spec version, refs, history size, metadata")
    _add_common(p)
    p.set_defaults(func=_cmd_info)

    p = commands.add_parser("log", help="a snapshot's ancestry, newest first")
    _add_common(p)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--branch", help="start at this branch's tip (default: main)")
    which.add_argument("--tag", help="start at this tag")
    which.add_argument("--snapshot", metavar="ID", help="start at this snapshot")
    p.add_argument(
        "-n", "--max-count", type=_positive_int, metavar="N", help="show at most N snapshots"
    )
    p.set_defaults(func=_cmd_log)

    p = commands.add_parser("branch", help="list, create, delete or reset branches")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    q = actions.add_parser("list", help="branches with their tips")
    _add_common(q)
    q.set_defaults(func=_cmd_branch_list)
    q = actions.add_parser("create", help="a new branch at a snapshot (default: main's tip)")
    _add_common(q)
    q.add_argument("name", metavar="NAME")
    src = q.add_mutually_exclusive_group()
    src.add_argument("--from", dest="source", type=RefSpec.parse, metavar="REF")
    src.add_argument(
        "--from-branch", dest="source", type=lambda b: RefSpec("branch", b), metavar="BRANCH"
    )
    q.set_defaults(func=_cmd_branch_create)
    q = actions.add_parser("delete", help="delete a branch (not main)")
    _add_common(q, destructive=True)
    q.add_argument("name", metavar="NAME")
    q.set_defaults(func=_cmd_branch_delete)
    q = actions.add_parser("reset", help="point a branch at another snapshot")
    _add_common(q, destructive=True)
    q.add_argument("name", metavar="NAME")
    q.add_argument("--to", type=RefSpec.parse, metavar="REF", required=True)
    q.set_defaults(func=_cmd_branch_reset)

    p = commands.add_parser("tag", help="list, create or delete tags")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    q = actions.add_parser("list", help="tags with their snapshots")
    _add_common(q)
    q.set_defaults(func=_cmd_tag_list)
    q = actions.add_parser("create", help="a new tag at a snapshot")
    _add_common(q)
    q.add_argument("name", metavar="NAME")
    src = q.add_mutually_exclusive_group(required=True)
    src.add_argument("--snapshot", metavar="ID")
    src.add_argument("--branch", metavar="BRANCH", help="at this branch's tip")
    src.add_argument("--from", dest="source", type=RefSpec.parse, metavar="REF")
    q.set_defaults(func=_cmd_tag_create)
    q = actions.add_parser("delete", help="delete a tag (its name can never be reused)")
    _add_common(q, destructive=True)
    q.add_argument("name", metavar="NAME")
    q.set_defaults(func=_cmd_tag_delete)

    p = commands.add_parser("diff", help="changes between a snapshot and a descendant")
    _add_common(p)
    p.add_argument("--from", dest="from_ref", type=RefSpec.parse, metavar="REF", required=True)
    p.add_argument(
        "--to",
        dest="to_ref",
        type=RefSpec.parse,
        metavar="REF",
        default=RefSpec("branch", _MAIN),
        help="default: branch:main",
    )
    p.set_defaults(func=_cmd_diff)

    p = commands.add_parser("expire", help="cut old snapshots out of history")
    _add_common(p, destructive=True)
    _add_older_than(p)
    p.add_argument("--delete-expired-branches", action="store_true")
    p.add_argument("--delete-expired-tags", action="store_true")
    p.set_defaults(func=_cmd_expire)

    p = commands.add_parser("gc", help="delete unreachable objects from storage")
    _add_common(p, destructive=True)
    _add_older_than(p)
    p.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=_cmd_gc)

    p = commands.add_parser("stats", help="bytes of chunks reachable from branches and tags")
    _add_common(p)
    p.set_defaults(func=_cmd_stats)
    return parser


def _add_older_than(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--older-than",
        type=parse_older_than,
        required=True,
        metavar="WHEN",
        help="ISO 8601 time (naive = UTC) or duration before now: 7d, 12h, 1d12h, 30m",
    )


# ---------------------------------------------------------------------------------------------
# entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``icechunk`` command line and return its exit status.

    Parameters
    ----------
    argv
        The arguments after the program name; ``sys.argv[1:]`` when ``None``.

    Returns
    -------
    int
        :data:`EXIT_OK`, :data:`EXIT_ERROR` or :data:`EXIT_USAGE` (see the module docstring).
        ``--help`` and ``--version`` return 0. Never raises, except ``SystemExit`` is turned
        into its status and ``KeyboardInterrupt`` into 130.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse's own exits: --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    ctx = _Context(args, sys.stdin, sys.stdout, sys.stderr)
    debug = bool(args.debug or args.debug_global)
    handler: Callable[[_Context], int] = args.func
    try:
        return handler(ctx)
    except UsageError as exc:
        ctx.stderr.write(f"{_PROG} {args.command}: error: {exc}\n")
        return EXIT_USAGE
    except Aborted as exc:
        ctx.stderr.write(f"{_PROG}: {exc}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        ctx.stderr.write(f"{_PROG}: interrupted\n")
        return 130
    except BrokenPipeError:  # `icechunk log REPO | head`: the reader went away, not an error
        with contextlib.suppress(OSError, ValueError):  # no flush error at interpreter exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except IcechunkError as exc:
        return _report(ctx, debug, str(exc.kind), str(exc) or type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 -- a bug: one line (traceback with --debug)
        return _report(ctx, debug, "internal", f"unexpected {type(exc).__name__}: {exc}")


def _report(ctx: _Context, debug: bool, kind: str, message: str) -> int:
    if debug:
        traceback.print_exc(file=ctx.stderr)
    hint = " (--debug shows the traceback)" if kind == "internal" and not debug else ""
    ctx.stderr.write(f"{_PROG}: error: {message} [{kind}]{hint}\n")
    if ctx.json:
        ctx.stdout.write(json.dumps({"error": {"kind": kind, "message": message}}) + "\n")
    return EXIT_ERROR
