"""``icechunk._core.virtual_refs``: checking a batch of virtual references before staging."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from icechunk import VirtualChunkSpec
from icechunk._core.chunk_refs import payload_at
from icechunk._core.payloads import VirtualPayload
from icechunk._core.virtual_refs import plan_virtual_refs, single_ref_columns, spec_columns
from icechunk.errors import ErrorKind, InvalidInputError
from tests.core._virtual import local_container_repo


def _plan(tmp_path: Path, locations: list[str], **kw: object) -> tuple[object, list[int]]:
    objects, _, _ = local_container_repo(tmp_path)
    n = len(locations)
    args: dict[str, object] = {
        "coords": np.arange(n, dtype=np.int64).reshape(n, 1),
        "offsets": np.zeros(n, dtype=np.int64),
        "lengths": np.full(n, 4, dtype=np.int64),
        "etags": None,
        "last_modified": None,
    }
    args.update(kw)
    return plan_virtual_refs(
        objects,
        "/v",
        (4,),
        locations=locations,
        validate_containers=True,
        **args,  # type: ignore[arg-type]
    )


def test_refs_outside_every_container_are_reported_not_staged(tmp_path: Path) -> None:
    inside = f"file://{tmp_path}/data/a.bin"
    refs, failed = _plan(tmp_path, [inside, "s3://elsewhere/b.bin", inside])
    assert failed == [1]
    assert refs.coords[:, 0].tolist() == [0, 2]  # type: ignore[attr-defined]
    assert payload_at(refs, 1) == VirtualPayload(inside, 0, 4)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "kind", "words"),
    [
        ({"coords": np.array([[4]], dtype=np.int64)}, ErrorKind.INVALID_CHUNK_INDEX, "outside"),
        (
            {"offsets": np.array([-1], dtype=np.int64)},
            ErrorKind.INVALID_ARGUMENT,
            "negative offset",
        ),
        ({"lengths": np.array([0], dtype=np.int64)}, ErrorKind.ZERO_LENGTH_CHUNK, "never empty"),
        (
            {"last_modified": np.array([-5], dtype=np.int64), "etags": [None]},
            ErrorKind.INVALID_ARGUMENT,
            "between 1970 and 2106",
        ),
        ({"lengths": np.array([4, 4], dtype=np.int64)}, ErrorKind.INVALID_ARGUMENT, "same length"),
    ],
)
def test_bad_batches_are_refused_whole(
    tmp_path: Path, kw: dict[str, object], kind: ErrorKind, words: str
) -> None:
    with pytest.raises(InvalidInputError, match=words) as info:
        _plan(tmp_path, [f"file://{tmp_path}/data/a.bin"], **kw)
    assert info.value.kind == kind


def test_vcc_locations_need_spec_2(tmp_path: Path) -> None:
    objects, _, _ = local_container_repo(tmp_path, spec_version=1)
    one = np.zeros(1, dtype=np.int64)
    with pytest.raises(InvalidInputError, match="need a spec version 2 repository"):
        plan_virtual_refs(
            objects,
            "/v",
            (1,),
            np.zeros((1, 1), dtype=np.int64),
            ["vcc://data/a.bin"],
            one,
            one + 1,
            None,
            None,
            validate_containers=False,
        )


def test_column_builders() -> None:
    coords, locs, offs, lens, etags, secs = single_ref_columns((1, 2), "s3://b/k", 3, 4, "etag")
    assert coords.tolist() == [[1, 2]] and locs == ["s3://b/k"]
    assert offs.tolist() == [3] and lens.tolist() == [4] and etags == ["etag"]
    assert secs is not None and secs.tolist() == [0]
    with pytest.raises(InvalidInputError, match="offset must be an integer"):
        single_ref_columns((0,), "s3://b/k", 1.5, 4, None)

    specs = [VirtualChunkSpec([0, 1], "s3://b/k", 0, 8), VirtualChunkSpec([1, 0], "s3://b/j", 8, 8)]
    coords, locs, offs, lens, etags, secs = spec_columns(specs)
    assert coords.tolist() == [[0, 1], [1, 0]] and locs == ["s3://b/k", "s3://b/j"]
    assert etags is None and secs is None  # no checksums at all
    with pytest.raises(InvalidInputError, match="same number of dimensions"):
        spec_columns([VirtualChunkSpec([0], "s3://b/k", 0, 8), *specs])
