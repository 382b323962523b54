"""The ``icechunk`` subcommands: each takes the invocation context and returns an exit status."""

from __future__ import annotations

import argparse
import os
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

from icechunk.errors import RepositoryNotFoundError

if TYPE_CHECKING:
    from icechunk.repository import Repository
    from icechunk.storage.base import Storage
from icechunk.cli.arguments import _MAIN, EXIT_OK, RefSpec, UsageError
from icechunk.cli.output import (
    _compact,
    _Context,
    _diff_json,
    _fields,
    _one_line,
    _size,
    _snapshot_json,
    _table,
    _when,
)

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
