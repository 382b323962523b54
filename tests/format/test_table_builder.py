"""The lean table builder writes the same bytes as the ``flatbuffers`` runtime's ``Builder``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import flatbuffers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import icechunk.format.repo_info as repo_info_mod
import icechunk.format.snapshot as snapshot_mod
import icechunk.format.transaction_log as tx_mod
from icechunk.format._table_builder import TableBuilder
from icechunk.format.model import RepoInfo, Snapshot, TransactionLog
from tests.format.helpers import snapshots
from tests.format.test_repo_info import repo_infos
from tests.format.test_transaction_log import transaction_logs

_ENCODER_MODULES = (snapshot_mod, tx_mod, repo_info_mod)


@contextmanager
def runtime_builder(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make the encoders build with ``flatbuffers.Builder`` (and nothing cached)."""
    with monkeypatch.context() as m:
        for mod in _ENCODER_MODULES:
            m.setattr(mod, "new_builder", lambda hint=1024: flatbuffers.Builder(max(1024, hint)))
        repo_info_mod._blocks.clear()
        try:
            yield
        finally:
            repo_info_mod._blocks.clear()


def both(monkeypatch: pytest.MonkeyPatch, encode: Callable[[], bytes]) -> tuple[bytes, bytes]:
    repo_info_mod._blocks.clear()
    ours = encode()
    with runtime_builder(monkeypatch):
        theirs = encode()
    return ours, theirs


@settings(max_examples=60, deadline=None)
@given(st.data(), st.sampled_from([1, 2]))
def test_snapshots_same_bytes(data: st.DataObject, spec: int) -> None:
    s: Snapshot = data.draw(snapshots(spec))
    with pytest.MonkeyPatch.context() as mp:
        ours, theirs = both(mp, lambda: snapshot_mod.encode_snapshot(s, spec))
    assert ours == theirs


@settings(max_examples=60, deadline=None)
@given(transaction_logs(), st.sampled_from([1, 2]))
def test_transaction_logs_same_bytes(t: TransactionLog, spec: int) -> None:
    with pytest.MonkeyPatch.context() as mp:
        ours, theirs = both(mp, lambda: tx_mod.encode_transaction_log(t, spec))
    assert ours == theirs


@settings(max_examples=60, deadline=None)
@given(repo_infos())
def test_repo_infos_same_bytes(r: RepoInfo) -> None:
    with pytest.MonkeyPatch.context() as mp:
        ours, theirs = both(mp, lambda: repo_info_mod.encode_repo_info(r))
    assert ours == theirs


def _build(b: Any, n: int) -> bytes:
    """Many tables (equal layouts share a vtable), strings, vectors and every scalar width."""
    tables = []
    for i in range(n):
        name = b.CreateString(f"node-{i}" * (i % 5))
        blob = b.CreateByteVector(bytes(range(i % 256)) * 3)
        b.StartObject(7)
        b.PrependUint64Slot(0, i * 2**40, 0)
        b.PrependUOffsetTRelativeSlot(1, name, 0)
        b.PrependUint8Slot(2, i % 3, 0)
        b.PrependUOffsetTRelativeSlot(3, blob, 0)
        b.PrependUint16Slot(4, i % 7, 0)
        b.PrependBoolSlot(5, i % 2 == 1, False)
        b.PrependUint32Slot(6, i % 4, 0)
        tables.append(b.EndObject())
    b.StartVector(4, len(tables), 4)
    for off in reversed(tables):
        b.PrependUOffsetTRelative(off)
    vec = b.EndVector()
    b.StartObject(3)
    b.PrependUOffsetTRelativeSlot(0, vec, 0)
    b.PrependInt32(-5)
    b.Slot(2)
    root = b.EndObject()
    b.Finish(root, file_identifier=b"Ichk")
    return bytes(b.Output())


@pytest.mark.parametrize("initial", [1, 7, 1024])
@pytest.mark.parametrize("n", [0, 1, 40, 400])
def test_same_bytes_when_growing_from_any_size(initial: int, n: int) -> None:
    assert _build(TableBuilder(initial), n) == _build(flatbuffers.Builder(initial), n)


def test_misuse_is_refused() -> None:
    b = TableBuilder()
    b.StartObject(1)
    with pytest.raises(ValueError, match="inside another"):
        b.StartObject(1)
    with pytest.raises(ValueError, match="inside an object"):
        b.CreateString("x")
    b.EndObject()
    with pytest.raises(ValueError, match="without StartObject"):
        b.EndObject()
    with pytest.raises(ValueError, match="offset arithmetic"):
        b.PrependUOffsetTRelative(b.Offset() + 100)
    with pytest.raises(ValueError, match="before Finish"):
        b.Output()
