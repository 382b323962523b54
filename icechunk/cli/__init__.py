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

Layout: :mod:`~icechunk.cli.arguments` (argument values, usage errors, exit codes),
:mod:`~icechunk.cli.output` (the invocation context, tables, JSON shapes),
:mod:`~icechunk.cli.commands` (one function per subcommand), :mod:`~icechunk.cli.parser`
(the argparse tree); this module holds :func:`main`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence

from icechunk.cli.arguments import (
    _PROG,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    Aborted,
    RefSpec,
    UsageError,
    parse_older_than,
)
from icechunk.cli.output import _Context
from icechunk.cli.parser import build_parser
from icechunk.errors import IcechunkError

__all__ = [
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_USAGE",
    "RefSpec",
    "UsageError",
    "build_parser",
    "main",
    "parse_older_than",
]


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
