"""Extend a repository written by another implementation.

Usage: ``extend_repo.py PATH [--label oracle]``

Creates branch ``from-<label>`` at main's tip and commits on it a new array plus a change to the
first chunk of the first existing array (in path order), then tags the commit ``<label>-tag``.
Prints ``{"snapshot": <new snapshot id>, "parent": <main's tip>, ...}``.
"""

from __future__ import annotations

import argparse

import numpy as np
import zarr
from common import commit, emit, library_info, open_repo


def first_array(group: zarr.Group) -> tuple[str, zarr.Array] | None:
    for name, member in sorted(group.members(), key=lambda m: m[0]):
        if isinstance(member, zarr.Group):
            found = first_array(member)
            if found is not None:
                return f"{name}/{found[0]}", found[1]
        elif member.ndim >= 1:
            return name, member
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path")
    parser.add_argument("--label", default="oracle")
    args = parser.parse_args()
    label = args.label

    repo = open_repo(args.path)
    tip = repo.lookup_branch("main")
    branch = f"from-{label}"
    repo.create_branch(branch, tip)
    session = repo.writable_session(branch)
    root = zarr.open_group(store=session.store, mode="a")
    found = first_array(root)
    assert found is not None, "the repository has no array to modify"
    path, arr = found
    region = tuple(slice(0, c) for c in arr.chunks)
    block = np.asarray(arr[region])
    arr[region] = (np.arange(block.size) % 7 + 1).reshape(block.shape).astype(arr.dtype)
    new = root.create_array(
        f"new_from_{label}",
        shape=(8, 6),
        chunks=(4, 3),
        dtype="float64",
        attributes={"written_by": label},
    )
    new[:] = np.random.default_rng(7).standard_normal((8, 6))
    snap = commit(
        session, f"extend: commit by {label}", {"extended_by": label, "modified": path}
    )
    repo.create_tag(f"{label}-tag", snap)
    emit({"library": library_info(), "snapshot": snap, "parent": tip, "modified": path})


if __name__ == "__main__":
    main()
