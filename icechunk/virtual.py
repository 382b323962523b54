"""Virtual chunks: chunk bytes that live inside objects outside the repository.

A virtual chunk reference records a URL, a byte range and optionally a checksum of the object
that holds the bytes (its ETag, or a last-modified time in whole seconds). This module owns

* the configuration objects: :class:`VirtualChunkContainer` (a URL prefix and the
  :class:`ObjectStoreConfig` that can fetch from it), :class:`VirtualChunkSpec` (one reference,
  input of ``IcechunkStore.set_virtual_refs``) and the ``*_store`` helpers;
* container matching (:func:`find_container`, the longest matching ``url_prefix`` wins), the
  validation of locations and checksums, and the containers a repository persisted;
* the errors of virtual reads (:class:`VirtualChunkModifiedError`,
  :class:`UnauthorizedVirtualChunkContainerError`) (fetching lives in :mod:`icechunk._core.virtual_fetch`).

Related modules: :mod:`icechunk.credentials` (what ``authorize_virtual_chunk_access`` takes),
:mod:`icechunk._core.virtual_refs` (checking and building batches of references before they are
staged), :mod:`icechunk._core.virtual_fetch` (the per-scheme readers and the checksum checks) and
:mod:`icechunk.virtual_files` (referencing netCDF/HDF5 files in place).

Authorization is by container URL prefix, never by name: reading a chunk requires its
container's ``url_prefix`` to be a key of the repository's ``authorize_virtual_chunk_access``.
"""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import urlsplit

import msgspec

from icechunk._object_stores import (
    _SCHEMES_OF,
    KNOWN_SCHEMES,
    AnyObjectStoreConfig,
    ObjectStoreConfig,
    S3Options,
    _StoreConfig,
    azure_store,
    gcs_store,
    http_store,
    in_memory_store,
    local_filesystem_store,
    s3_store,
)
from icechunk.errors import ErrorKind, InvalidInputError, StorageError

if TYPE_CHECKING:
    from icechunk.config import RepositoryConfig

__all__ = [
    "KNOWN_SCHEMES",
    "MAX_CHECKSUM_SECONDS",
    "AnyObjectStoreConfig",
    "ObjectStoreConfig",
    "S3Options",
    "UnauthorizedVirtualChunkContainerError",
    "VirtualChunkContainer",
    "VirtualChunkModifiedError",
    "VirtualChunkSpec",
    "absolute_locations",
    "azure_store",
    "checksum_seconds",
    "file_etag",
    "find_container",
    "gcs_store",
    "http_store",
    "in_memory_store",
    "local_filesystem_store",
    "no_container_error",
    "persisted_config",
    "repo_containers",
    "resolve_location",
    "s3_store",
    "spec_indices",
    "split_checksum",
    "validate_location",
    "with_persisted_containers",
]


NO_CONTAINER = ErrorKind.NO_CONTAINER_FOR_VIRTUAL_CHUNK
UNAUTHORIZED = ErrorKind.UNAUTHORIZED_VIRTUAL_CHUNK_CONTAINER
INVALID_REF = ErrorKind.INVALID_VIRTUAL_REF
MODIFIED = ErrorKind.VIRTUAL_CHUNK_MODIFIED
SHORT_OBJECT = ErrorKind.INVALID_OBJECT_SIZE

DOCS = "see https://icechunk.io/en/stable/virtual/"


class VirtualChunkModifiedError(StorageError):
    """The object holding a virtual chunk changed after the reference was written.

    Raised when the recorded ETag differs from the object's, or the object was modified after
    the recorded last-modified time. No bytes are returned.
    """

    _default_kind = MODIFIED


class UnauthorizedVirtualChunkContainerError(InvalidInputError):
    """A virtual chunk lives in a container the repository was not authorized to read."""

    _default_kind = UNAUTHORIZED


class _BadChecksumType(InvalidInputError, TypeError):
    """A checksum of the wrong type: an :class:`InvalidInputError` that is also a TypeError."""


# -- object store configurations ---------------------------------------------------------------


# -- containers and specs ------------------------------------------------------------------------


def _is_url_prefix(value: object) -> bool:
    return isinstance(value, str) and value.endswith("/")


class VirtualChunkContainer:
    """A place virtual chunks may point to: every URL starting with ``url_prefix``.

    Parameters
    ----------
    url_prefix
        A URL ending in ``/`` (``file:///data/``, ``s3://bucket/prefix/``, ``https://host/``);
        its scheme must suit ``store``.
    store
        How to fetch the objects (an :class:`ObjectStoreConfig` variant).
    name
        Optional name, unique per repository: references may then use ``vcc://<name>/<path>``,
        resolved against ``url_prefix`` when read.

    Raises
    ------
    InvalidInputError
        The prefix does not end in ``/``, is not an absolute URL, or its scheme does not match
        the store.
    """

    __slots__ = ("name", "store", "url_prefix")

    def __init__(self, url_prefix: str, store: _StoreConfig, name: str | None = None):
        if not _is_url_prefix(url_prefix):
            raise InvalidInputError(
                f"invalid virtual chunk container url prefix {url_prefix!r}: it must end in `/`",
                ErrorKind.INVALID_ARGUMENT,
            )
        parts = urlsplit(url_prefix)
        allowed = _SCHEMES_OF.get(type(store))
        if allowed is None:
            raise InvalidInputError(
                f"invalid store for virtual chunk container {url_prefix!r}: {store!r} is not an "
                "ObjectStoreConfig (use local_filesystem_store, s3_store, http_store ...)",
                ErrorKind.INVALID_ARGUMENT,
            )
        if parts.scheme not in allowed or "://" not in url_prefix:
            raise InvalidInputError(
                f"invalid virtual chunk container url prefix {url_prefix!r}: a "
                f"{type(store).__name__} store serves {', '.join(sorted(s + '://' for s in allowed))}"
                " URLs",
                ErrorKind.INVALID_ARGUMENT,
            )
        if (
            parts.scheme in ("s3", "gs", "gcs", "az", "azure", "abfs", "tigris")
            and not parts.netloc
        ):
            raise InvalidInputError(
                f"invalid virtual chunk container url prefix {url_prefix!r}: no bucket",
                ErrorKind.INVALID_ARGUMENT,
            )
        if name is not None and (not name or "/" in name):
            raise InvalidInputError(
                f"invalid virtual chunk container name {name!r}", ErrorKind.INVALID_ARGUMENT
            )
        self.url_prefix = url_prefix
        self.store = store
        self.name = name

    def __repr__(self) -> str:
        return (
            f"VirtualChunkContainer(url_prefix={self.url_prefix!r}, store={self.store!r}, "
            f"name={self.name!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VirtualChunkContainer):
            return NotImplemented
        return (self.url_prefix, self.store, self.name) == (
            other.url_prefix,
            other.store,
            other.name,
        )

    def __hash__(self) -> int:
        return hash((self.url_prefix, self.name))

    def __getstate__(self) -> dict[str, Any]:
        return {"url_prefix": self.url_prefix, "store": self.store, "name": self.name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.url_prefix = state["url_prefix"]
        self.store = state["store"]
        self.name = state["name"]


class _SpecRecord(msgspec.Struct, frozen=True, gc=False, weakref=False):
    """The fields of a :class:`VirtualChunkSpec`, laid out and constructed in C by msgspec.

    A million specs are built in a Python loop by the caller, so construction is the cost that
    matters: ``__init__`` is msgspec's (positional or keyword arguments, defaults), and the
    instances are not tracked by the cyclic garbage collector (``gc=False``), as the real
    Icechunk's Rust objects are not. With a Python class each spec was a tracked object, and
    the full collections its allocations triggered cost as much as building it (1M specs:
    1.1 s with a ``__slots__`` class, 0.4 s so; the real 2.3.0 takes 0.53 s).

    ``index`` holds the coordinates as a tuple (integers only, so untracked as well);
    :class:`VirtualChunkSpec` shows it as a list.
    """

    index: Iterable[int]
    location: str
    offset: int
    length: int
    etag_checksum: str | None = None
    last_updated_at_checksum: datetime | None = None

    def __post_init__(self) -> None:
        raw = _INDEX_GET(self)
        try:
            _INDEX_SET(self, tuple(raw))
        except TypeError:
            raise TypeError(
                "VirtualChunkSpec index must be a list of chunk coordinates, "
                f"not {type(raw).__name__}"
            ) from None


_INDEX_GET: Final = _SpecRecord.__dict__["index"].__get__
"""The stored coordinates (a tuple) of a spec, read past ``VirtualChunkSpec.index``."""
_INDEX_SET: Final = _SpecRecord.__dict__["index"].__set__


class VirtualChunkSpec(_SpecRecord, frozen=True, gc=False, weakref=False):
    """One virtual reference for ``IcechunkStore.set_virtual_refs``.

    Construction only stores its arguments (``index`` as a tuple of its items); every check
    happens in ``set_virtual_refs``, for the whole batch at once. The fields are read-only, as
    in the real Icechunk; specs compare by value and are not hashable.

    Parameters
    ----------
    index
        Chunk coordinates in the array's chunk grid (an iterable of integers); read back as a
        new list on each access.
    location
        Absolute URL of the object holding the chunk.
    offset, length
        The chunk's bytes in that object.
    etag_checksum
        The object's ETag: reads fail if it changes.
    last_updated_at_checksum
        A timezone-aware time: reads fail if the object was modified after it (second
        resolution).

    Raises
    ------
    TypeError
        ``index`` is not an iterable of chunk coordinates.
    """

    @property  # type: ignore[misc]
    def index(self) -> list[int]:
        """The chunk coordinates (a new list)."""
        return list(_INDEX_GET(self))

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return (VirtualChunkSpec, (self.index, *_FIELDS(self)))

    def __repr__(self) -> str:
        location, offset, length, etag, updated = _FIELDS(self)
        return (
            f"VirtualChunkSpec(index={self.index!r}, location={location!r}, "
            f"offset={offset!r}, length={length!r}, etag_checksum={etag!r}, "
            f"last_updated_at_checksum={updated!r})"
        )


_FIELDS: Final = operator.attrgetter(*_SpecRecord.__struct_fields__[1:])
"""A spec's fields after ``index``, as a tuple."""


def spec_indices(specs: list[VirtualChunkSpec]) -> list[tuple[int, ...]]:
    """The chunk coordinates of each of ``specs``, as stored (tuples), read at C speed."""
    return list(map(_INDEX_GET, specs))


# -- matching and validation -------------------------------------------------------------------


def repo_containers(config: RepositoryConfig) -> list[VirtualChunkContainer]:
    """The virtual chunk containers ``config`` declares."""
    found = config.virtual_chunk_containers or {}
    return [c for c in found.values() if isinstance(c, VirtualChunkContainer)]


def _by_name(
    containers: Iterable[VirtualChunkContainer], name: str
) -> VirtualChunkContainer | None:
    for c in containers:
        if c.name == name:
            return c
    return None


def find_container(
    containers: Iterable[VirtualChunkContainer], location: str
) -> VirtualChunkContainer | None:
    """The container serving ``location``: the longest matching prefix (``vcc://`` by name)."""
    if location.startswith("vcc://"):
        return _by_name(containers, location[6:].split("/", 1)[0])
    best: VirtualChunkContainer | None = None
    for c in containers:
        if location.startswith(c.url_prefix) and (
            best is None or len(c.url_prefix) > len(best.url_prefix)
        ):
            best = c
    return best


def resolve_location(containers: Iterable[VirtualChunkContainer], location: str) -> str:
    """The absolute URL of ``location`` (``vcc://name/path`` expanded with its container)."""
    if not location.startswith("vcc://"):
        return location
    name, _, rest = location[6:].partition("/")
    container = _by_name(containers, name)
    if container is None:
        raise InvalidInputError(
            f"no virtual chunk container named `{name}` for the chunk location ({location}), "
            f"edit the repository configuration adding it, {DOCS}",
            NO_CONTAINER,
        )
    return container.url_prefix + rest


def absolute_locations(config: RepositoryConfig, locations: Iterable[str]) -> set[str]:
    """``locations`` with ``vcc://name/...`` URLs expanded by their named container.

    A ``vcc://`` URL whose container is not configured is kept as it is.
    """
    containers = repo_containers(config)
    out: set[str] = set()
    for location in locations:
        if location.startswith("vcc://"):
            name, _, rest = location[6:].partition("/")
            container = _by_name(containers, name)
            if container is not None:
                location = container.url_prefix + rest
        out.add(location)
    return out


def validate_location(location: object) -> str:
    """Check that ``location`` is an absolute URL with a supported scheme; return it.

    Raises
    ------
    InvalidInputError
        Not a string, not an absolute URL, or an unknown scheme (``invalid-virtual-ref``).
    """
    if not isinstance(location, str):
        raise InvalidInputError(
            f"virtual chunk locations must be URL strings, not {type(location).__name__}",
            INVALID_REF,
        )
    scheme, sep, rest = location.partition("://")
    if not sep or not scheme or not rest:
        raise InvalidInputError(
            f'error parsing virtual ref URL: "{location}": not an absolute URL '
            "(e.g. file:///data/file.nc, s3://bucket/key, https://host/path)",
            INVALID_REF,
        )
    if scheme.lower() not in KNOWN_SCHEMES:
        raise InvalidInputError(
            f'unsupported virtual ref URL scheme "{scheme}://" in "{location}"; use one of '
            + ", ".join(sorted(s + "://" for s in KNOWN_SCHEMES)),
            INVALID_REF,
        )
    if scheme == "file" and not rest.startswith("/"):
        raise InvalidInputError(
            f'error parsing virtual ref URL: "{location}": file URLs need an absolute path '
            "(file:///abs/path)",
            INVALID_REF,
        )
    return location


def no_container_error(location: str) -> InvalidInputError:
    return InvalidInputError(
        f"invalid chunk location, no matching virtual chunk container: `{location}`; add a "
        f"VirtualChunkContainer whose url_prefix starts this URL to the repository config, {DOCS}",
        NO_CONTAINER,
    )


MAX_CHECKSUM_SECONDS = 2**32 - 1


def checksum_seconds(value: datetime) -> int:
    """A last-modified checksum as whole seconds since the epoch (what manifests store).

    Raises
    ------
    InvalidInputError
        A naive datetime, or a time outside 1970-01-01 .. 2106-02-07 (a u32 of seconds).
    """
    if not isinstance(value, datetime):
        raise _BadChecksumType(
            f"a last-modified checksum must be a datetime, not {type(value).__name__}",
            ErrorKind.INVALID_ARGUMENT,
        )
    if value.tzinfo is None:
        raise _BadChecksumType(
            "a last-modified checksum must be a timezone-aware datetime (e.g. tzinfo=UTC)",
            ErrorKind.INVALID_ARGUMENT,
        )
    seconds = math.floor(value.timestamp())
    if not 0 < seconds <= MAX_CHECKSUM_SECONDS:
        raise InvalidInputError(
            f"last-modified checksum {value.isoformat()} is outside the representable range "
            "(1970-01-01 to 2106-02-07)",
            ErrorKind.INVALID_ARGUMENT,
        )
    return seconds


def split_checksum(checksum: object) -> tuple[str | None, int]:
    """``(etag, last-modified seconds)`` of a ``str | datetime | None`` checksum argument."""
    if checksum is None:
        return None, 0
    if isinstance(checksum, str):
        if not checksum:
            raise InvalidInputError("an ETag checksum cannot be empty", ErrorKind.INVALID_ARGUMENT)
        return checksum, 0
    if isinstance(checksum, datetime):
        return None, checksum_seconds(checksum)
    raise _BadChecksumType(
        f"checksum must be an ETag string or a timezone-aware datetime, not "
        f"{type(checksum).__name__}",
        ErrorKind.INVALID_ARGUMENT,
    )


def file_etag(st: os.stat_result) -> str:
    """The ETag of a local file, as object stores (and the real Icechunk) compute it.

    ``"<inode>-<mtime in microseconds>-<size>"`` in hexadecimal, quoted.
    """
    return f'"{st.st_ino:x}-{st.st_mtime_ns // 1000:x}-{st.st_size:x}"'


def _persisted_store(doc: object) -> _StoreConfig | None:
    """The :class:`ObjectStoreConfig` of a persisted (serde externally tagged) store, if known."""
    if not isinstance(doc, Mapping) or len(doc) != 1:
        return None
    ((tag, body),) = doc.items()
    if tag == "local_file_system" and isinstance(body, str):
        return ObjectStoreConfig.LocalFileSystem(body)
    if tag in ("s3", "s3_compatible", "tigris") and isinstance(body, Mapping):
        options = S3Options(
            region=body.get("region"),
            endpoint_url=body.get("endpoint_url"),
            allow_http=bool(body.get("allow_http", False)),
            anonymous=bool(body.get("anonymous", False)),
            force_path_style=bool(body.get("force_path_style", False)),
            network_stream_timeout_seconds=(
                None
                if body.get("network_stream_timeout_seconds", 60) is None
                else int(body.get("network_stream_timeout_seconds", 60))
            ),
            requester_pays=bool(body.get("requester_pays", False)),
        )
        kinds: dict[str, Any] = {
            "s3": ObjectStoreConfig.S3,
            "s3_compatible": ObjectStoreConfig.S3Compatible,
            "tigris": ObjectStoreConfig.Tigris,
        }
        return cast(_StoreConfig, kinds[tag](options))
    if tag == "http":
        fields = dict(body) if isinstance(body, Mapping) else {}
        headers = fields.pop("headers", None)
        return ObjectStoreConfig.Http(
            {str(k): str(v) for k, v in fields.items()} or None,
            {str(k): str(v) for k, v in headers.items()} if isinstance(headers, Mapping) else None,
        )
    if tag == "gcs":
        return ObjectStoreConfig.Gcs(dict(body) if isinstance(body, Mapping) else None)
    if tag == "in_memory":
        return ObjectStoreConfig.InMemory()
    return None


def _store_doc(store: _StoreConfig) -> dict[str, Any] | None:
    """A store as the real Icechunk persists it (serde, externally tagged), or ``None``."""
    if isinstance(store, ObjectStoreConfig.LocalFileSystem):
        return {"local_file_system": store.path}
    if isinstance(
        store, ObjectStoreConfig.S3 | ObjectStoreConfig.S3Compatible | ObjectStoreConfig.Tigris
    ):
        tag = {
            ObjectStoreConfig.S3: "s3",
            ObjectStoreConfig.S3Compatible: "s3_compatible",
            ObjectStoreConfig.Tigris: "tigris",
        }[type(store)]
        o = store.options
        return {
            tag: {
                "allow_http": o.allow_http,
                "anonymous": o.anonymous,
                "checksum_algorithm": None,
                "endpoint_url": o.endpoint_url,
                "force_path_style": o.force_path_style,
                "network_stream_timeout_seconds": o.network_stream_timeout_seconds,
                "region": o.region,
                "requester_pays": o.requester_pays,
            }
        }
    if isinstance(store, ObjectStoreConfig.Http):
        body: dict[str, Any] = dict(store.opts or {})
        if store.headers:
            body["headers"] = dict(store.headers)
        return {"http": body}
    return None


def persisted_config(config: RepositoryConfig) -> bytes | None:
    """The FlexBuffers config a new spec-2 repository stores: its virtual chunk containers.

    Laid out as the real Icechunk writes it, which reads the containers back when the repository
    is opened without a config. Containers of kinds this library cannot describe (GCS, Azure,
    in-memory) are left out. ``None`` when there is nothing to persist.
    """
    from flatbuffers import flexbuffers

    containers: dict[str, Any] = {}
    for c in (config.virtual_chunk_containers or {}).values():
        if not isinstance(c, VirtualChunkContainer):
            continue
        doc = _store_doc(c.store)
        if doc is not None:
            containers[c.url_prefix] = {"name": c.name, "store": doc, "url_prefix": c.url_prefix}
    if not containers:
        return None
    return bytes(flexbuffers.Dumps({"virtual_chunk_containers": containers}))


def with_persisted_containers(config: RepositoryConfig, persisted: bytes) -> RepositoryConfig:
    """``config`` plus the virtual chunk containers of a repository's persisted config.

    ``persisted`` is the FlexBuffers config stored in a spec-2 repository (as the real Icechunk
    writes it). Containers already in ``config`` win over persisted ones with the same prefix;
    persisted containers of unknown kinds, or an unreadable config, are ignored (they can
    always be given in ``config``).
    """
    from flatbuffers import flexbuffers

    try:
        doc = flexbuffers.Loads(persisted)
    except Exception:  # noqa: BLE001 - an opaque, optional blob: never fail opening over it
        return config
    found = doc.get("virtual_chunk_containers") if isinstance(doc, Mapping) else None
    if not isinstance(found, Mapping):
        return config
    mine = dict(config.virtual_chunk_containers or {})
    added: dict[str, VirtualChunkContainer] = {}
    for item in found.values():
        if not isinstance(item, Mapping):
            continue
        prefix, store, name = (
            item.get("url_prefix"),
            _persisted_store(item.get("store")),
            item.get("name"),
        )
        if not isinstance(prefix, str) or prefix in mine or store is None:
            continue
        try:
            added[prefix] = VirtualChunkContainer(
                prefix, store, name if isinstance(name, str) else None
            )
        except InvalidInputError:
            continue
    if not added:
        return config
    from icechunk.config import RepositoryConfig

    return config.merge(RepositoryConfig(virtual_chunk_containers={**added, **mine}))
