"""Try to re-create a deleted tag; report what happened (the script itself never fails on it).

Usage: ``recreate_tag.py PATH TAG``

Tags are immutable and a deleted tag name can never be reused.  The error type differs by
version (a plain ``IcechunkError`` in 1.x, ``kind="tag-previously-deleted"`` in 2.x), so the
report carries the exception's class names and ``kind`` for the test to judge.
"""

from __future__ import annotations

import argparse
from typing import Any

from common import emit, library_info, open_repo


def error_info(exc: BaseException) -> dict[str, Any]:
    return {
        "types": [cls.__name__ for cls in type(exc).__mro__],
        "kind": None if getattr(exc, "kind", None) is None else str(exc.kind),
        "message": str(exc)[:500],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path")
    parser.add_argument("tag")
    args = parser.parse_args()

    repo = open_repo(args.path)
    tags_before = sorted(repo.list_tags())
    error = None
    try:
        repo.create_tag(args.tag, repo.lookup_branch("main"))
    except Exception as exc:  # noqa: BLE001 - the kind of error is what we report
        error = error_info(exc)
    # re-open, so that nothing cached in the Repository object hides what reached storage
    repo = open_repo(args.path)
    try:
        lookup: Any = repo.lookup_tag(args.tag)
    except Exception as exc:  # noqa: BLE001 - as above
        lookup = {"error": error_info(exc)}
    emit(
        {
            "library": library_info(),
            "error": error,
            "tags_before": tags_before,
            "tags_after": sorted(repo.list_tags()),
            "lookup_after": lookup,
        }
    )


if __name__ == "__main__":
    main()
