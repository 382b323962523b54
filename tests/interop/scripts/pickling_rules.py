"""Print which session objects pickle, and the error kind and text of those that do not.

Usage: ``pickling_rules.py``. Runs unchanged under real icechunk 2.3.0 and ours.
"""

from __future__ import annotations

import pickle

from common import emit, library_info

import icechunk as ic


def main() -> None:
    repo = ic.Repository.create(ic.in_memory_storage())
    session = repo.writable_session("main")
    objects = {
        "writable session": session,
        "writable store": session.store,
        "read-only session": repo.readonly_session("main"),
        "fork": session.fork(),
    }
    out: dict[str, object] = {}
    for name, obj in objects.items():
        try:
            pickle.loads(pickle.dumps(obj))
        except Exception as exc:  # noqa: BLE001 - the error is what is printed
            out[name] = {
                "pickles": False,
                "error": type(exc).__name__,
                "fork_hint": "fork()" in str(exc),
            }
        else:
            out[name] = {"pickles": True}
    emit({"library": library_info(), "rules": out})


if __name__ == "__main__":
    main()
