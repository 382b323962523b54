"""Extend a repository written by another implementation.

Usage: ``extend_repo.py PATH [--label oracle]``

Creates branch ``from-<label>`` at main's tip and commits on it a new array plus a change to the
first chunk of the biggest existing array, then tags the commit ``<label>-tag``.
Prints ``{"snapshot": <new snapshot id>, "parent": <main's tip>, ...}``.
"""

from __future__ import annotations

import argparse

import numpy as np
import zarr
from common import commit, emit, library_info, open_repo


def arrays(group: zarr.Group, prefix: str = "") -> list[tuple[str, zarr.Array]]:
    found: list[tuple[str, zarr.Array]] = []
    for name, member in group.members():
        if isinstance(member, zarr.Group):
            found.extend(arrays(member, f"{prefix}{name}/"))
        else:
            found.append((f"{prefix}{name}", member))
    return found


def array_to_modify(group: zarr.Group) -> tuple[str, zarr.Array]:
    """The biggest array with at least one dimension (ties broken by path)."""
    candidates = [(p, a) for p, a in arrays(group) if a.ndim >= 1]
    assert candidates, "the repository has no array to modify"
    return min(candidates, key=lambda pa: (-pa[1].size, pa[0]))


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
    path, arr = array_to_modify(root)
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
    snap = commit(session, f"extend: commit by {label}", {"extended_by": label, "modified": path})
    repo.create_tag(f"{label}-tag", snap)
    emit({"library": library_info(), "snapshot": snap, "parent": tip, "modified": path})


if __name__ == "__main__":
    main()
