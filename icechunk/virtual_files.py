"""Reference the variables of a local netCDF or HDF5 file in place, as virtual chunks.

:func:`reference_netcdf` reads only the file's *header* and chunk index: every variable becomes a
zarr array of a writable session whose chunks are virtual references to byte ranges of the file,
so no data is copied. Two families of files are understood:

* **netCDF classic** (CDF-1, CDF-2 "64-bit offset" and CDF-5), parsed here from the format's
  public specification. Data is big-endian, so arrays use a big-endian ``bytes`` codec.
  Fixed-size variables are contiguous: they are cut into chunks along their leading dimensions
  (each chunk at most ``max_chunk_bytes``). Record variables are interleaved, one record of every
  record variable after the other: each record is (at least) one chunk, at
  ``begin + record * record_size``.
* **netCDF-4 / HDF5**, through ``h5py``: chunked datasets keep their HDF5 chunks (the chunk
  index gives each chunk's offset and size), with the deflate, shuffle and zstd filters mapped
  to zarr codecs; contiguous datasets are cut like classic variables. Other filters, compact or
  external storage and non-numeric types are refused with a clear error.

Arrays carry the variable's attributes (``scale_factor``, ``add_offset``, ``units`` ...), its
dimension names (zarr ``dimension_names``) and, as xarray expects of zarr v3, ``_FillValue`` in
xarray's encoding, so ``xarray.open_zarr(store, consolidated=False)`` decodes them like
``xarray.open_dataset`` decodes the file. References carry a last-modified checksum (the file's
modification time rounded up to the second): reading them after the file changed fails with
:class:`~icechunk.virtual.VirtualChunkModifiedError`.
"""

from __future__ import annotations

import base64
import math
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO, Literal
from urllib.parse import quote

import numpy as np
import numpy.typing as npt

from icechunk._sync import sync
from icechunk.errors import ErrorKind, InvalidInputError

if TYPE_CHECKING:
    from icechunk.session import Session
    from icechunk.store import IcechunkStore

__all__ = ["reference_netcdf"]

DEFAULT_MAX_CHUNK_BYTES = 8 * 1024 * 1024
"""Contiguous variables are cut into chunks of at most this many bytes (whole trailing dims)."""


def _bad_file(path: str, why: str) -> InvalidInputError:
    return InvalidInputError(f"cannot reference {path}: {why}", ErrorKind.INVALID_ARGUMENT)


# -- what a variable becomes ---------------------------------------------------------------------


@dataclass
class _Variable:
    """One array to create and its references (coordinates, offsets, lengths)."""

    name: str
    dims: list[str]
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype[Any]
    attrs: dict[str, Any]
    fill_value: Any
    compressors: list[Any] = field(default_factory=list)
    coords: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros((0, 0), np.int64))
    offsets: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    lengths: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))


@dataclass
class _Group:
    attrs: dict[str, Any]
    variables: list[_Variable]
    groups: dict[str, _Group] = field(default_factory=dict)


def _split_contiguous(
    shape: tuple[int, ...], itemsize: int, max_bytes: int
) -> tuple[tuple[int, ...], int]:
    """Chunk shape cutting a C-ordered block along its leading dims, and how many dims are cut.

    The chunk keeps whole trailing dimensions: ``(1, ..., 1, shape[k], ..., shape[-1])`` with
    the smallest ``k`` giving at most ``max_bytes`` per chunk (at least the last dimension).
    """
    k = 0
    while k < len(shape) - 1 and math.prod(shape[k:]) * itemsize > max_bytes:
        k += 1
    return (1,) * k + tuple(max(1, d) for d in shape[k:]), k


def _contiguous_refs(
    shape: tuple[int, ...], itemsize: int, begin: int, max_bytes: int
) -> tuple[tuple[int, ...], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Chunks of a contiguous C-ordered variable at ``begin``: shape, coords, offsets, lengths."""
    chunks, k = _split_contiguous(shape, itemsize, max_bytes)
    ndim = len(shape)
    if any(d == 0 for d in shape):
        empty = np.zeros(0, np.int64)
        return chunks, np.zeros((0, ndim), np.int64), empty, empty
    nbytes = math.prod(shape[k:]) * itemsize
    count = math.prod(shape[:k])
    idx = np.arange(count, dtype=np.int64)
    coords = np.zeros((count, ndim), dtype=np.int64)
    if k:
        coords[:, :k] = np.stack(np.unravel_index(idx, shape[:k]), axis=1)
    return chunks, coords, begin + idx * nbytes, np.full(count, nbytes, dtype=np.int64)


# -- attributes ----------------------------------------------------------------------------------


def _attr_value(value: Any) -> Any:
    """A JSON-friendly attribute value (length-1 arrays become scalars, bytes become str)."""
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode("utf-8", errors="replace").rstrip("\x00")
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SUO":
            items = [_attr_value(v) for v in value.ravel().tolist()]
            return items[0] if len(items) == 1 else items
        if value.size == 1:
            return value.ravel()[0].item()
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _fill_value_attr(value: Any, dtype: np.dtype[Any]) -> Any:
    """``_FillValue`` encoded the way xarray stores it in zarr v3 attributes, or ``None``.

    ``None`` (drop it) for a value that does not fit the variable's type, such as NaN for an
    integer variable: xarray ignores such a fill value when it opens the file too.
    """
    value = _attr_value(value)
    if isinstance(value, list) or value is None:
        return None
    if dtype.kind == "f":
        return base64.standard_b64encode(struct.pack("<d", float(value))).decode()
    if dtype.kind in "iu":
        if isinstance(value, float) and not value.is_integer():
            return None
        return int(value)
    if dtype.kind == "b":
        return bool(value)
    return None


def _variable_attrs(
    raw: dict[str, Any], dtype: np.dtype[Any], hidden: frozenset[str]
) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for key, value in raw.items():
        if key in hidden:
            continue
        if key == "_FillValue":
            encoded = _fill_value_attr(value, dtype)
            if encoded is not None:
                attrs[key] = encoded
            continue
        converted = _attr_value(value)
        if converted is not None:
            attrs[key] = converted
    return attrs


def _zarr_fill_value(dtype: np.dtype[Any], fill: Any) -> Any:
    value = _attr_value(fill) if fill is not None else None
    if value is None or isinstance(value, list):
        return 0
    if dtype.kind in "iu" and isinstance(value, float):
        return int(value) if value.is_integer() else 0
    return value


# -- netCDF classic --------------------------------------------------------------------------------

_NC_TYPES: dict[int, str] = {
    1: "i1",
    2: "S1",
    3: ">i2",
    4: ">i4",
    5: ">f4",
    6: ">f8",
    7: "u1",
    8: ">u2",
    9: ">u4",
    10: ">i8",
    11: ">u8",
}
_NC_DIMENSION, _NC_VARIABLE, _NC_ATTRIBUTE = 10, 11, 12
_STREAMING = 0xFFFFFFFF


class _ClassicHeader:
    """A sequential reader of a netCDF classic header (big-endian, 4-byte aligned)."""

    def __init__(self, f: BinaryIO, path: str, version: int) -> None:
        self.f = f
        self.path = path
        self.version = version  # 1, 2 or 5

    def _read(self, n: int) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise _bad_file(self.path, "truncated netCDF header")
        return data

    def u32(self) -> int:
        return int(struct.unpack(">I", self._read(4))[0])

    def count(self) -> int:
        """NON_NEG: 4 bytes, 8 in CDF-5."""
        if self.version == 5:
            return int(struct.unpack(">Q", self._read(8))[0])
        return self.u32()

    def offset(self) -> int:
        """OFFSET: 4 bytes in CDF-1, 8 in CDF-2 and CDF-5."""
        if self.version == 1:
            return self.u32()
        return int(struct.unpack(">Q", self._read(8))[0])

    def name(self) -> str:
        n = self.count()
        raw = self._read(n)
        self._read(-n % 4)
        return raw.decode("utf-8")

    def values(self, nc_type: int, n: int) -> Any:
        dtype = _NC_TYPES.get(nc_type)
        if dtype is None:
            raise _bad_file(self.path, f"unknown netCDF type {nc_type}")
        size = np.dtype(dtype).itemsize * n
        raw = self._read(size)
        self._read(-size % 4)
        if nc_type == 2:
            return raw.rstrip(b"\x00").decode("utf-8", errors="replace")
        return np.frombuffer(raw, dtype=dtype).astype(np.dtype(dtype).newbyteorder("="))

    def tagged_list(self, tag: int) -> int:
        """The element count of a ``dim_list``/``att_list``/``var_list`` (0 when ABSENT)."""
        found = self.u32()
        n = self.count()
        if found == 0 and n == 0:
            return 0
        if found != tag:
            raise _bad_file(self.path, f"corrupt netCDF header (tag {found}, expected {tag})")
        return n

    def attributes(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for _ in range(self.tagged_list(_NC_ATTRIBUTE)):
            name = self.name()
            nc_type = self.u32()
            out[name] = self.values(nc_type, self.count())
        return out


_CLASSIC_HIDDEN = frozenset({"_NCProperties", "_nc3_strict"})


def _classic(path: str, max_bytes: int) -> _Group:
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        magic = f.read(4)
        version = magic[3]
        h = _ClassicHeader(f, path, version)
        numrecs = h.count()
        dims = [(h.name(), h.count()) for _ in range(h.tagged_list(_NC_DIMENSION))]
        global_attrs = h.attributes()
        raw_vars: list[tuple[str, list[int], dict[str, Any], int, int, int]] = []
        for _ in range(h.tagged_list(_NC_VARIABLE)):
            name = h.name()
            dimids = [h.count() for _ in range(h.count())]
            attrs = h.attributes()
            nc_type = h.u32()
            vsize = h.count()
            begin = h.offset()
            raw_vars.append((name, dimids, attrs, nc_type, vsize, begin))

    def is_record(dimids: list[int]) -> bool:
        return bool(dimids) and dims[dimids[0]][1] == 0

    record_vars = [v for v in raw_vars if is_record(v[1])]

    def one_record_bytes(dimids: list[int], nc_type: int) -> int:
        inner = [dims[d][1] for d in dimids[1:]]
        return math.prod(inner) * np.dtype(_NC_TYPES[nc_type]).itemsize

    if len(record_vars) == 1:  # a lone record variable is not padded
        recsize = one_record_bytes(record_vars[0][1], record_vars[0][3])
    else:
        recsize = sum(v[4] for v in record_vars)
    if numrecs == _STREAMING:
        first = min((v[5] for v in record_vars), default=size)
        numrecs = (size - first) // recsize if recsize else 0

    variables: list[_Variable] = []
    for name, dimids, attrs, nc_type, _vsize, begin in raw_vars:
        if nc_type == 2:
            raise _bad_file(
                path, f"variable `{name}` holds characters (NC_CHAR), which are not supported"
            )
        dtype = np.dtype(_NC_TYPES[nc_type])
        dim_names = [dims[d][0] for d in dimids]
        var = _Variable(
            name=name,
            dims=dim_names,
            shape=(),
            chunks=(),
            dtype=dtype,
            attrs=_variable_attrs(attrs, dtype, _CLASSIC_HIDDEN),
            fill_value=_zarr_fill_value(dtype, attrs.get("_FillValue")),
        )
        if is_record(dimids):
            inner = tuple(dims[d][1] for d in dimids[1:])
            var.shape = (numrecs, *inner)
            inner_chunks, coords, offs, lens = _contiguous_refs(inner, dtype.itemsize, 0, max_bytes)
            var.chunks = (1, *inner_chunks)
            per_record = len(offs)
            recs = np.repeat(np.arange(numrecs, dtype=np.int64), per_record)
            var.coords = np.concatenate(
                [recs[:, None], np.tile(coords, (numrecs, 1))], axis=1
            ).astype(np.int64)
            var.offsets = begin + recs * recsize + np.tile(offs, numrecs)
            var.lengths = np.tile(lens, numrecs)
        else:
            var.shape = tuple(dims[d][1] for d in dimids)
            var.chunks, var.coords, var.offsets, var.lengths = _contiguous_refs(
                var.shape, dtype.itemsize, begin, max_bytes
            )
        if len(var.offsets) and int((var.offsets + var.lengths).max()) > size:
            raise _bad_file(path, f"variable `{name}` extends past the end of the file")
        variables.append(var)
    return _Group(_variable_attrs(global_attrs, np.dtype("f8"), _CLASSIC_HIDDEN), variables)


# -- HDF5 / netCDF-4 -----------------------------------------------------------------------------

_H5_HIDDEN = frozenset(
    {
        "CLASS",
        "NAME",
        "REFERENCE_LIST",
        "DIMENSION_LIST",
        "_Netcdf4Dimid",
        "_Netcdf4Coordinates",
        "_NCProperties",
        "_nc3_strict",
    }
)
_NOT_A_VARIABLE = b"This is a netCDF dimension but not a netCDF variable"
_H5_DEFLATE, _H5_SHUFFLE, _H5_ZSTD = 1, 2, 32015


def _h5_codecs(ds: Any, path: str) -> list[Any]:
    from zarr.codecs import ZstdCodec
    from zarr.codecs.numcodecs import Shuffle, Zlib

    plist = ds.id.get_create_plist()
    codecs: list[Any] = []
    for i in range(plist.get_nfilters()):
        code, _flags, values, name = plist.get_filter(i)
        if code == _H5_DEFLATE:
            codecs.append(Zlib(level=int(values[0]) if values else 6))
        elif code == _H5_SHUFFLE:
            codecs.append(Shuffle(elementsize=ds.dtype.itemsize))
        elif code == _H5_ZSTD:
            codecs.append(ZstdCodec(level=int(values[0]) if values else 3))
        else:
            label = name.decode() if isinstance(name, bytes) else str(name)
            raise _bad_file(
                path,
                f"dataset `{ds.name}` uses the HDF5 filter {label!r} (id {code}), which has no "
                "zarr codec here (supported: deflate, shuffle, zstd)",
            )
    return codecs


def _h5_dims(ds: Any) -> list[str]:
    import h5py  # type: ignore[import-untyped]

    if ds.ndim == 1 and h5py.h5ds.is_scale(ds.id):
        return [ds.name.rsplit("/", 1)[-1]]
    names: list[str] = []
    for i in range(ds.ndim):
        scales = ds.dims[i]
        if len(scales):
            names.append(scales[0].name.rsplit("/", 1)[-1])
        else:
            names.append(f"phony_dim_{i}")
    return names


def _h5_chunk_refs(
    ds: Any, path: str
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    found: list[tuple[tuple[int, ...], int, int, int]] = []

    def collect(info: Any) -> None:
        found.append((tuple(info.chunk_offset), info.filter_mask, info.byte_offset, info.size))

    if hasattr(ds.id, "chunk_iter"):
        ds.id.chunk_iter(collect)
    else:  # pragma: no cover - older HDF5
        for i in range(ds.id.get_num_chunks()):
            collect(ds.id.get_chunk_info(i))
    if any(mask for _, mask, _, _ in found):
        raise _bad_file(
            path, f"dataset `{ds.name}` has chunks stored with some filters skipped (filter mask)"
        )
    ndim = ds.ndim
    chunks = np.array(ds.chunks, dtype=np.int64)
    coords = np.array([c for c, _, _, _ in found], dtype=np.int64).reshape(len(found), ndim)
    return (
        coords // chunks,
        np.array([o for _, _, o, _ in found], dtype=np.int64),
        np.array([s for _, _, _, s in found], dtype=np.int64),
    )


def _h5_variable(ds: Any, path: str, max_bytes: int) -> _Variable:
    import h5py

    dtype = ds.dtype
    if dtype.kind not in "biuf" or dtype.fields is not None:
        raise _bad_file(path, f"dataset `{ds.name}` has the non-numeric type {dtype}")
    if ds.external:
        raise _bad_file(path, f"dataset `{ds.name}` keeps its data in external files")
    layout = ds.id.get_create_plist().get_layout()
    native = dtype.newbyteorder("=")
    var = _Variable(
        name=ds.name.rsplit("/", 1)[-1],
        dims=_h5_dims(ds),
        shape=tuple(ds.shape),
        chunks=(),
        dtype=dtype,
        attrs=_variable_attrs(dict(ds.attrs), native, _H5_HIDDEN),
        fill_value=_zarr_fill_value(native, ds.fillvalue),
    )
    if layout == h5py.h5d.CHUNKED:
        var.chunks = tuple(ds.chunks)
        var.compressors = _h5_codecs(ds, path)
        var.coords, var.offsets, var.lengths = _h5_chunk_refs(ds, path)
    elif layout == h5py.h5d.CONTIGUOUS:
        offset = ds.id.get_offset()
        if offset is None:  # never written: every chunk reads as the fill value
            var.chunks, _, _, _ = _contiguous_refs(var.shape, dtype.itemsize, 0, max_bytes)
        else:
            var.chunks, var.coords, var.offsets, var.lengths = _contiguous_refs(
                var.shape, dtype.itemsize, int(offset), max_bytes
            )
    else:
        kind = "compact" if layout == h5py.h5d.COMPACT else f"layout {layout}"
        raise _bad_file(
            path, f"dataset `{ds.name}` uses {kind} storage, which cannot be referenced"
        )
    return var


def _h5_group(group: Any, path: str, max_bytes: int) -> _Group:
    import h5py

    out = _Group(_variable_attrs(dict(group.attrs), np.dtype("f8"), _H5_HIDDEN), [])
    for name, item in group.items():
        if isinstance(item, h5py.Group):
            out.groups[name] = _h5_group(item, path, max_bytes)
        elif isinstance(item, h5py.Dataset):
            label = item.attrs.get("NAME")
            if isinstance(label, bytes | np.bytes_) and bytes(label).startswith(_NOT_A_VARIABLE):
                continue  # a dimension without a coordinate variable
            out.variables.append(_h5_variable(item, path, max_bytes))
    return out


def _hdf5(path: str, max_bytes: int) -> _Group:
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - h5py is in the xarray extra
        raise _bad_file(path, "reading netCDF-4/HDF5 files needs h5py (`pip install h5py`)") from e
    with h5py.File(path, "r") as f:
        return _h5_group(f, path, max_bytes)


# -- writing the arrays and references -------------------------------------------------------------


def _walk(group: _Group, prefix: str) -> Iterator[tuple[str, _Group]]:
    yield prefix, group
    for name, sub in group.groups.items():
        yield from _walk(sub, f"{prefix}/{name}" if prefix else name)


def _default_checksum(path: str) -> datetime:
    """The file's modification time rounded up to the next whole second (a safe bound)."""
    mtime_ns = os.stat(path).st_mtime_ns
    return datetime.fromtimestamp(-(-mtime_ns // 1_000_000_000), UTC)


def reference_netcdf(
    target: Session | IcechunkStore,
    path: str | os.PathLike[str],
    *,
    group: str = "",
    location: str | None = None,
    checksum: str | datetime | bool | None = True,
    validate_containers: bool = True,
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
) -> list[str]:
    """Reference every variable of a local netCDF (classic or 4) / HDF5 file, copying no data.

    Creates, in ``group`` of the writable session, one zarr array per variable (coordinate
    variables included) with the variable's dtype, shape, chunking, fill value, dimension names
    and attributes, and sets its chunks to virtual references into the file. Global attributes
    go to the group. Existing arrays of the same names are replaced.

    Parameters
    ----------
    target
        A writable :class:`~icechunk.session.Session` or its store.
    path
        The local file to parse.
    group
        The destination group path (``""``: the root group).
    location
        The URL recorded in the references; default ``file://<absolute path>``. Give e.g. an
        ``s3://`` or ``https://`` URL when the same bytes are served from there.
    checksum
        ``True`` (default): the file's modification time rounded up to the second when
        ``location`` is a ``file://`` URL, no checksum otherwise; ``False``/``None``: none; or
        an explicit ETag string or timezone-aware datetime.
    validate_containers
        Refuse locations that match no virtual chunk container of the repository.
    max_chunk_bytes
        Contiguous variables are cut along leading dimensions into chunks of at most this size.

    Returns
    -------
    list[str]
        The paths of the arrays created.

    Raises
    ------
    InvalidInputError
        Not a netCDF/HDF5 file, an unsupported feature (characters, compound types, unknown
        filters, compact or external storage), or a location refused by the containers. The
        session is unchanged when the file cannot be parsed.
    """
    from icechunk.session import Session
    from icechunk.virtual import (
        find_container,
        no_container_error,
        repo_containers,
        split_checksum,
        validate_location,
    )

    session = target if isinstance(target, Session) else target.session
    file_path = os.path.abspath(os.fspath(path))
    with open(file_path, "rb") as f:
        magic = f.read(8)
    if magic[:3] == b"CDF" and magic[3:4] in (b"\x01", b"\x02", b"\x05"):
        tree = _classic(file_path, max_chunk_bytes)
    elif magic == b"\x89HDF\r\n\x1a\n":
        tree = _hdf5(file_path, max_chunk_bytes)
    else:
        try:
            import h5py

            is_h5 = bool(h5py.is_hdf5(file_path))
        except ImportError:  # pragma: no cover
            is_h5 = False
        if not is_h5:
            raise _bad_file(file_path, "not a netCDF (classic or 4) or HDF5 file")
        tree = _hdf5(file_path, max_chunk_bytes)
    url = location if location is not None else "file://" + quote(file_path)
    if checksum is True:
        checksum = _default_checksum(file_path) if url.startswith("file://") else None
    elif checksum is False:
        checksum = None
    etag, seconds = split_checksum(checksum)
    validate_location(url)
    if validate_containers and find_container(repo_containers(session.config), url) is None:
        raise no_container_error(url)  # before any array is created
    return _write(
        session, tree, group.strip("/"), url, etag, seconds, validate_containers, no_container_error
    )


def _write(
    session: Session,
    tree: _Group,
    root: str,
    url: str,
    etag: str | None,
    seconds: int,
    validate_containers: bool,
    no_container_error: Any,
) -> list[str]:
    import zarr
    from zarr.codecs import BytesCodec

    store = session.store
    created: list[str] = []
    for prefix, grp in _walk(tree, root):
        zgroup = zarr.open_group(store=store, path=prefix, mode="a")
        zgroup.attrs.update(grp.attrs)
        for var in grp.variables:
            endian: Literal["big", "little"] = "big" if var.dtype.byteorder == ">" else "little"
            array = zgroup.create_array(
                name=var.name,
                shape=var.shape,
                chunks=var.chunks,
                dtype=var.dtype.newbyteorder("="),
                serializer=BytesCodec(endian=endian) if var.dtype.itemsize > 1 else BytesCodec(),
                compressors=var.compressors or None,
                filters=None,
                fill_value=var.fill_value,
                attributes=var.attrs,
                dimension_names=var.dims,
                overwrite=True,
            )
            n = len(var.offsets)
            failed = sync(
                session.set_virtual_refs_columns(
                    array.path,
                    var.coords.reshape(n, len(var.shape)),
                    [url] * n,
                    var.offsets,
                    var.lengths,
                    [etag] * n if etag is not None else None,
                    np.full(n, seconds, dtype=np.int64) if seconds else None,
                    validate_containers=validate_containers,
                )
            )
            if failed:
                raise no_container_error(url)
            created.append("/" + array.path)
    return created
