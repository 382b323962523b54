"""Arbitrary zarr arrays, built by zarr's own strategies, through our store vs zarr's MemoryStore.

``zarr.testing.strategies.arrays`` draws an array (any zarr v3 data type, structured and string
types included, fill values, dimension names, attributes, regular and rectilinear chunk grids,
compressors, sharding with any sub-chunk write order; rectilinear grids are enabled for the
test) and writes data into a
:class:`zarr.storage.MemoryStore`: that is the reference. Each example then goes through an
icechunk repository two ways and must read back exactly as from the reference:

- byte for byte: every key the reference holds is written to our store, committed, and read
  back from a fresh read-only session: same keys, same bytes, same array through zarr;
- through zarr: ``zarr.from_array`` writes the reference array (metadata and data) into our
  store, which is committed and read back: same metadata and same values.

Only zarr format 3 is drawn: Icechunk stores zarr v3 only (as the real one does).
"""

from __future__ import annotations

import asyncio
from typing import Any

import hypothesis.strategies as st
import numpy as np
import pytest
import zarr
import zarr.testing.strategies as zst
from hypothesis import HealthCheck, given, settings
from zarr.core.buffer import default_buffer_prototype
from zarr.storage import MemoryStore

import icechunk as ic

EXAMPLES = int(__import__("os").environ.get("ROUNDTRIP_EXAMPLES", "200"))


def _values_equal(ours: Any, reference: Any) -> None:
    ours_np = np.asarray(ours)
    ref_np = np.asarray(reference)
    assert ours_np.dtype == ref_np.dtype
    assert ours_np.shape == ref_np.shape
    if ref_np.dtype.hasobject or ref_np.dtype.kind in "OT":
        assert ours_np.tolist() == ref_np.tolist()
    else:
        # bit for bit: NaN payloads, -0.0 and padding bytes of structured types included
        assert ours_np.tobytes() == ref_np.tobytes()


async def _all_items(store: zarr.abc.store.Store) -> dict[str, bytes]:
    proto = default_buffer_prototype()
    out: dict[str, bytes] = {}
    async for key in store.list():
        buf = await store.get(key, proto)
        assert buf is not None, key
        out[key] = buf.to_bytes()
    return out


def _metadata(array: Any) -> dict[str, Any]:
    meta = array.metadata.to_dict()
    meta.pop("attributes", None)
    return dict(meta)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_zarr_arrays_roundtrip_as_through_memory_store(data: st.DataObject) -> None:
    # zarr draws rectilinear chunk grids only while they are enabled (experimental in zarr)
    with zarr.config.set({"array.rectilinear_chunks": True}):
        _roundtrip(data)


def _roundtrip(data: st.DataObject) -> None:
    reference = data.draw(zst.arrays(stores=zst.stores, zarr_formats=st.just(3)), label="array")
    assert isinstance(reference.store, MemoryStore)
    expected_items = asyncio.run(_all_items(reference.store))
    expected_values = reference[...]
    repo = ic.Repository.create(ic.in_memory_storage())

    # 1. byte for byte
    session = repo.writable_session("main")
    store = session.store
    proto = default_buffer_prototype()

    async def copy() -> None:
        for key, value in expected_items.items():
            await store.set(key, proto.buffer.from_bytes(value))

    asyncio.run(copy())
    snapshot = session.commit("byte copy")
    readback = repo.readonly_session(snapshot_id=snapshot).store
    assert asyncio.run(_all_items(readback)) == expected_items
    ours = zarr.open_array(readback, path=reference.path, mode="r")
    assert _metadata(ours) == _metadata(reference)
    assert dict(ours.attrs) == dict(reference.attrs)
    _values_equal(ours[...], expected_values)

    # 2. written by zarr itself
    session = repo.writable_session("main")
    # Not at, above or below the reference array copied in step 1 (zarr's node names can be
    # "g" or "copy": an array cannot be the parent of another node).
    here = reference.path.strip("/")
    names = [
        n
        for n in ("copy", "g/copy")
        if n != here and not n.startswith(f"{here}/") and not here.startswith(f"{n}/")
    ]
    name = data.draw(st.sampled_from(names), label="copy path")
    written = zarr.from_array(session.store, data=reference, name=name)
    _values_equal(written[...], expected_values)
    snapshot = session.commit("zarr copy")
    again = zarr.open_array(repo.readonly_session(snapshot_id=snapshot).store, path=name, mode="r")
    assert _metadata(again) == _metadata(written)
    _values_equal(again[...], expected_values)


def test_rectilinear_grid_with_edges_past_the_array_keeps_its_chunks() -> None:
    """Found by the roundtrip above: rectilinear grids were refused. A shrinking resize keeps
    every declared edge (the real Icechunk records all of them as chunks)."""
    with zarr.config.set({"array.rectilinear_chunks": True}):
        repo = ic.Repository.create(ic.in_memory_storage())
        session = repo.writable_session("main")
        a = zarr.create_array(
            session.store,
            name="a",
            shape=(10, 6),
            chunks=[[3, 3, 4], 2],
            dtype="i4",
            fill_value=-1,
        )
        a[:] = np.arange(60).reshape(10, 6)
        a.resize((2, 6))
        assert session._node("/a").meta.num_chunks == (3, 3)  # type: ignore[union-attr]
        snapshot = session.commit("shrunk")
        b = zarr.open_array(repo.readonly_session(snapshot_id=snapshot).store, path="a")
        assert b[:].tolist() == np.arange(12).reshape(2, 6).tolist()


def test_rectilinear_grids_are_refused_in_spec_1_as_the_real_one_does() -> None:
    with zarr.config.set({"array.rectilinear_chunks": True}):
        repo = ic.Repository.create(ic.in_memory_storage(), spec_version=1)
        session = repo.writable_session("main")
        with pytest.raises(ic.InvalidInputError, match="Please use spec_version=2"):
            zarr.create_array(session.store, name="a", shape=(10,), chunks=[[3, 7]], dtype="i4")
        assert session._node("/a") is None  # nothing of the array was staged
