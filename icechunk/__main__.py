"""``python -m icechunk``: the ``icechunk`` command-line tool (see :mod:`icechunk.cli`)."""

from __future__ import annotations

from icechunk.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
