"""The argument parser of the ``icechunk`` command."""

from __future__ import annotations

import argparse

from icechunk.cli.arguments import _MAIN, _PROG, RefSpec, _positive_int, parse_older_than
from icechunk.cli.commands import (
    _cmd_branch_create,
    _cmd_branch_delete,
    _cmd_branch_list,
    _cmd_branch_reset,
    _cmd_diff,
    _cmd_expire,
    _cmd_gc,
    _cmd_info,
    _cmd_log,
    _cmd_stats,
    _cmd_tag_create,
    _cmd_tag_delete,
    _cmd_tag_list,
)

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
