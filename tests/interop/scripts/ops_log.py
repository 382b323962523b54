"""Write a spec-2 repository whose operations log overflows into backup files, or read one back.

Usage: ``ops_log.py write PATH N`` creates the repository with at most 4 updates per ``repo``
object and then N tags (so the log spills into ``overwritten/`` and ``repo_before_updates``
chains through several older files); ``ops_log.py read PATH`` prints the whole log (newest
first) as the number of entries and the names carried by the entries that have one.
"""

from __future__ import annotations

import sys

from common import emit, library_info

import icechunk


def main() -> None:
    mode, path = sys.argv[1], sys.argv[2]
    storage = icechunk.local_filesystem_storage(path)
    if mode == "write":
        config = icechunk.RepositoryConfig(num_updates_per_repo_info_file=4)
        repo = icechunk.Repository.create(storage, config=config, spec_version=2)
        root = repo.lookup_branch("main")
        for i in range(int(sys.argv[3])):
            repo.create_tag(f"t{i:02d}", root)
    repo = icechunk.Repository.open(storage)
    entries = list(repo.ops_log())
    names = [getattr(u.kind, "name", None) for u in entries]
    emit(
        {
            "library": library_info(),
            "entries": len(entries),
            "names": [n for n in names if isinstance(n, str)],
        }
    )


if __name__ == "__main__":
    main()
