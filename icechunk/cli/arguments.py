"""Argument values of the ``icechunk`` command: refs, durations, counts; usage errors."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from icechunk.errors import IcechunkError
from icechunk.format.ids import parse_snapshot_id

if TYPE_CHECKING:
    from icechunk.repository import Repository


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
