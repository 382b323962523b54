"""Manifest preloading and virtual-location compression settings (``ManifestConfig`` parts).

:class:`ManifestPreloadCondition` says which arrays' manifests a session loads as it opens;
:class:`ManifestPreloadConfig` bounds how much. :class:`ManifestVirtualChunkLocationCompressionConfig`
tunes the zstd-dictionary compression of virtual chunk URLs in spec-2 manifests. Names, call
forms and reprs are the real Icechunk 2.3.0's.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from icechunk._repr import config_repr
from icechunk.errors import ErrorKind, InvalidInputError
from icechunk.format.manifest import LocationCompression

__all__ = [
    "ManifestPreloadCondition",
    "ManifestPreloadConfig",
    "ManifestVirtualChunkLocationCompressionConfig",
]

_Q = "icechunk.config.ManifestPreloadCondition"

DEFAULT_MAX_TOTAL_REFS = 10_000
DEFAULT_MAX_ARRAYS_TO_SCAN = 50
DEFAULT_MAX_PRELOAD_REFS_PER_MANIFEST = 1_000
"""The default condition preloads a coordinate-like array's manifest of at most this many refs."""

# CF-like coordinate names (after cf-xarray's ``guess_coord_axis`` criteria), matched against an
# array's name (last path segment): time, Z, Y, latitude, longitude, X.
_COORDINATE_NAME_REGEXES = (
    r"^\bt\b$|^(time|min|hour|day|week|month|year)[0-9]*$",
    (
        r"^(z|nav_lev|gdep|lv_|[o]*lev|bottom_top|sigma|h(ei)?ght|altitude|depth|isobaric|pres"
        r"|isotherm)[a-z_]*[0-9]*$"
    ),
    r"^(y|j|nlat|rlat|nj)$",
    r"^y?(nav_lat|lat|gphi)[a-z0-9]*$",
    r"^x?(nav_lon|lon|glam)[a-z0-9]*$",
    r"^(x|i|nlon|rlon|ni)$",
)


def _regex(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(
            f"a preload condition regex must be a str, got {type(value).__name__}",
            ErrorKind.INVALID_ARGUMENT,
        )
    try:
        re.compile(value)
    except re.error as exc:
        raise InvalidInputError(
            f"invalid preload condition regex {value!r}: {exc}", ErrorKind.INVALID_ARGUMENT
        ) from None
    return value


def _conditions(value: object) -> list[ManifestPreloadCondition]:
    items = list(value) if isinstance(value, list | tuple) else None
    if items is None or not all(isinstance(c, ManifestPreloadCondition) for c in items):
        raise InvalidInputError(
            "expected a list of ManifestPreloadCondition", ErrorKind.INVALID_ARGUMENT
        )
    return items


class ManifestPreloadCondition:
    """Which arrays' manifests are loaded when a session opens.

    Build one with the static constructors (``path_matches``, ``name_matches``, ``num_refs``,
    ``true``, ``false``, ``and_conditions``, ``or_conditions``) and combine with ``&``/``|``.
    Each constructor returns an instance of one variant class (``ManifestPreloadCondition.And``,
    ``.Or``, ``.PathMatches``, ``.NameMatches``, ``.NumRefs``, ``.True``, ``.False``).
    """

    __slots__ = ()
    And: ClassVar[type[ManifestPreloadCondition]]
    Or: ClassVar[type[ManifestPreloadCondition]]
    PathMatches: ClassVar[type[ManifestPreloadCondition]]
    NameMatches: ClassVar[type[ManifestPreloadCondition]]
    NumRefs: ClassVar[type[ManifestPreloadCondition]]

    @staticmethod
    def or_conditions(conditions: list[ManifestPreloadCondition]) -> ManifestPreloadCondition:
        """True when any of ``conditions`` is."""
        return _Or(conditions)

    @staticmethod
    def and_conditions(conditions: list[ManifestPreloadCondition]) -> ManifestPreloadCondition:
        """True when all of ``conditions`` are."""
        return _And(conditions)

    @staticmethod
    def path_matches(regex: str) -> ManifestPreloadCondition:
        """The array's full path (``/model/outputs/temperature``) matches ``regex``."""
        return _PathMatches(regex)

    @staticmethod
    def name_matches(regex: str) -> ManifestPreloadCondition:
        """The array's name (last path segment, ``temperature``) matches ``regex``."""
        return _NameMatches(regex)

    @staticmethod
    def num_refs(from_refs: int | None, to_refs: int | None) -> ManifestPreloadCondition:
        """The array has at least ``from_refs`` (inclusive) and fewer than ``to_refs``
        (exclusive) chunk references; ``None`` leaves that side open."""
        return _NumRefs(from_refs, to_refs)

    @staticmethod
    def true() -> ManifestPreloadCondition:
        """Always true."""
        return _True()

    @staticmethod
    def false() -> ManifestPreloadCondition:
        """Never true."""
        return _False()

    def __and__(self, other: ManifestPreloadCondition, /) -> ManifestPreloadCondition:
        return _And([self, other])

    def __or__(self, other: ManifestPreloadCondition, /) -> ManifestPreloadCondition:
        return _Or([self, other])

    def _key(self) -> tuple[Any, ...]:
        raise NotImplementedError  # every variant defines it

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ManifestPreloadCondition) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self._args())

    def _args(self) -> tuple[Any, ...]:
        return ()

    def _matches(self, path: str, num_refs: int) -> bool:
        """Whether an array at ``path`` with ``num_refs`` chunk refs is preloaded."""
        raise NotImplementedError  # every variant defines it


class _Combined(ManifestPreloadCondition):
    __slots__ = ("_0",)

    def __init__(self, _0: list[ManifestPreloadCondition]) -> None:
        self._0 = _conditions(_0)

    def _key(self) -> tuple[Any, ...]:
        return ("and", tuple(c._key() for c in self._0))

    def _args(self) -> tuple[Any, ...]:
        return (self._0,)

    def _matches(self, path: str, num_refs: int) -> bool:
        raise NotImplementedError


class _And(_Combined):
    __slots__ = ()

    def _key(self) -> tuple[Any, ...]:
        return ("and", tuple(c._key() for c in self._0))

    def _matches(self, path: str, num_refs: int) -> bool:
        return all(c._matches(path, num_refs) for c in self._0)

    def __repr__(self) -> str:
        return f"{_Q}.and_conditions([{', '.join(map(repr, self._0))}])"


class _Or(_Combined):
    __slots__ = ()

    def _key(self) -> tuple[Any, ...]:
        return ("or", tuple(c._key() for c in self._0))

    def _matches(self, path: str, num_refs: int) -> bool:
        return any(c._matches(path, num_refs) for c in self._0)

    def __repr__(self) -> str:
        return f"{_Q}.or_conditions([{', '.join(map(repr, self._0))}])"


class _Regex(ManifestPreloadCondition):
    __slots__ = ("regex",)

    def __init__(self, regex: str) -> None:
        self.regex = _regex(regex)

    def _key(self) -> tuple[Any, ...]:
        return (type(self).__name__, self.regex)

    def _args(self) -> tuple[Any, ...]:
        return (self.regex,)

    def _target(self, path: str) -> str:
        raise NotImplementedError

    def _matches(self, path: str, num_refs: int) -> bool:
        return re.search(self.regex, self._target(path)) is not None


class _PathMatches(_Regex):
    __slots__ = ()

    def _target(self, path: str) -> str:
        return path

    def __repr__(self) -> str:
        return f'{_Q}.path_matches("{self.regex}")'


class _NameMatches(_Regex):
    __slots__ = ()

    def _target(self, path: str) -> str:
        return path.rstrip("/").rsplit("/", 1)[-1]

    def __repr__(self) -> str:
        return f'{_Q}.name_matches("{self.regex}")'


class _NumRefs(ManifestPreloadCondition):
    __slots__ = ("_from", "to")

    def __init__(self, from_refs: int | None, to_refs: int | None) -> None:
        for value in (from_refs, to_refs):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InvalidInputError(
                    f"num_refs bounds must be int or None, got {value!r}",
                    ErrorKind.INVALID_ARGUMENT,
                )
        self._from = from_refs
        self.to = to_refs

    def _key(self) -> tuple[Any, ...]:
        return ("num_refs", self._from, self.to)

    def _args(self) -> tuple[Any, ...]:
        return (self._from, self.to)

    def _matches(self, path: str, num_refs: int) -> bool:
        low = self._from if self._from is not None else 0
        return low <= num_refs and (self.to is None or num_refs < self.to)

    def __repr__(self) -> str:
        return f"{_Q}.num_refs({self._from}, {self.to})"


# ``from`` is a keyword: the real class exposes the lower bound as attribute ``from``.
_NumRefs_from = property(lambda self: self._from, doc="The lower bound (inclusive), or None.")
setattr(_NumRefs, "from", _NumRefs_from)


class _Constant(ManifestPreloadCondition):
    __slots__ = ()


class _True(_Constant):
    __slots__ = ()

    def _key(self) -> tuple[Any, ...]:
        return ("true",)

    def _matches(self, path: str, num_refs: int) -> bool:
        return True

    def __repr__(self) -> str:
        return f"{_Q}.true()"


class _False(_Constant):
    __slots__ = ()

    def _key(self) -> tuple[Any, ...]:
        return ("false",)

    def _matches(self, path: str, num_refs: int) -> bool:
        return False

    def __repr__(self) -> str:
        return f"{_Q}.false()"


for _name, _cls in (
    ("And", _And),
    ("Or", _Or),
    ("PathMatches", _PathMatches),
    ("NameMatches", _NameMatches),
    ("NumRefs", _NumRefs),
    ("True", _True),
    ("False", _False),
):
    _cls.__name__ = _name
    _cls.__qualname__ = f"ManifestPreloadCondition.{_name}"
    setattr(ManifestPreloadCondition, _name, _cls)


def _optional_int(name: str, value: object, minimum: int = 0) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInputError(
            f"{name} must be an int >= {minimum} or None, got {value!r}",
            ErrorKind.INVALID_ARGUMENT,
        )
    return value


class ManifestPreloadConfig:
    """Which manifests a session fetches in the background as it opens.

    When a read-only or writable session opens, a background task walks the snapshot's arrays
    in path order and fetches (into the process-wide object cache) the manifests of those
    matching ``preload_if``, so that the first chunk reads find them loaded. Opening the
    session does not wait for it, and a failed fetch only means that manifest is fetched on
    first use instead: the session never fails because of preloading.

    Parameters
    ----------
    max_total_refs
        Preload a matching manifest only while the chunk references already preloaded plus its
        own stay within this total (default 10,000); ``0`` disables preloading.
    preload_if
        Which manifests to preload; a condition sees the array's path and the manifest's
        number of chunk references. ``None`` (default) preloads arrays whose name looks like a
        CF coordinate (``time``, ``t``, ``lat``/``latitude``, ``lon``, ``x``, ``y``, ``z``,
        ``depth``, ``lev``, ...) and whose manifest holds at most 1,000 chunk references.
        ``ManifestPreloadCondition.false()`` disables preloading.
    max_arrays_to_scan
        Look at no more than this many arrays, matching or not (default 50).
    """

    __slots__ = ("_max_arrays_to_scan", "_max_total_refs", "_preload_if")

    def __init__(
        self,
        max_total_refs: int | None = None,
        preload_if: ManifestPreloadCondition | None = None,
        max_arrays_to_scan: int | None = None,
    ) -> None:
        self.max_total_refs = max_total_refs
        self.preload_if = preload_if
        self.max_arrays_to_scan = max_arrays_to_scan

    @property
    def max_total_refs(self) -> int | None:
        return self._max_total_refs

    @max_total_refs.setter
    def max_total_refs(self, value: int | None) -> None:
        self._max_total_refs = _optional_int("max_total_refs", value)

    @property
    def preload_if(self) -> ManifestPreloadCondition | None:
        return self._preload_if

    @preload_if.setter
    def preload_if(self, value: ManifestPreloadCondition | None) -> None:
        if value is not None and not isinstance(value, ManifestPreloadCondition):
            raise InvalidInputError(
                f"preload_if must be a ManifestPreloadCondition or None, got {value!r}",
                ErrorKind.INVALID_ARGUMENT,
            )
        self._preload_if = value

    @property
    def max_arrays_to_scan(self) -> int | None:
        return self._max_arrays_to_scan

    @max_arrays_to_scan.setter
    def max_arrays_to_scan(self, value: int | None) -> None:
        self._max_arrays_to_scan = _optional_int("max_arrays_to_scan", value)

    def _fields(self) -> tuple[tuple[str, object], ...]:
        return (
            ("max_total_refs", self.max_total_refs),
            ("preload_if", self.preload_if),
            ("max_arrays_to_scan", self.max_arrays_to_scan),
        )

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), tuple(v for _, v in self._fields()))

    def __repr__(self) -> str:
        return config_repr("icechunk.config.ManifestPreloadConfig", self._fields())


def default_preload_condition() -> ManifestPreloadCondition:
    """The condition used when ``ManifestPreloadConfig.preload_if`` is ``None``.

    A CF-like coordinate name (see :class:`ManifestPreloadConfig`) and at most
    :data:`DEFAULT_MAX_PRELOAD_REFS_PER_MANIFEST` chunk references.
    """
    names = _Or([_NameMatches(r) for r in _COORDINATE_NAME_REGEXES])
    return _And([names, _NumRefs(None, DEFAULT_MAX_PRELOAD_REFS_PER_MANIFEST + 1)])


def effective_preload(
    config: ManifestPreloadConfig | None,
) -> tuple[int, int, ManifestPreloadCondition]:
    """``(max_total_refs, max_arrays_to_scan, condition)`` in effect for ``config``.

    ``None`` and unset fields take the defaults of :class:`ManifestPreloadConfig`.
    """
    if config is None:
        config = ManifestPreloadConfig()
    total = DEFAULT_MAX_TOTAL_REFS if config.max_total_refs is None else config.max_total_refs
    scan = config.max_arrays_to_scan
    condition = config.preload_if if config.preload_if is not None else default_preload_condition()
    return total, DEFAULT_MAX_ARRAYS_TO_SCAN if scan is None else scan, condition


def condition_matches(condition: ManifestPreloadCondition, path: str, num_refs: int) -> bool:
    """Whether ``condition`` preloads the manifest (of ``num_refs`` refs) of array ``path``."""
    return condition._matches(path, num_refs)


def never_matches(condition: ManifestPreloadCondition) -> bool:
    """Whether ``condition`` is ``ManifestPreloadCondition.false()`` (preloading disabled)."""
    return isinstance(condition, _False)


class ManifestVirtualChunkLocationCompressionConfig:
    """zstd-dictionary compression of the virtual chunk URLs of spec-2 manifests.

    Parameters
    ----------
    min_num_chunks
        Compress a manifest's locations only when it has at least this many virtual chunks,
        all its arrays together (default 1,000).
    dictionary_max_training_samples
        Most locations sampled to train the dictionary (default 100).
    dictionary_max_size_bytes
        Largest dictionary, in bytes (default 2,048).
    compression_level
        zstd level of the location frames (default 3).

    Notes
    -----
    Applies to spec-2 manifests, each written with it in effect (``None`` and unset fields
    mean the defaults, so by default a manifest with 1,000 or more virtual chunks has its
    locations compressed). The dictionary is trained on a uniform random sample of the
    manifest's locations, repeated when they total less than ``dictionary_max_size_bytes``;
    when most samples are shorter than 8 bytes, or zstd cannot train a dictionary from them
    (for example ``dictionary_max_size_bytes`` below zstd's minimum of 256), the manifest is
    written with plain locations instead. Every location is one zstd frame made with the
    dictionary, as the real Icechunk writes them, so either implementation reads either's.
    Spec-1 manifests have no such field: their locations are always plain.
    """

    __slots__ = (
        "_compression_level",
        "_dictionary_max_size_bytes",
        "_dictionary_max_training_samples",
        "_min_num_chunks",
    )

    def __init__(
        self,
        min_num_chunks: int | None = None,
        *,
        dictionary_max_training_samples: int | None = None,
        dictionary_max_size_bytes: int | None = None,
        compression_level: int | None = None,
    ) -> None:
        self.min_num_chunks = min_num_chunks
        self.dictionary_max_training_samples = dictionary_max_training_samples
        self.dictionary_max_size_bytes = dictionary_max_size_bytes
        self.compression_level = compression_level

    @property
    def min_num_chunks(self) -> int | None:
        return self._min_num_chunks

    @min_num_chunks.setter
    def min_num_chunks(self, value: int | None) -> None:
        self._min_num_chunks = _optional_int("min_num_chunks", value)

    @property
    def dictionary_max_training_samples(self) -> int | None:
        return self._dictionary_max_training_samples

    @dictionary_max_training_samples.setter
    def dictionary_max_training_samples(self, value: int | None) -> None:
        self._dictionary_max_training_samples = _optional_int(
            "dictionary_max_training_samples", value, 1
        )

    @property
    def dictionary_max_size_bytes(self) -> int | None:
        return self._dictionary_max_size_bytes

    @dictionary_max_size_bytes.setter
    def dictionary_max_size_bytes(self, value: int | None) -> None:
        self._dictionary_max_size_bytes = _optional_int("dictionary_max_size_bytes", value, 1)

    @property
    def compression_level(self) -> int | None:
        return self._compression_level

    @compression_level.setter
    def compression_level(self, value: int | None) -> None:
        level: object = value  # checked at run time: callers may pass anything
        if level is not None and (
            isinstance(level, bool) or not isinstance(level, int) or not -7 <= level <= 22
        ):
            raise InvalidInputError(
                f"compression_level must be an int in [-7, 22] or None, got {value!r}",
                ErrorKind.INVALID_ARGUMENT,
            )
        self._compression_level = value

    def _fields(self) -> tuple[tuple[str, object], ...]:
        return (
            ("min_num_chunks", self.min_num_chunks),
            ("dictionary_max_training_samples", self.dictionary_max_training_samples),
            ("dictionary_max_size_bytes", self.dictionary_max_size_bytes),
            ("compression_level", self.compression_level),
        )

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        values = dict(self._fields())
        return (_rebuild_compression, (values,))

    def __repr__(self) -> str:
        return config_repr(
            "icechunk.config.ManifestVirtualChunkLocationCompressionConfig", self._fields()
        )


def location_compression(
    config: ManifestVirtualChunkLocationCompressionConfig | None,
) -> LocationCompression:
    """The encoder settings for ``config``; ``None`` and unset fields take the defaults."""
    d = LocationCompression()
    if config is None:
        return d

    def pick(value: int | None, default: int) -> int:
        return default if value is None else value

    return LocationCompression(
        min_num_chunks=pick(config.min_num_chunks, d.min_num_chunks),
        max_training_samples=pick(config.dictionary_max_training_samples, d.max_training_samples),
        max_dictionary_size=pick(config.dictionary_max_size_bytes, d.max_dictionary_size),
        level=pick(config.compression_level, d.level),
    )


def _rebuild_compression(values: dict[str, Any]) -> ManifestVirtualChunkLocationCompressionConfig:
    first = values.pop("min_num_chunks")
    return ManifestVirtualChunkLocationCompressionConfig(first, **values)
