"""``icechunk._core.maintenance.reachable``: the walk from tips to snapshots, manifests, chunks."""

from __future__ import annotations

import pytest

from icechunk._core.maintenance.reachable import _Limits, _walk
from icechunk._sync import sync
from icechunk.errors import SnapshotNotFoundError
from tests.core.maintenance._history import history


def _stored(objects: object, prefix: str) -> set[str]:
    storage = objects.storage  # type: ignore[attr-defined]

    async def listing() -> set[str]:
        return {entry.key.rsplit("/", 1)[-1] async for entry in storage.list(prefix)}

    return sync(listing())


@pytest.mark.parametrize("spec", [1, 2])
def test_walk_from_the_tip_reaches_every_ancestor_and_object(spec: int) -> None:
    objects, ids = history(spec)
    info = sync(objects.refs.read()) if spec == 2 else None  # type: ignore[attr-defined]
    reached = sync(_walk(objects, [ids[-1]], _Limits(), None, info=info))
    assert reached.snapshots == set(ids)
    from icechunk.format.ids import encode_id

    assert {encode_id(m) for m in reached.manifests} == _stored(objects, "manifests/")
    assert {encode_id(c) for c in reached.chunks} == _stored(objects, "chunks/")


def test_walk_from_an_older_tip_and_singles() -> None:
    objects, (initial, c1, _c2, c3) = history(1)
    reached = sync(_walk(objects, [c1], _Limits(), None))
    assert reached.snapshots == {initial, c1}
    assert len(reached.chunks) == 1
    with_single = sync(_walk(objects, [c1], _Limits(), None, singles=[c3], known=reached))
    assert with_single.snapshots == {initial, c1, c3}  # c3 without its ancestor c2
    assert reached.snapshots == {initial, c1}  # `known` is not modified


def test_unknown_tip_in_the_repo_info_is_refused() -> None:
    objects, _ = history(2)
    info = sync(objects.refs.read())  # type: ignore[attr-defined]
    with pytest.raises(SnapshotNotFoundError):
        sync(_walk(objects, [b"\x00" * 12], _Limits(), None, info=info))
