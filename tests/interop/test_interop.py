"""Interoperability with the real, Rust-backed icechunk (1.1.21 and 2.3.0).

The same scripts (``scripts/``) run under the real libraries and under ours, because both have
the same API.  A repository written by one implementation is dumped (``dump_repo.py``: refs,
ancestry with ids, messages and metadata, every node's metadata and data, chunk keys, chunk
types, diffs) by several readers and the dumps must agree after :func:`normalize`.

Implementations in test ids: ``ic1`` = icechunk 1.1.21, ``ic2`` = icechunk 2.3.0, ``ours``.
Spec-2 repositories are only written and read by ``ic2`` and ``ours``: 1.x knows only spec 1.
``pytest tests/interop -k "not ours"`` runs only the cross-oracle cases that prove the harness.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pytest

from tests.interop.conftest import Interop, Repo, extension_label

pytestmark = pytest.mark.interop

SCENARIOS = ("data", "refs")
REAL_WRITERS = (("ic1", 1), ("ic2", 1), ("ic2", 2))  # (implementation, spec) that can exist
ROOT_METADATA = {"__icechunk": {"is_root": True}}  # how 2.x marks the root snapshot
LEGACY_ROOT_METADATA = {"__root": True}  # how 1.x marks it


def real_readers(spec: int) -> tuple[str, ...]:
    return ("ic1", "ic2") if spec == 1 else ("ic2",)


# ---------------------------------------------------------------------------------------------
# the one place where differences between implementations are forgiven


def normalize(dump: dict[str, Any], *, same_repo: bool = True) -> dict[str, Any]:
    """Return the part of a ``dump_repo.py`` document that implementations must agree on.

    Differences forgiven for every comparison, and why:

    1. ``library`` is dropped: the versions and paths of the process that made the dump.
    2. ``Diff.moved_nodes``: ``None`` becomes ``[]``.  icechunk 1.x's ``Diff`` has no
       ``moved_nodes`` (moves arrived in 2.0), so ``dump_repo.py`` prints ``None`` for it; 2.x
       prints ``[]`` when nothing moved.  The scenarios never move nodes.

    Differences forgiven only when comparing repositories written by *different*
    implementations (``same_repo=False``):

    3. Snapshot ids become ``"snapshot<message>"``: ids are random.  Messages are unique
       within each scenario (``write_repo.py`` asserts it).
    4. ``written_at`` is dropped: it is the wall-clock time of each commit.  (Two readers of
       the *same* repository must agree on it, so it is compared then.)
    5. The root snapshot's metadata: 1.x writes ``{"__root": true}`` and 2.x writes
       ``{"__icechunk": {"is_root": true}}`` (even in spec-1 repos).  Both only mark the
       "Repository initialized" snapshot as the root; the 1.x spelling becomes the 2.x one.

    Deliberately *not* forgiven:

    * ``zarr.json`` documents: icechunk stores the bytes zarr gives it, and zarr 3.1.6 and
      3.4.2 write identical documents for every array in the scenarios.
    * ``__icechunk`` keys in other commits' metadata: 2.x adds ``{"__icechunk":
      {"rebase_attempts": n}}`` only to commits made with ``rebase_with``, which the scripts
      never use, so any such key would be a real difference.
    * Chunk types: whether a chunk is inline or native follows the 512-byte default threshold
      in every implementation.
    """
    out = {k: copy.deepcopy(v) for k, v in dump.items() if k != "library"}  # dumps are shared
    for section in ("diffs", "diffs_from_root"):
        out[section] = {
            key: {**diff, "moved_nodes": diff["moved_nodes"] or []}
            for key, diff in out[section].items()
        }
    if same_repo:
        return out

    del out["written_at"]
    labels = {
        info["id"]: f"snapshot<{info['message']}>"
        for chain in out["ancestry"].values()
        for info in chain
    }
    for chain in out["ancestry"].values():
        for info in chain:
            if info["parent_id"] is None and info["metadata"] == LEGACY_ROOT_METADATA:
                info["metadata"] = ROOT_METADATA
    return _relabel(out, labels)


def _relabel(value: Any, labels: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {labels.get(k, k): _relabel(v, labels) for k, v in value.items()}
    if isinstance(value, list):
        return [_relabel(v, labels) for v in value]
    if isinstance(value, str):
        return labels.get(value, value)
    return value


def assert_same(
    actual: dict[str, Any], expected: dict[str, Any], *, same_repo: bool = True
) -> None:
    """Compare normalized dumps section by section, so a failure names the section."""
    actual, expected = (
        normalize(actual, same_repo=same_repo),
        normalize(expected, same_repo=same_repo),
    )
    assert sorted(actual) == sorted(expected)
    for section in sorted(expected):
        if section == "snapshots":
            assert sorted(actual[section]) == sorted(expected[section]), "snapshot ids differ"
            for snap in sorted(expected[section]):
                assert actual[section][snap] == expected[section][snap], f"snapshot {snap}"
        else:
            assert actual[section] == expected[section], f"section {section!r} differs"


# ---------------------------------------------------------------------------------------------
# cases: each knows the jobs it needs, so conftest can start them all up front


@dataclass(frozen=True)
class SameView:
    """Two readers of one repository must produce the same dump."""

    repo: Repo
    reader: str
    reference: str

    @property
    def id(self) -> str:
        return f"{self.repo.name}-read-by-{self.reader}-vs-{self.reference}"

    def start(self, interop: Interop) -> tuple[Any, ...]:
        return interop.dump(self.reader, self.repo), interop.dump(self.reference, self.repo)


@dataclass(frozen=True)
class SameHistory:
    """Two writers running the same scenario must produce logically equal repositories."""

    writer: str
    reference: str
    spec: int
    scenario: str
    reader: str = "ic2"

    @property
    def id(self) -> str:
        return f"{self.writer}-vs-{self.reference}-spec{self.spec}-{self.scenario}"

    def start(self, interop: Interop) -> tuple[Any, ...]:
        return (
            interop.dump(self.reader, Repo(self.writer, self.spec, self.scenario)),
            interop.dump(self.reader, Repo(self.reference, self.spec, self.scenario)),
        )


@dataclass(frozen=True)
class TagReuse:
    """``impl`` tries to re-create the deleted tag ``gone`` of a repository ``repo``."""

    impl: str
    repo: Repo
    tag: str = "gone"

    @property
    def id(self) -> str:
        return f"{self.impl}-on-{self.repo.name}"

    def start(self, interop: Interop) -> tuple[Any, ...]:
        return (interop.recreate_tag(self.impl, self.repo, self.tag),)


def params(cases: list[Any]) -> list[Any]:
    return [pytest.param(case, id=case.id) for case in cases]


def results(case: Any, interop: Interop) -> list[Any]:
    return [future.result() for future in case.start(interop)]


# (a) real icechunk writes, ours reads
REAL_WRITES_OURS_READS = [
    SameView(Repo(writer, spec, scenario), reader="ours", reference=writer)
    for writer, spec in REAL_WRITERS
    for scenario in SCENARIOS
]
# ... and ours commits on top of the real library's repository; both must still read it alike
OURS_EXTENDS_REAL = [
    SameView(Repo(writer, spec, "data", extender="ours"), reader="ours", reference=reader)
    for writer, spec in REAL_WRITERS
    for reader in real_readers(spec)
]
# (b) ours writes, real icechunk reads
OURS_WRITES_REAL_READS = [
    SameView(Repo("ours", spec, scenario), reader="ours", reference=reader)
    for spec in (1, 2)
    for scenario in SCENARIOS
    for reader in real_readers(spec)
]
# ... and the real library commits on top of our repository
REAL_EXTENDS_OURS = [
    SameView(Repo("ours", spec, "data", extender=reader), reader="ours", reference=reader)
    for spec in (1, 2)
    for reader in real_readers(spec)
]
# (c) cross-oracle sanity: proves the scripts and the comparison with the real libraries only
CROSS_ORACLE = [
    SameView(Repo(writer, 1, scenario, extender=extender), reader="ic1", reference="ic2")
    for writer in ("ic1", "ic2")
    for scenario in SCENARIOS
    for extender in (None, "ic2" if writer == "ic1" else "ic1")
    if extender is None or scenario == "data"
]
# ours and the real library run the same scenario: same refs, history, nodes, data and diffs
SAME_HISTORY = [
    SameHistory("ours", "ic2", spec, scenario) for spec in (1, 2) for scenario in SCENARIOS
] + [SameHistory("ic1", "ic2", 1, scenario) for scenario in SCENARIOS]
# deleted tags stay deleted, whoever wrote the repository and whoever tries to reuse the name
TAG_REUSE = (
    [TagReuse("ours", Repo(writer, spec)) for writer, spec in REAL_WRITERS]
    + [TagReuse(reader, Repo("ours", spec)) for spec in (1, 2) for reader in real_readers(spec)]
    + [TagReuse("ic1", Repo("ic2", 1)), TagReuse("ic2", Repo("ic1", 1))]
)


@pytest.mark.parametrize("case", params(REAL_WRITES_OURS_READS))
def test_real_writes_ours_reads(case: SameView, interop: Interop) -> None:
    ours, theirs = results(case, interop)
    assert_same(ours, theirs)


@pytest.mark.parametrize("case", params(OURS_EXTENDS_REAL))
def test_ours_extends_real_repo(case: SameView, interop: Interop) -> None:
    ours, theirs = results(case, interop)
    assert_same(ours, theirs)
    assert_extended(theirs, interop.repo(case.repo).result(), case.repo)


@pytest.mark.parametrize("case", params(OURS_WRITES_REAL_READS))
def test_ours_writes_real_reads(case: SameView, interop: Interop) -> None:
    ours, theirs = results(case, interop)
    assert_same(ours, theirs)


@pytest.mark.parametrize("case", params(REAL_EXTENDS_OURS))
def test_real_extends_ours_repo(case: SameView, interop: Interop) -> None:
    ours, theirs = results(case, interop)
    assert_same(ours, theirs)
    assert_extended(theirs, interop.repo(case.repo).result(), case.repo)


@pytest.mark.parametrize("case", params(CROSS_ORACLE))
def test_cross_oracle(case: SameView, interop: Interop) -> None:
    ic1, ic2 = results(case, interop)
    assert_same(ic1, ic2)
    if case.repo.extender is not None:
        assert_extended(ic2, interop.repo(case.repo).result(), case.repo)


@pytest.mark.parametrize("case", params(SAME_HISTORY))
def test_same_history(case: SameHistory, interop: Interop) -> None:
    written, reference = results(case, interop)
    assert_same(written, reference, same_repo=False)


@pytest.mark.parametrize("case", params(TAG_REUSE))
def test_deleted_tag_cannot_be_recreated(case: TagReuse, interop: Interop) -> None:
    (report,) = results(case, interop)
    error = report["error"]
    assert error is not None, f"{case.impl} re-created deleted tag {case.tag!r}"
    assert "IcechunkError" in error["types"], error
    # 1.x errors have no kind; 2.x says tag-previously-deleted (spec 2) or tag-already-exists
    # (spec 1, where the deleted tag's tombstone is a file next to its ref.json)
    assert error["kind"] in (None, "tag-previously-deleted", "tag-already-exists"), error
    assert case.tag not in report["tags_before"]
    assert report["tags_after"] == report["tags_before"]
    assert "error" in report["lookup_after"], report["lookup_after"]


def assert_extended(dump: dict[str, Any], extension: dict[str, Any], repo: Repo) -> None:
    """The commit made by ``extend_repo.py`` is visible as documented in that script."""
    label = extension_label(repo.extender or "")
    snap = extension["snapshot"]
    assert dump["branches"][f"from-{label}"] == snap
    assert dump["tags"][f"{label}-tag"] == snap
    chain = dump["ancestry"][f"branch/from-{label}"]
    assert chain[0]["parent_id"] == extension["parent"]
    assert chain[0]["metadata"] == {"extended_by": label, "modified": extension["modified"]}
    nodes = dump["snapshots"][snap]["nodes"]
    assert f"/new_from_{label}" in nodes
    assert dump["diffs"][snap]["new_arrays"] == [f"/new_from_{label}"]
    assert sorted(dump["diffs"][snap]["updated_chunks"]) == sorted(
        [f"/new_from_{label}", "/" + extension["modified"]]
    )
