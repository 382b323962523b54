"""Manifest splitting settings (the ``splitting`` part of ``ManifestConfig``).

:class:`ManifestSplitCondition` says which arrays a rule applies to,
:class:`ManifestSplitDimCondition` which of their dimensions, and
:class:`ManifestSplittingConfig` holds the rules. As in the real Icechunk 2.3.0 each condition is
an instance of a variant class nested in its base (``ManifestSplitCondition.NameMatches``,
``ManifestSplitDimCondition.Axis``, ...), so ``isinstance`` and ``match`` work on the variants;
names, call forms and reprs are the real one's.

Two deliberate differences: our conditions and configs pickle (they travel to Dask workers inside
a repository's config; the real ones raise ``TypeError``), and dimension conditions compare by
value (the real ones compare by identity).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar, Self

from icechunk._repr import config_repr
from icechunk.errors import ErrorKind, InvalidInputError

__all__ = ["ManifestSplitCondition", "ManifestSplitDimCondition", "ManifestSplittingConfig"]

MAX_SPLIT_SIZE = 2**32 - 1
"""Largest manifest split size (the real Icechunk's default, meaning "unsplit")."""

_Q = "icechunk.config.ManifestSplitCondition"
_QD = "icechunk.config.ManifestSplitDimCondition"


def _rust_str(value: str) -> str:
    """``value`` quoted as the real one's reprs quote strings (Rust ``Debug``)."""
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def _regex_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} regex must be a str, got {type(value).__name__}")
    return value


def _compiled(regex: str) -> re.Pattern[str]:
    try:
        return re.compile(regex)
    except re.error as exc:
        raise InvalidInputError(
            f"invalid manifest split condition regex {regex!r}: {exc}; pass a valid regular "
            "expression",
            ErrorKind.INVALID_ARGUMENT,
        ) from None


class ManifestSplitCondition:
    """Which arrays a manifest split rule applies to.

    Build one with the static constructors (``path_matches``, ``name_matches``,
    ``and_conditions``, ``or_conditions``) or the variant classes (``AnyArray()``,
    ``PathMatches(regex)``, ``NameMatches(regex)``, ``And([...])``, ``Or([...])``), and combine
    with ``&``/``|``. Paths are absolute (``/group/array``); regexes are searched, not anchored.

    Raises
    ------
    TypeError
        Instantiating the base class, a regex that is not a ``str``, or an ``And``/``Or`` given
        something other than a sequence of conditions.
    """

    __slots__ = ()
    And: ClassVar[type[ManifestSplitCondition]]
    AnyArray: ClassVar[type[ManifestSplitCondition]]
    NameMatches: ClassVar[type[ManifestSplitCondition]]
    Or: ClassVar[type[ManifestSplitCondition]]
    PathMatches: ClassVar[type[ManifestSplitCondition]]

    def __new__(cls, *args: object, **kwargs: object) -> Self:
        if cls is ManifestSplitCondition:
            raise TypeError("cannot create 'ManifestSplitCondition' instances")
        return super().__new__(cls)

    @staticmethod
    def or_conditions(conditions: list[ManifestSplitCondition]) -> ManifestSplitCondition:
        """Matches when any of ``conditions`` does."""
        return _Or(conditions)

    @staticmethod
    def and_conditions(conditions: list[ManifestSplitCondition]) -> ManifestSplitCondition:
        """Matches only when all of ``conditions`` do."""
        return _And(conditions)

    @staticmethod
    def path_matches(regex: str) -> ManifestSplitCondition:
        """Matches arrays whose absolute path matches ``regex``."""
        return _PathMatches(regex)

    @staticmethod
    def name_matches(regex: str) -> ManifestSplitCondition:
        """Matches arrays whose name (last path component) matches ``regex``."""
        return _NameMatches(regex)

    def __or__(self, other: ManifestSplitCondition, /) -> ManifestSplitCondition:
        return _Or([self, other])

    def __and__(self, other: ManifestSplitCondition, /) -> ManifestSplitCondition:
        return _And([self, other])

    def __ror__(self, other: ManifestSplitCondition, /) -> ManifestSplitCondition:
        return _Or([other, self])

    def __rand__(self, other: ManifestSplitCondition, /) -> ManifestSplitCondition:
        return _And([other, self])

    def _key(self) -> tuple[object, ...]:
        raise NotImplementedError  # every variant defines it

    def _args(self) -> tuple[object, ...]:
        return ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ManifestSplitCondition) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), self._args())

    def matches(self, path: str) -> bool:
        """Whether the array at absolute ``path`` satisfies this condition."""
        return self._matches(path)

    def to_json(self) -> object:
        """The JSON form the real Icechunk records in ``rewrite_manifests`` commits."""
        return self._to_json()

    def _matches(self, path: str) -> bool:
        raise NotImplementedError  # every variant defines it

    def _to_json(self) -> object:
        raise NotImplementedError  # every variant defines it


class _Combined(ManifestSplitCondition):
    __slots__ = ("_0",)
    _tag: ClassVar[str] = ""

    def __init__(self, _0: Sequence[ManifestSplitCondition]) -> None:
        given: object = _0
        if isinstance(given, str) or not isinstance(given, Sequence):
            raise TypeError(f"'{type(given).__name__}' object is not an instance of 'Sequence'")
        items: list[ManifestSplitCondition] = []
        for c in given:
            if not isinstance(c, ManifestSplitCondition):
                raise TypeError(
                    f"'{type(c).__name__}' object is not an instance of 'ManifestSplitCondition'"
                )
            items.append(c)
        self._0 = items

    __match_args__ = ("_0",)

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> list[ManifestSplitCondition]:
        if index not in (0, -1):
            raise IndexError("tuple index out of range")
        return self._0

    def _key(self) -> tuple[object, ...]:
        return (self._tag, tuple(c._key() for c in self._0))

    def _args(self) -> tuple[object, ...]:
        return (self._0,)

    def _to_json(self) -> object:
        return {self._tag: [c._to_json() for c in self._0]}

    def __repr__(self) -> str:
        return f"{_Q}.{self._tag}_conditions([{', '.join(map(repr, self._0))}])"


class _And(_Combined):
    __slots__ = ()
    _tag = "and"

    def _matches(self, path: str) -> bool:
        return all(c.matches(path) for c in self._0)


class _Or(_Combined):
    __slots__ = ()
    _tag = "or"

    def _matches(self, path: str) -> bool:
        return any(c.matches(path) for c in self._0)


class _AnyArray(ManifestSplitCondition):
    __slots__ = ()

    def __init__(self) -> None:
        pass

    def _key(self) -> tuple[object, ...]:
        return ("any_array",)

    def _matches(self, path: str) -> bool:
        return True

    def _to_json(self) -> object:
        return "any_array"

    def __repr__(self) -> str:
        return f"{_Q}.any_array()"


class _Regex(ManifestSplitCondition):
    __slots__ = ("_pattern", "regex")
    _tag: ClassVar[str] = ""
    __match_args__ = ("regex",)

    def __init__(self, regex: str) -> None:
        self.regex = _regex_str(regex, f"{self._tag}_matches")
        self._pattern: re.Pattern[str] | None = None

    def _key(self) -> tuple[object, ...]:
        return (self._tag, self.regex)

    def _args(self) -> tuple[object, ...]:
        return (self.regex,)

    def _search(self, text: str) -> bool:
        if self._pattern is None:
            self._pattern = _compiled(self.regex)
        return self._pattern.search(text) is not None

    def _to_json(self) -> object:
        return {f"{self._tag}_matches": {"regex": self.regex}}

    def __repr__(self) -> str:
        return f"{_Q}.{self._tag}_matches({_rust_str(self.regex)})"


class _PathMatches(_Regex):
    __slots__ = ()
    _tag = "path"

    def _matches(self, path: str) -> bool:
        return self._search(path)


class _NameMatches(_Regex):
    __slots__ = ()
    _tag = "name"

    def _matches(self, path: str) -> bool:
        return self._search(path.rstrip("/").rsplit("/", 1)[-1])


for _name, _cls in (
    ("And", _And),
    ("AnyArray", _AnyArray),
    ("NameMatches", _NameMatches),
    ("Or", _Or),
    ("PathMatches", _PathMatches),
):
    _cls.__name__ = _name
    _cls.__qualname__ = f"ManifestSplitCondition.{_name}"
    setattr(ManifestSplitCondition, _name, _cls)


class ManifestSplitDimCondition:
    """Which dimension of an array a split size applies to.

    One of the variants ``ManifestSplitDimCondition.Axis(axis)`` (an axis index),
    ``.DimensionName(regex)`` (dimensions whose name matches) and ``.Any()`` (any other
    dimension).

    Raises
    ------
    TypeError
        Instantiating the base class, an axis that is not an ``int``, a name regex that is not a
        ``str``.
    OverflowError
        A negative axis.
    """

    __slots__ = ()
    Any: ClassVar[type[ManifestSplitDimCondition]]
    Axis: ClassVar[type[ManifestSplitDimCondition]]
    DimensionName: ClassVar[type[ManifestSplitDimCondition]]

    def __new__(cls, *args: object, **kwargs: object) -> Self:
        if cls is ManifestSplitDimCondition:
            raise TypeError("cannot create 'ManifestSplitDimCondition' instances")
        return super().__new__(cls)

    def _key(self) -> tuple[object, ...]:
        raise NotImplementedError  # every variant defines it

    def _args(self) -> tuple[object, ...]:
        return ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ManifestSplitDimCondition) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), self._args())

    def matches(self, axis: int, name: str | None) -> bool:
        """Whether dimension ``axis`` (named ``name``, or unnamed) satisfies this condition."""
        return self._matches(axis, name)

    def to_json(self) -> str | dict[str, object]:
        """The JSON form the real Icechunk records in ``rewrite_manifests`` commits."""
        return self._to_json()

    def _matches(self, axis: int, name: str | None) -> bool:
        raise NotImplementedError  # every variant defines it

    def _to_json(self) -> str | dict[str, object]:
        raise NotImplementedError  # every variant defines it


class _Tuple1(ManifestSplitDimCondition):
    """A variant holding one value, ``_0`` (indexable like a 1-tuple)."""

    __slots__ = ("_0",)
    __match_args__ = ("_0",)
    _0: Any

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> object:
        if index not in (0, -1):
            raise IndexError("tuple index out of range")
        return self._0

    def _args(self) -> tuple[object, ...]:
        return (self._0,)


class _Axis(_Tuple1):
    __slots__ = ()

    def __init__(self, _0: int) -> None:
        if isinstance(_0, bool) or not isinstance(_0, int):
            raise TypeError(f"'{type(_0).__name__}' object cannot be interpreted as an integer")
        if _0 < 0:
            raise OverflowError("can't convert negative int to unsigned")
        self._0 = _0

    def _key(self) -> tuple[object, ...]:
        return ("axis", self._0)

    def _matches(self, axis: int, name: str | None) -> bool:
        return bool(axis == self._0)

    def _to_json(self) -> str | dict[str, object]:
        return {"Axis": self._0}

    def __repr__(self) -> str:
        return f"{_QD}.axis({self._0})"


class _DimensionName(_Tuple1):
    __slots__ = ("_pattern",)

    def __init__(self, _0: str) -> None:
        self._0 = _regex_str(_0, "DimensionName")
        self._pattern: re.Pattern[str] | None = None

    def _key(self) -> tuple[object, ...]:
        return ("dimension_name", self._0)

    def _matches(self, axis: int, name: str | None) -> bool:
        if name is None:
            return False
        if self._pattern is None:
            self._pattern = _compiled(self._0)
        return self._pattern.search(name) is not None

    def _to_json(self) -> str | dict[str, object]:
        return {"DimensionName": self._0}

    def __repr__(self) -> str:
        return f"{_QD}.dimension_name({_rust_str(self._0)})"


class _AnyDim(ManifestSplitDimCondition):
    __slots__ = ()

    def __init__(self) -> None:
        pass

    def _key(self) -> tuple[object, ...]:
        return ("any",)

    def _matches(self, axis: int, name: str | None) -> bool:
        return True

    def _to_json(self) -> str | dict[str, object]:
        return "Any"

    def __repr__(self) -> str:
        return f"{_QD}.any()"


for _name, _dcls in (("Axis", _Axis), ("DimensionName", _DimensionName), ("Any", _AnyDim)):
    _dcls.__name__ = _name
    _dcls.__qualname__ = f"ManifestSplitDimCondition.{_name}"
    setattr(ManifestSplitDimCondition, _name, _dcls)

_SplitRule = tuple[ManifestSplitCondition, list[tuple[ManifestSplitDimCondition, int]]]


def _checked_rules(value: object) -> list[_SplitRule] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple):
        raise TypeError(
            f"split_sizes must be a sequence of (condition, ((dim_condition, size), ...)) "
            f"pairs, got {type(value).__name__}"
        )
    rules: list[_SplitRule] = []
    for rule in value:
        if not isinstance(rule, list | tuple) or len(rule) != 2:
            raise TypeError(f"a split rule must be a (condition, dims) pair, got {rule!r}")
        cond, dims = rule
        if not isinstance(cond, ManifestSplitCondition):
            raise TypeError(
                f"'{type(cond).__name__}' object is not an instance of 'ManifestSplitCondition'"
            )
        pairs: list[tuple[ManifestSplitDimCondition, int]] = []
        for pair in dims:
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise TypeError(f"a dimension rule must be a (dim_condition, size) pair: {pair!r}")
            dcond, n = pair
            if not isinstance(dcond, ManifestSplitDimCondition):
                raise TypeError(
                    f"'{type(dcond).__name__}' object is not an instance of "
                    "'ManifestSplitDimCondition'"
                )
            if isinstance(n, bool) or not isinstance(n, int):
                raise TypeError(
                    f"manifest split size for {dcond!r} must be an int, got {type(n).__name__}"
                )
            if not 1 <= n <= MAX_SPLIT_SIZE:
                raise InvalidInputError(
                    f"manifest split size for {dcond!r} must be between 1 and "
                    f"{MAX_SPLIT_SIZE} chunks, got {n}",
                    ErrorKind.INVALID_ARGUMENT,
                )
            pairs.append((dcond, n))
        rules.append((cond, pairs))
    return rules


class ManifestSplittingConfig:
    """Split sizes (in chunks) per array condition and dimension condition.

    The first matching array condition wins; within it, the first matching dimension condition
    gives that dimension's split size. Dimensions with no match are not split. A split size is a
    number of chunks: along that dimension each manifest covers the chunk indices
    ``[k * size, (k + 1) * size)``. ``split_sizes=None`` (the default) splits nothing.

    Raises
    ------
    InvalidInputError
        A split size is not between 1 and 2**32 - 1.
    TypeError
        A split size is not an ``int``, or a rule is not built of conditions.
    """

    __slots__ = ("_split_sizes",)

    def __init__(self, split_sizes: Sequence[Any] | None = None) -> None:
        self._split_sizes = _checked_rules(split_sizes)

    @property
    def split_sizes(self) -> list[_SplitRule] | None:
        """The rules, ``[(condition, [(dim_condition, size), ...]), ...]``, or None."""
        return self._split_sizes

    @split_sizes.setter
    def split_sizes(self, value: Sequence[Any] | None) -> None:
        self._split_sizes = _checked_rules(value)

    @staticmethod
    def from_dict(
        split_sizes: dict[ManifestSplitCondition, dict[ManifestSplitDimCondition, int]],
    ) -> ManifestSplittingConfig:
        """The config of ``{condition: {dim_condition: size}}``, rules in dict order."""
        return ManifestSplittingConfig([(k, list(v.items())) for k, v in split_sizes.items()])

    def to_dict(self) -> dict[ManifestSplitCondition, dict[ManifestSplitDimCondition, int]]:
        """``{condition: {dim_condition: size}}``, the inverse of :meth:`from_dict`."""
        return {k: dict(v) for k, v in self._split_sizes or []}

    def to_json(self) -> dict[str, Any]:
        """The JSON form the real Icechunk records under ``"splitting_config"``."""
        return {
            "split_sizes": [
                [cond.to_json(), [{"condition": d.to_json(), "num_chunks": n} for d, n in dims]]
                for cond, dims in self._split_sizes or []
            ]
        }

    def split_sizes_for(
        self, path: str, dimension_names: tuple[str | None, ...] | None, ndim: int
    ) -> tuple[int | None, ...]:
        """Per-dimension split size (``None`` = unsplit) of the array at ``path``."""
        names = dimension_names or (None,) * ndim
        for cond, dims in self._split_sizes or []:
            if cond.matches(path):
                out: list[int | None] = []
                for axis in range(ndim):
                    size = None
                    for dcond, n in dims:
                        if dcond.matches(axis, names[axis] if axis < len(names) else None):
                            size = n
                            break
                    out.append(size)
                return tuple(out)
        return (None,) * ndim

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ManifestSplittingConfig) and self.split_sizes == other.split_sizes

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[object, ...]:
        return (ManifestSplittingConfig, (self._split_sizes,))

    def __repr__(self) -> str:
        return config_repr(
            "icechunk.config.ManifestSplittingConfig", [("split_sizes", self._split_sizes)]
        )
