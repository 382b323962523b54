"""A random history with expirations and collections, replayable under any implementation.

Usage: ``maintenance_random.py --spec N --seed S [--steps K]``

The operations are drawn from ``random.Random(seed)`` and only depend on what the repository
reports (ref names, histories by commit message), so two implementations with the same rules run
the same operations and print the same document: after every expiration and collection, the
released snapshots and deleted object counts, every ref's history and the data of every
snapshot in it, all named by commit message (ids are random). In-memory storage: object
creation times have sub-millisecond resolution, so cutoffs between commits are exact.

Runs unchanged under real icechunk 2.3.0 and under our implementation.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
from typing import Any

import numpy as np
import zarr
from common import commit, emit, library_info

import icechunk

GC_FIELDS = ("chunks_deleted", "manifests_deleted", "snapshots_deleted", "transaction_logs_deleted")


class Run:
    def __init__(self, spec: int, seed: int) -> None:
        config = icechunk.RepositoryConfig.default()
        config.inline_chunk_threshold_bytes = 0
        self.repo = icechunk.Repository.create(
            icechunk.in_memory_storage(), config=config, spec_version=spec
        )
        self.rng = random.Random(seed)
        self.n = 0
        self.message: dict[str, str] = {}  # snapshot id -> message
        self.marks: list[dt.datetime] = []  # a time between every two commits
        self.log: list[Any] = []

    def refs(self) -> list[tuple[str, str]]:
        return sorted(
            [("branch", b) for b in self.repo.list_branches()]
            + [("tag", t) for t in self.repo.list_tags()]
        )

    def history(self, ref: tuple[str, str]) -> list[str]:
        return [info.id for info in self.repo.ancestry(**{ref[0]: ref[1]})]

    def reachable(self) -> list[str]:
        ids = {s for ref in self.refs() for s in self.history(ref)}
        return sorted(ids, key=lambda s: self.message.get(s, ""))

    def name(self) -> str:
        self.n += 1
        return f"m{self.n:03d}"

    def do_commit(self) -> None:
        branch = self.rng.choice(sorted(self.repo.list_branches()))
        msg = self.name()
        session = self.repo.writable_session(branch)
        root = zarr.group(store=session.store, overwrite=False)
        root.attrs["commit"] = msg
        arr = root.require_array("a", shape=(6,), chunks=(2,), dtype="i4", fill_value=-1)
        arr[:] = np.arange(6, dtype="i4") + 10 * self.n
        sid = commit(session, msg)
        self.message[sid] = msg
        self.marks.append(dt.datetime.now(dt.UTC))

    def do_ref(self) -> None:
        target = self.rng.choice(self.reachable())
        if self.rng.random() < 0.5:
            self.repo.create_tag(self.name(), target)
        else:
            self.repo.create_branch(self.name(), target)

    def do_move(self) -> None:
        others = [r for r in self.refs() if r != ("branch", "main")]
        if others and self.rng.random() < 0.5:
            kind, name = self.rng.choice(others)
            (self.repo.delete_tag if kind == "tag" else self.repo.delete_branch)(name)
        else:
            self.repo.reset_branch("main", self.rng.choice(self.reachable()))

    def cutoff(self) -> dt.datetime:
        if not self.marks or self.rng.random() < 0.2:
            return dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        return self.rng.choice(self.marks)

    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for ref in self.refs():
            rows = []
            for sid in self.history(ref):
                store = self.repo.readonly_session(snapshot_id=sid).store
                try:
                    group = zarr.open_group(store=store, mode="r")
                except (FileNotFoundError, KeyError, ValueError):
                    rows.append([self.message.get(sid, "root"), None])
                    continue
                data = np.asarray(group["a"][:]).tolist()
                rows.append([self.message.get(sid, "root"), group.attrs["commit"], data])
            out[f"{ref[0]}/{ref[1]}"] = rows
        return out

    def do_expire(self) -> None:
        cutoff = self.cutoff()
        branches, tags = self.rng.random() < 0.5, self.rng.random() < 0.5
        released = self.repo.expire_snapshots(
            cutoff, delete_expired_branches=branches, delete_expired_tags=tags
        )
        names = sorted(self.message.get(s, "root") for s in released)
        self.log.append({"expire": names, "state": self.state()})

    def do_gc(self) -> None:
        summary = self.repo.garbage_collect(self.cutoff())
        counts = {f: getattr(summary, f) for f in GC_FIELDS}
        self.log.append({"gc": counts, "state": self.state()})

    def run(self, steps: int) -> None:
        self.do_commit()
        ops = [self.do_commit] * 4 + [self.do_ref, self.do_move, self.do_expire, self.do_gc]
        for _ in range(steps):
            self.rng.choice(ops)()
        self.do_expire()
        self.do_gc()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    run = Run(args.spec, args.seed)
    run.run(args.steps)
    emit({"library": library_info(), "log": run.log})


if __name__ == "__main__":
    main()
