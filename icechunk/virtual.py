"""Virtual chunks: chunk bytes that live inside objects outside the repository.

A virtual chunk reference records a URL, a byte range and optionally a checksum of the object
that holds the bytes (its ETag, or a last-modified time in whole seconds). This module owns

* the configuration objects: :class:`VirtualChunkContainer` (a URL prefix and the
  :class:`ObjectStoreConfig` that can fetch from it), :class:`VirtualChunkSpec` (one reference,
  input of ``IcechunkStore.set_virtual_refs``) and the ``*_store`` helpers;
* the credentials given to ``authorize_virtual_chunk_access`` (the :data:`LocalFileSystemAccess`
  and :data:`HttpAccess` no-auth sentinels and the S3 credential factories);
* container matching (:func:`find_container`, the longest matching ``url_prefix`` wins) and the
  validation of references before they are staged (:func:`validate_location`);
* reading: :func:`fetch_virtual` resolves the container, refuses containers the repository was
  not authorized to read, and fetches the byte range through a per-scheme fetcher (``file://``:
  positional reads in worker threads; ``s3://``: obstore through the same storage class the
  repository storage uses; ``http(s)://``: obstore's HTTP store). The checksum is checked on
  every read: an ETag must equal the object's, and the object must not have been modified after
  the recorded last-modified second; otherwise :class:`VirtualChunkModifiedError` is raised and
  no bytes are returned.

Authorization is by container URL prefix, never by name: reading a chunk requires its
container's ``url_prefix`` to be a key of the repository's ``authorize_virtual_chunk_access``.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import unquote, urlsplit

import numpy as np
import numpy.typing as npt

from icechunk.errors import (
    ErrorKind,
    InvalidInputError,
    ObjectNotFoundError,
    PreconditionFailedError,
    StorageError,
)

if TYPE_CHECKING:
    from icechunk.change_set import VirtualPayload
    from icechunk.config import RepositoryConfig
    from icechunk.repository import Repository

__all__ = [
    "HttpAccess",
    "LocalFileSystemAccess",
    "ObjectStoreConfig",
    "S3Options",
    "UnauthorizedVirtualChunkContainerError",
    "VirtualChunkContainer",
    "VirtualChunkModifiedError",
    "VirtualChunkSpec",
    "azure_store",
    "check_authorizations",
    "checksum_seconds",
    "containers_credentials",
    "fetch_virtual",
    "file_etag",
    "find_container",
    "gcs_store",
    "http_store",
    "in_memory_store",
    "local_filesystem_store",
    "s3_anonymous_credentials",
    "s3_credentials",
    "s3_from_env_credentials",
    "s3_refreshable_credentials",
    "s3_static_credentials",
    "s3_store",
    "validate_location",
    "with_persisted_containers",
]


def _kind(code: str, fallback: ErrorKind) -> ErrorKind:
    """The :class:`ErrorKind` with value ``code`` (the real Icechunk's), else ``fallback``."""
    try:
        return ErrorKind(code)
    except ValueError:
        return fallback


NO_CONTAINER = _kind("no-container-for-virtual-chunk", ErrorKind.INVALID_ARGUMENT)
UNAUTHORIZED = _kind("unauthorized-virtual-chunk-container", ErrorKind.INVALID_ARGUMENT)
INVALID_REF = _kind("invalid-virtual-ref", ErrorKind.INVALID_ARGUMENT)
MODIFIED = _kind("virtual-chunk-modified", ErrorKind.STORAGE)
SHORT_OBJECT = _kind("invalid-object-size", ErrorKind.STORAGE)

_DOCS = "see https://icechunk.io/en/stable/virtual/"


class VirtualChunkModifiedError(StorageError):
    """The object holding a virtual chunk changed after the reference was written.

    Raised when the recorded ETag differs from the object's, or the object was modified after
    the recorded last-modified time. No bytes are returned.
    """

    default_kind = MODIFIED


class UnauthorizedVirtualChunkContainerError(InvalidInputError):
    """A virtual chunk lives in a container the repository was not authorized to read."""

    default_kind = UNAUTHORIZED


class _BadChecksumType(InvalidInputError, TypeError):
    """A checksum of the wrong type: an :class:`InvalidInputError` that is also a TypeError."""


# -- object store configurations ---------------------------------------------------------------


@dataclass(frozen=True)
class S3Options:
    """How to reach an S3 (or S3-compatible) endpoint holding virtual chunks."""

    region: str | None = None
    endpoint_url: str | None = None
    allow_http: bool = False
    anonymous: bool = False
    force_path_style: bool = False
    network_stream_timeout_seconds: int = 60
    requester_pays: bool = False
    checksum_algorithm: Any = None


class ObjectStoreConfig:
    """Where virtual chunks of a container live: one variant per kind of object store.

    ``ObjectStoreConfig.LocalFileSystem(path)``, ``.S3(options)``, ``.S3Compatible(options)``,
    ``.Tigris(options)``, ``.Http(opts, headers)``, ``.Gcs(opts)``, ``.Azure(account, config)``
    and ``.InMemory()``. Build them with the ``*_store`` helpers. This library reads virtual
    chunks from the local filesystem, S3-compatible stores and HTTP(S) servers.
    """

    @dataclass(frozen=True)
    class LocalFileSystem:
        path: str

    @dataclass(frozen=True)
    class S3:
        options: S3Options = field(default_factory=S3Options)

    @dataclass(frozen=True)
    class S3Compatible:
        options: S3Options = field(default_factory=S3Options)

    @dataclass(frozen=True)
    class Tigris:
        options: S3Options = field(default_factory=S3Options)

    @dataclass(frozen=True)
    class Http:
        opts: Mapping[str, str] | None = None
        headers: Mapping[str, str] | None = None

    @dataclass(frozen=True)
    class Gcs:
        opts: Mapping[str, str] | None = None

    @dataclass(frozen=True)
    class Azure:
        account: str
        config: Mapping[str, str] | None = None

    @dataclass(frozen=True)
    class InMemory:
        pass


type AnyObjectStoreConfig = (
    ObjectStoreConfig.LocalFileSystem
    | ObjectStoreConfig.S3
    | ObjectStoreConfig.S3Compatible
    | ObjectStoreConfig.Tigris
    | ObjectStoreConfig.Http
    | ObjectStoreConfig.Gcs
    | ObjectStoreConfig.Azure
    | ObjectStoreConfig.InMemory
)

_SCHEMES_OF: dict[type, frozenset[str]] = {
    ObjectStoreConfig.LocalFileSystem: frozenset({"file"}),
    ObjectStoreConfig.S3: frozenset({"s3"}),
    ObjectStoreConfig.S3Compatible: frozenset({"s3"}),
    ObjectStoreConfig.Tigris: frozenset({"s3", "tigris"}),
    ObjectStoreConfig.Http: frozenset({"http", "https"}),
    ObjectStoreConfig.Gcs: frozenset({"gs", "gcs"}),
    ObjectStoreConfig.Azure: frozenset({"az", "azure", "abfs"}),
    ObjectStoreConfig.InMemory: frozenset({"memory"}),
}
KNOWN_SCHEMES = frozenset().union(*_SCHEMES_OF.values()) | {"vcc"}
"""URL schemes a virtual reference may use (``vcc://`` names a container)."""


def local_filesystem_store(path: str | os.PathLike[str]) -> ObjectStoreConfig.LocalFileSystem:
    """Virtual chunks in local files under the directory ``path``."""
    return ObjectStoreConfig.LocalFileSystem(os.fspath(path))


def s3_store(
    region: str | None = None,
    endpoint_url: str | None = None,
    allow_http: bool = False,
    anonymous: bool = False,
    s3_compatible: bool = False,
    force_path_style: bool = False,
    network_stream_timeout_seconds: int = 60,
    requester_pays: bool = False,
    checksum_algorithm: Any = None,
) -> ObjectStoreConfig.S3 | ObjectStoreConfig.S3Compatible:
    """Virtual chunks in AWS S3 or, with ``s3_compatible=True``, an S3-compatible server."""
    options = S3Options(
        region,
        endpoint_url,
        allow_http,
        anonymous,
        force_path_style,
        network_stream_timeout_seconds,
        requester_pays,
        checksum_algorithm,
    )
    if s3_compatible:
        return ObjectStoreConfig.S3Compatible(options)
    return ObjectStoreConfig.S3(options)


def http_store(
    opts: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None
) -> ObjectStoreConfig.Http:
    """Virtual chunks on HTTP(S) servers answering range requests.

    ``opts`` are HTTP client options (e.g. ``{"timeout": "30s"}``); ``headers`` are sent with
    every request.
    """
    return ObjectStoreConfig.Http(dict(opts) if opts else None, dict(headers) if headers else None)


def gcs_store(opts: Mapping[str, str] | None = None) -> ObjectStoreConfig.Gcs:
    """Virtual chunks in Google Cloud Storage (configuration only: not readable here yet)."""
    return ObjectStoreConfig.Gcs(dict(opts) if opts else None)


def azure_store(
    *, account: str, config: Mapping[str, str] | None = None
) -> ObjectStoreConfig.Azure:
    """Virtual chunks in Azure Blob storage (configuration only: not readable here yet)."""
    return ObjectStoreConfig.Azure(account, dict(config) if config else None)


def in_memory_store() -> ObjectStoreConfig.InMemory:
    """An in-memory object store (configuration only)."""
    return ObjectStoreConfig.InMemory()


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

    def __init__(self, url_prefix: str, store: AnyObjectStoreConfig, name: str | None = None):
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


@dataclass
class VirtualChunkSpec:
    """One virtual reference for ``IcechunkStore.set_virtual_refs``.

    Attributes
    ----------
    index
        Chunk coordinates in the array's chunk grid.
    location
        Absolute URL of the object holding the chunk.
    offset, length
        The chunk's bytes in that object.
    etag_checksum
        The object's ETag: reads fail if it changes.
    last_updated_at_checksum
        A timezone-aware time: reads fail if the object was modified after it (second
        resolution).
    """

    index: list[int]
    location: str
    offset: int
    length: int
    etag_checksum: str | None = None
    last_updated_at_checksum: datetime | None = None


# -- credentials --------------------------------------------------------------------------------


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return f"icechunk.credentials.{self._name}"

    def __reduce__(self) -> str:
        return self._name


LocalFileSystemAccess = _Sentinel("LocalFileSystemAccess")
"""Authorizes a ``file://`` container (local files need no credentials)."""
HttpAccess = _Sentinel("HttpAccess")
"""Authorizes an ``http(s)://`` container (sent without credentials)."""


@dataclass(frozen=True)
class _S3Anonymous:
    pass


@dataclass(frozen=True)
class _S3FromEnv:
    pass


@dataclass(frozen=True)
class _S3Refreshable:
    get_credentials: Callable[[], Any]
    scatter_initial_credentials: bool = False


def s3_static_credentials(
    *,
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None = None,
    expires_after: datetime | None = None,
) -> Any:
    """Static S3 credentials (an ``S3StaticCredentials``)."""
    from icechunk.storage.obstore import S3StaticCredentials

    return S3StaticCredentials(access_key_id, secret_access_key, session_token, expires_after)


def s3_anonymous_credentials() -> _S3Anonymous:
    """Unsigned S3 requests (public buckets)."""
    return _S3Anonymous()


def s3_from_env_credentials() -> _S3FromEnv:
    """S3 credentials from the environment (``AWS_*`` variables, instance metadata)."""
    return _S3FromEnv()


def s3_refreshable_credentials(
    get_credentials: Callable[[], Any], scatter_initial_credentials: bool = False
) -> _S3Refreshable:
    """S3 credentials from a picklable callable returning ``S3StaticCredentials``."""
    return _S3Refreshable(get_credentials, scatter_initial_credentials)


def s3_credentials(
    *,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    expires_after: datetime | None = None,
    anonymous: bool | None = None,
    from_env: bool | None = None,
    get_credentials: Callable[[], Any] | None = None,
    scatter_initial_credentials: bool = False,
) -> Any:
    """S3 credentials from exactly one source (static keys, anonymous, env or a callable).

    Raises
    ------
    InvalidInputError
        Several sources, or half a key pair, were given.
    """
    given = [
        n
        for n, v in (
            ("static keys", access_key_id or secret_access_key),
            ("anonymous", anonymous),
            ("from_env", from_env),
            ("get_credentials", get_credentials),
        )
        if v
    ]
    if len(given) > 1:
        raise InvalidInputError(f"choose one credential source, not {' and '.join(given)}")
    if access_key_id or secret_access_key:
        if not (access_key_id and secret_access_key):
            raise InvalidInputError("access_key_id and secret_access_key must be given together")
        return s3_static_credentials(
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            session_token=session_token,
            expires_after=expires_after,
        )
    if anonymous:
        return _S3Anonymous()
    if get_credentials is not None:
        return _S3Refreshable(get_credentials, scatter_initial_credentials)
    return _S3FromEnv()


def containers_credentials(m: Mapping[str, Any]) -> dict[str, Any]:
    """The ``authorize_virtual_chunk_access`` mapping: container URL prefix -> credentials."""
    out = dict(m)
    for prefix in out:
        if not isinstance(prefix, str):
            raise InvalidInputError(f"container url prefixes must be strings, not {prefix!r}")
    return out


def check_authorizations(authorized: Mapping[str, Any]) -> None:
    """Validate an ``authorize_virtual_chunk_access`` mapping (keys: container URL prefixes).

    A ``None`` value still authorizes its container but is deprecated, as in the real
    Icechunk 2.1+: a :class:`DeprecationWarning` names the sentinel to pass instead.

    Raises
    ------
    InvalidInputError
        A key is not a URL prefix ending in ``/``.
    """
    for prefix, credentials in authorized.items():
        if not _is_url_prefix(prefix):
            raise InvalidInputError(
                f"authorize_virtual_chunk_access keys are container url prefixes ending in `/`, "
                f"not {prefix!r}",
                ErrorKind.INVALID_ARGUMENT,
            )
        if credentials is None:
            sentinel = (
                "LocalFileSystemAccess"
                if prefix.startswith("file://")
                else "HttpAccess"
                if prefix.startswith(("http://", "https://"))
                else "<credentials>"
            )
            warnings.warn(
                f"Passing `None` in `authorize_virtual_chunk_access` for container `{prefix}` is "
                "deprecated; pass an explicit credential or no-auth sentinel instead, e.g. "
                f"authorize_virtual_chunk_access={{{prefix!r}: "
                f"icechunk.credentials.{sentinel}}}",
                DeprecationWarning,
                stacklevel=4,
            )


def _persisted_store(doc: object) -> AnyObjectStoreConfig | None:
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
            network_stream_timeout_seconds=int(body.get("network_stream_timeout_seconds") or 60),
            requester_pays=bool(body.get("requester_pays", False)),
        )
        kinds: dict[str, Any] = {
            "s3": ObjectStoreConfig.S3,
            "s3_compatible": ObjectStoreConfig.S3Compatible,
            "tigris": ObjectStoreConfig.Tigris,
        }
        return cast(AnyObjectStoreConfig, kinds[tag](options))
    if tag == "http":
        opts = body if isinstance(body, Mapping) else None
        return ObjectStoreConfig.Http({str(k): str(v) for k, v in (opts or {}).items()} or None)
    if tag == "gcs":
        return ObjectStoreConfig.Gcs(dict(body) if isinstance(body, Mapping) else None)
    if tag == "in_memory":
        return ObjectStoreConfig.InMemory()
    return None


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


# -- matching and validation -------------------------------------------------------------------


def _containers(repo: Repository) -> list[VirtualChunkContainer]:
    found = repo.config.virtual_chunk_containers or {}
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
            f"edit the repository configuration adding it, {_DOCS}",
            NO_CONTAINER,
        )
    return container.url_prefix + rest


def absolute_locations(repo: Repository, locations: Iterable[str]) -> set[str]:
    """``locations`` with ``vcc://name/...`` URLs expanded by their named container.

    A ``vcc://`` URL whose container is not configured is kept as it is.
    """
    containers = _containers(repo)
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
        f"VirtualChunkContainer whose url_prefix starts this URL to the repository config, {_DOCS}",
        NO_CONTAINER,
    )


_MAX_U32 = 2**32 - 1


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
    if not 0 < seconds <= _MAX_U32:
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


def _same_etag(expected: str, actual: str | None) -> bool:
    if actual is None:
        return False
    return expected.strip().strip('"') == actual.strip().strip('"')


# -- staging ---------------------------------------------------------------------------------


type RefColumns = tuple[
    npt.NDArray[np.int64],
    list[str],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    list[str | None] | None,
    npt.NDArray[np.int64] | None,
]
"""``(coords, locations, offsets, lengths, etags, last_modified)`` of a batch of references."""


def _int_column(values: object, what: str) -> npt.NDArray[np.int64]:
    """``values`` as a 1-D int64 array; anything but integers is refused."""
    arr = np.asarray(values)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise InvalidInputError(
            f"{what} must be a 1-D array of integers, not {arr.dtype} with shape {arr.shape}",
            ErrorKind.INVALID_ARGUMENT,
        )
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        raise InvalidInputError(f"{what} too large", ErrorKind.INVALID_ARGUMENT)
    return arr.astype(np.int64, copy=False)


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InvalidInputError(
            f"{what} must be an integer, not {type(value).__name__}", ErrorKind.INVALID_ARGUMENT
        )
    return int(value)


def single_ref_columns(
    coords: tuple[int, ...], location: str, offset: object, length: object, checksum: object
) -> RefColumns:
    """The columns of one reference (``IcechunkStore.set_virtual_ref``)."""
    etag, seconds = split_checksum(checksum)
    return (
        np.array([coords], dtype=np.int64).reshape(1, len(coords)),
        [location],
        np.array([_int(offset, "offset")], dtype=np.int64),
        np.array([_int(length, "length")], dtype=np.int64),
        [etag],
        np.array([seconds], dtype=np.int64),
    )


def spec_columns(chunks: Sequence[VirtualChunkSpec]) -> RefColumns:
    """The columns of a list of :class:`VirtualChunkSpec` (``set_virtual_refs``)."""
    chunks = list(chunks)
    if not all(isinstance(c, VirtualChunkSpec) for c in chunks):
        raise InvalidInputError(
            "set_virtual_refs takes a list of VirtualChunkSpec", ErrorKind.INVALID_ARGUMENT
        )
    ndims = {len(c.index) for c in chunks}
    if len(ndims) > 1:
        raise InvalidInputError(
            "every VirtualChunkSpec index must have the same number of dimensions",
            ErrorKind.INVALID_CHUNK_INDEX,
        )
    ndim = ndims.pop() if ndims else 0
    coords = np.array([[_int(i, "chunk index") for i in c.index] for c in chunks], np.int64)
    etags: list[str | None] = []
    seconds: list[int] = []
    for c in chunks:
        if c.etag_checksum is not None and c.last_updated_at_checksum is not None:
            raise InvalidInputError(
                f"virtual reference {c.index}: give an etag or a last-updated checksum, not both",
                ErrorKind.INVALID_ARGUMENT,
            )
        etag, sec = split_checksum(
            c.etag_checksum if c.etag_checksum is not None else c.last_updated_at_checksum
        )
        etags.append(etag)
        seconds.append(sec)
    return (
        coords.reshape(len(chunks), ndim),
        [c.location for c in chunks],
        np.array([_int(c.offset, "offset") for c in chunks], dtype=np.int64),
        np.array([_int(c.length, "length") for c in chunks], dtype=np.int64),
        etags,
        np.array(seconds, dtype=np.int64),
    )


def grid_columns(
    chunk_grid_shape: Sequence[int],
    locations: Sequence[str],
    offsets: object,
    lengths: object,
    arr_offset: Sequence[int] | None,
    checksum: object,
) -> RefColumns:
    """The columns of a C-ordered block of references (``set_virtual_refs_arr``).

    Empty locations are dropped; ``arr_offset`` is added to every chunk coordinate.
    """
    grid = tuple(_int(g, "chunk_grid_shape") for g in chunk_grid_shape)
    locs = list(locations)
    offs = _int_column(offsets, "offsets")
    lens = _int_column(lengths, "lengths")
    if not len(locs) == len(offs) == len(lens):
        raise InvalidInputError(
            "locations, offsets, and lengths must have the same length "
            f"({len(locs)}, {len(offs)}, {len(lens)})",
            ErrorKind.INVALID_ARGUMENT,
        )
    if any(g < 0 for g in grid) or math.prod(grid) != len(locs):
        raise InvalidInputError(
            f"chunk_grid_shape {list(grid)} holds {math.prod(grid)} chunks, but {len(locs)} "
            "locations were given",
            ErrorKind.INVALID_ARGUMENT,
        )
    origin = np.zeros(len(grid), dtype=np.int64)
    if arr_offset is not None:
        if len(arr_offset) != len(grid):
            raise InvalidInputError(
                f"arr_offset {list(arr_offset)} must have {len(grid)} dimensions",
                ErrorKind.INVALID_ARGUMENT,
            )
        origin = np.array([_int(o, "arr_offset") for o in arr_offset], dtype=np.int64)
    keep = np.fromiter((bool(loc) for loc in locs), dtype=bool, count=len(locs))
    idx = np.flatnonzero(keep)
    if len(grid):
        coords = np.stack(np.unravel_index(idx, grid), axis=1).astype(np.int64) + origin
    else:
        coords = np.zeros((len(idx), 0), dtype=np.int64)
    kept = [locs[i] for i in idx.tolist()] if len(idx) != len(locs) else locs
    etag, seconds = split_checksum(checksum)
    n = len(kept)
    return (
        coords.reshape(n, len(grid)),
        kept,
        offs[idx],
        lens[idx],
        [etag] * n if etag is not None else None,
        np.full(n, seconds, dtype=np.int64) if seconds else None,
    )


def plan_virtual_refs(
    repo: Repository,
    path: str,
    grid: tuple[int, ...],
    coords: npt.NDArray[np.int64],
    locations: Sequence[str],
    offsets: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
    etags: Sequence[str | None] | None,
    last_modified: npt.NDArray[np.int64] | None,
    *,
    validate_containers: bool,
) -> tuple[list[tuple[tuple[int, ...], VirtualPayload]], list[int]]:
    """Check a batch of virtual references and build their payloads; nothing is staged here.

    Parameters
    ----------
    repo
        Whose containers the locations are matched against.
    path, grid
        The array (for messages) and its number of chunks per dimension.
    coords
        ``(n, ndim)`` chunk coordinates.
    locations, offsets, lengths
        Per reference: URL, byte offset and byte length.
    etags, last_modified
        Per-reference checksums (``None``/``0`` for none), or ``None`` for no checksums.
    validate_containers
        Refuse (report) references whose location matches no container.

    Returns
    -------
    payloads, failed
        ``(coords, payload)`` for each accepted reference, and the positions of references
        refused because no container matches their location.

    Raises
    ------
    InvalidInputError
        A coordinate outside the chunk grid, a negative offset, a zero or negative length, a
        malformed URL or checksum, or mismatched column lengths. Nothing is accepted then.
    """
    from icechunk.change_set import VirtualPayload

    n = len(locations)
    ndim = len(grid)
    if coords.shape != (n, ndim) or offsets.shape != (n,) or lengths.shape != (n,):
        raise InvalidInputError(
            f"virtual references for `{path}`: locations, offsets, lengths and chunk "
            f"coordinates must have the same length ({n}, {len(offsets)}, {len(lengths)}, "
            f"{len(coords)}) and coordinates {ndim} dimensions",
            ErrorKind.INVALID_ARGUMENT,
        )
    if n == 0:
        return [], []
    bad = np.flatnonzero(((coords < 0) | (coords >= np.asarray(grid, dtype=np.int64))).any(axis=1))
    if len(bad):
        raise InvalidInputError(
            f"invalid chunk index {coords[bad[0]].tolist()} for array `{path}` with "
            f"{list(grid)} chunks per dimension ({len(bad)} virtual references outside the grid)",
            ErrorKind.INVALID_CHUNK_INDEX,
        )
    if (offsets < 0).any():
        i = int(np.flatnonzero(offsets < 0)[0])
        raise InvalidInputError(
            f"negative offset {int(offsets[i])} in the virtual reference for chunk "
            f"{coords[i].tolist()} of `{path}`",
            ErrorKind.INVALID_ARGUMENT,
        )
    if (lengths <= 0).any():
        i = int(np.flatnonzero(lengths <= 0)[0])
        raise InvalidInputError(
            f"refusing a virtual reference of length {int(lengths[i])} for chunk "
            f"{coords[i].tolist()} of `{path}`: a chunk is never empty; delete the chunk instead",
            ErrorKind.ZERO_LENGTH_CHUNK,
        )
    if last_modified is not None and ((last_modified < 0) | (last_modified > _MAX_U32)).any():
        raise InvalidInputError(
            "last-modified checksums must lie between 1970 and 2106", ErrorKind.INVALID_ARGUMENT
        )
    containers = _containers(repo)
    verdict: dict[str, bool] = {}
    for location in set(locations):
        validate_location(location)
        if location.startswith("vcc://"):
            if repo.spec_version < 2:
                raise InvalidInputError(
                    f"`vcc://` virtual chunk locations need a spec version 2 repository: "
                    f"{location}",
                    INVALID_REF,
                )
            resolve_location(containers, location)  # the named container must exist
        verdict[location] = not validate_containers or (
            find_container(containers, location) is not None
        )
    failed = [i for i, loc in enumerate(locations) if not verdict[loc]]
    coord_rows = list(map(tuple, coords.tolist()))
    offs = offsets.tolist()
    lens = lengths.tolist()
    tags = list(etags) if etags is not None else [None] * n
    mods = last_modified.tolist() if last_modified is not None else [0] * n
    skip = set(failed)
    payloads = [
        (coord_rows[i], VirtualPayload(locations[i], offs[i], lens[i], tags[i], mods[i]))
        for i in range(n)
        if i not in skip
    ]
    return payloads, failed


# -- fetchers ----------------------------------------------------------------------------------


class _Fetcher(Protocol):
    async def fetch(self, url: str, start: int, end: int, payload: VirtualPayload) -> bytes: ...


def _modified_error(url: str, what: str) -> VirtualChunkModifiedError:
    return VirtualChunkModifiedError(
        f"the checksum of the object owning the virtual chunk has changed ({url}): {what}; the "
        "object was modified after the virtual reference was written, so its bytes may no "
        "longer be the chunk's. Re-create the reference (with the new checksum) to read it.",
        MODIFIED,
    )


def _check_meta(url: str, payload: VirtualPayload, etag: str | None, mtime_ns: int | None) -> None:
    """Raise :class:`VirtualChunkModifiedError` if the object no longer matches the checksum."""
    if payload.checksum_etag is not None and not _same_etag(payload.checksum_etag, etag):
        raise _modified_error(
            url, f"its ETag is {etag!r}, the reference recorded {payload.checksum_etag!r}"
        )
    seconds = payload.checksum_last_modified
    if seconds and mtime_ns is not None and mtime_ns > seconds * 1_000_000_000:
        when = datetime.fromtimestamp(mtime_ns / 1e9, UTC).isoformat()
        recorded = datetime.fromtimestamp(seconds, UTC).isoformat()
        raise _modified_error(
            url, f"it was last modified at {when}, after the recorded checksum time {recorded}"
        )


def _short_read(url: str, start: int, expected: int, got: int) -> StorageError:
    return StorageError(
        f"error retrieving virtual chunk, not enough data. Expected: ({expected}), available "
        f"({got}), reading {url} from byte {start}",
        SHORT_OBJECT,
    )


INLINE_READ_BYTES = 64 * 1024
"""Local reads up to this size run on the event loop: a worker-thread hop costs more than they do."""


class _LocalFetcher:
    """``file://`` objects: one positional read per request.

    Reads larger than :data:`INLINE_READ_BYTES` run in the default thread pool, so the event
    loop keeps serving other requests while the disk works; small ones (typically served from
    the page cache in microseconds) run inline.
    """

    async def fetch(self, url: str, start: int, end: int, payload: VirtualPayload) -> bytes:
        path = unquote(urlsplit(url).path)

        def read() -> bytes:
            fd = os.open(path, os.O_RDONLY)
            try:
                st = os.fstat(fd)
                _check_meta(url, payload, file_etag(st), st.st_mtime_ns)
                return os.pread(fd, end - start, start) if end > start else b""
            finally:
                os.close(fd)

        try:
            data = read() if end - start <= INLINE_READ_BYTES else await asyncio.to_thread(read)
        except FileNotFoundError:
            raise ObjectNotFoundError(f"the object of a virtual chunk is missing: {url}") from None
        except OSError as e:
            raise StorageError(f"cannot read virtual chunk at {url}: {e}") from None
        if len(data) != end - start:
            raise _short_read(url, start, end - start, len(data))
        return data


def _get_options(payload: VirtualPayload, start: int, end: int) -> dict[str, Any]:
    options: dict[str, Any] = {"range": (start, end)}
    if payload.checksum_etag is not None:
        etag = payload.checksum_etag
        options["if_match"] = etag if etag.startswith('"') else f'"{etag}"'
    if payload.checksum_last_modified:
        options["if_unmodified_since"] = datetime.fromtimestamp(payload.checksum_last_modified, UTC)
    return options


def _meta_mtime_ns(meta: Mapping[str, Any]) -> int | None:
    modified = meta.get("last_modified")
    if not isinstance(modified, datetime):
        return None
    return int(modified.timestamp()) * 1_000_000_000 + modified.microsecond * 1000


class _S3Fetcher:
    """``s3://`` objects through the obstore-backed storage class, one per bucket."""

    def __init__(self, container: VirtualChunkContainer, credentials: Any) -> None:
        self._container = container
        self._credentials = credentials
        self._buckets: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _storage(self, bucket: str) -> Any:
        with self._lock:
            storage = self._buckets.get(bucket)
            if storage is None:
                storage = self._build(bucket)
                self._buckets[bucket] = storage
            return storage

    def _build(self, bucket: str) -> Any:
        from icechunk.storage.obstore import S3StaticCredentials, s3_storage

        store = self._container.store
        assert isinstance(
            store, ObjectStoreConfig.S3 | ObjectStoreConfig.S3Compatible | ObjectStoreConfig.Tigris
        )
        opts = store.options
        creds = self._credentials
        kwargs: dict[str, Any] = {}
        if isinstance(creds, S3StaticCredentials):
            kwargs.update(
                access_key_id=creds.access_key_id,
                secret_access_key=creds.secret_access_key,
                session_token=creds.session_token,
            )
        elif isinstance(creds, _S3Anonymous) or (creds is None and opts.anonymous):
            kwargs["anonymous"] = True
        elif isinstance(creds, _S3Refreshable):
            kwargs.update(
                get_credentials=creds.get_credentials,
                scatter_initial_credentials=creds.scatter_initial_credentials,
            )
        elif isinstance(creds, _S3FromEnv) or creds is None:
            kwargs["from_env"] = True
        else:
            raise InvalidInputError(
                f"the credentials authorizing {self._container.url_prefix} are not S3 "
                f"credentials: {type(creds).__name__}",
                ErrorKind.INVALID_ARGUMENT,
            )
        storage = s3_storage(
            bucket=bucket,
            prefix=None,
            region=opts.region,
            endpoint_url=opts.endpoint_url,
            allow_http=opts.allow_http,
            force_path_style=opts.force_path_style,
            network_stream_timeout_seconds=opts.network_stream_timeout_seconds,
            requester_pays=opts.requester_pays,
            **kwargs,
        )
        storage._check_bucket = False  # a virtual container may not grant listing
        return storage

    async def fetch(self, url: str, start: int, end: int, payload: VirtualPayload) -> bytes:
        import obstore

        parts = urlsplit(url)
        key = unquote(parts.path.lstrip("/"))
        storage = self._storage(parts.netloc)
        store = await storage._ready_store()
        options = _get_options(payload, start, end)

        async def op() -> tuple[bytes, Mapping[str, Any]]:
            result = await obstore.get_async(store, key, options=cast(Any, options))
            return bytes(await result.bytes_async()), result.meta

        try:
            data, meta = cast(
                tuple[bytes, Mapping[str, Any]], await storage._with_retries("read", key, op)
            )
        except PreconditionFailedError:
            raise _modified_error(url, "the object store refused the conditional read") from None
        except ObjectNotFoundError:
            raise ObjectNotFoundError(f"the object of a virtual chunk is missing: {url}") from None
        _check_meta(url, payload, meta.get("e_tag"), _meta_mtime_ns(meta))
        if len(data) != end - start:
            raise _short_read(url, start, end - start, len(data))
        return data


class _HttpFetcher:
    """``http(s)://`` objects through obstore's HTTP store, one client per origin."""

    def __init__(self, container: VirtualChunkContainer) -> None:
        store = container.store
        assert isinstance(store, ObjectStoreConfig.Http)
        self._opts = dict(store.opts or {})
        self._headers = dict(store.headers or {})
        self._origins: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _store(self, origin: str) -> Any:
        from obstore.store import HTTPStore

        with self._lock:
            store = self._origins.get(origin)
            if store is None:
                options: dict[str, Any] = {"allow_http": origin.startswith("http://")}
                options.update(self._opts)
                if self._headers:
                    options["default_headers"] = self._headers
                store = HTTPStore.from_url(origin, client_options=cast(Any, options))
                self._origins[origin] = store
            return store

    async def fetch(self, url: str, start: int, end: int, payload: VirtualPayload) -> bytes:
        import obstore
        from obstore import exceptions as obx

        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        path = unquote(parts.path.lstrip("/"))
        store = self._store(origin)
        try:
            result = await obstore.get_async(
                store, path, options=cast(Any, _get_options(payload, start, end))
            )
            data = bytes(await result.bytes_async())
            meta = result.meta
        except obx.PreconditionError:
            raise _modified_error(url, "the server refused the conditional read") from None
        except (obx.NotFoundError, FileNotFoundError):
            raise ObjectNotFoundError(f"the object of a virtual chunk is missing: {url}") from None
        except (obx.BaseError, OSError, ValueError, RuntimeError) as e:
            first = str(e).split("\n", 1)[0][:300]
            raise StorageError(f"cannot read virtual chunk at {url}: {first}") from None
        _check_meta(url, payload, meta.get("e_tag"), _meta_mtime_ns(meta))
        if len(data) != end - start:
            raise _short_read(url, start, end - start, len(data))
        return data


_FETCHERS: weakref.WeakKeyDictionary[Repository, dict[str, _Fetcher]] = weakref.WeakKeyDictionary()
_FETCHERS_LOCK = threading.Lock()


def _fetcher(repo: Repository, container: VirtualChunkContainer) -> _Fetcher:
    """The cached fetcher of ``container`` for ``repo`` (built on first use)."""
    with _FETCHERS_LOCK:
        per_repo = _FETCHERS.setdefault(repo, {})
        found = per_repo.get(container.url_prefix)
        if found is not None:
            return found
        store = container.store
        fetcher: _Fetcher
        if isinstance(store, ObjectStoreConfig.LocalFileSystem):
            fetcher = _LocalFetcher()
        elif isinstance(
            store, ObjectStoreConfig.S3 | ObjectStoreConfig.S3Compatible | ObjectStoreConfig.Tigris
        ):
            fetcher = _S3Fetcher(container, repo._authorized.get(container.url_prefix))
        elif isinstance(store, ObjectStoreConfig.Http):
            fetcher = _HttpFetcher(container)
        else:
            raise InvalidInputError(
                f"reading virtual chunks from a {type(store).__name__} container "
                f"({container.url_prefix}) is not supported by this library; supported: local "
                "files, S3-compatible object stores and HTTP(S) servers",
                ErrorKind.INVALID_ARGUMENT,
            )
        per_repo[container.url_prefix] = fetcher
        return fetcher


async def fetch_virtual(repo: Repository, payload: VirtualPayload, start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of a virtual chunk (relative to the chunk's own offset).

    Raises
    ------
    InvalidInputError
        No container serves the location (``no-container-for-virtual-chunk``).
    UnauthorizedVirtualChunkContainerError
        The repository was not authorized to read the container.
    VirtualChunkModifiedError
        The object changed after the reference was written (checksum mismatch).
    ObjectNotFoundError, StorageError
        The object is missing, shorter than the reference, or could not be read.
    """
    containers = _containers(repo)
    url = resolve_location(containers, payload.location)
    container = find_container(containers, payload.location)
    if container is None:
        raise InvalidInputError(
            f"no virtual chunk container can handle the chunk location ({payload.location}), "
            "edit the repository configuration adding a virtual chunk container for the chunk "
            f"references, {_DOCS}",
            NO_CONTAINER,
        )
    if container.url_prefix not in repo._authorized:
        raise UnauthorizedVirtualChunkContainerError(
            "a virtual chunk in this repository resolves to the url prefix "
            f"{container.url_prefix}, to be able to fetch the chunk you need to authorize the "
            "virtual chunk container when you open/create the repository "
            f"(authorize_virtual_chunk_access={{{container.url_prefix!r}: ...}}), {_DOCS}",
            UNAUTHORIZED,
        )
    offset = payload.offset
    return await _fetcher(repo, container).fetch(url, offset + start, offset + end, payload)
