"""Repository availability (``RepoStatus``) and feature flags, as the real Icechunk 2.x has them.

Both live in the spec-2 ``repo`` object (``Repo.status``, ``Repo.enabled_feature_flags`` /
``disabled_feature_flags``) and are changed through the repo update protocol, so every process
sees them. A repository whose status is not online refuses every write: new writable or
rearrange sessions, commits (also of sessions opened before), branch and tag changes, metadata,
config and flag changes, expiration, garbage collection. Only :meth:`Repository.set_status`
itself is allowed, so the status can be set back. Spec-1 repositories have neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final

from icechunk.errors import (
    ErrorKind,
    FormatError,
    InvalidInputError,
    ReadOnlyError,
    SessionStateError,
)
from icechunk.format.model import RepoStatus as StatusRecord

__all__ = [
    "FEATURE_FLAGS",
    "FeatureFlag",
    "RepoAvailability",
    "RepoStatus",
    "datetime_repr",
    "flag_disabled_error",
    "read_only_error",
    "require_spec2",
]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class RepoAvailability:
    """The availability of a repository: ``RepoAvailability.online`` or ``.read_only``.

    Like the real Icechunk's enum: two singleton members, compared with each other or with
    their integer values (0, 1), ``int()`` gives the value. It cannot be instantiated.
    """

    __slots__ = ("_name", "_value")
    __hash__ = None  # type: ignore[assignment]  # unhashable, as the real one
    _name: str
    _value: int

    online: ClassVar[RepoAvailability]
    read_only: ClassVar[RepoAvailability]

    def __init__(self, *args: object) -> None:
        raise TypeError("cannot create 'RepoAvailability' instances")

    @classmethod
    def _member(cls, name: str, value: int) -> RepoAvailability:
        obj = object.__new__(cls)
        object.__setattr__(obj, "_name", name)
        object.__setattr__(obj, "_value", value)
        return obj

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"'RepoAvailability' object attribute '{name}' is read-only")

    def __repr__(self) -> str:
        return f"RepoAvailability.{self._name}"

    __str__ = __repr__

    def __int__(self) -> int:
        return self._value

    __index__ = __int__

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RepoAvailability):
            return self._value == other._value
        if isinstance(other, int) and not isinstance(other, bool):
            return self._value == other
        return NotImplemented

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (_availability_named, (self._name,))

    @staticmethod
    def _of(value: int) -> RepoAvailability:
        if value == 0:
            return RepoAvailability.online
        if value == 1:
            return RepoAvailability.read_only
        raise FormatError(
            f"unknown repository availability {value} in the `repo` object (this library knows "
            "0 online and 1 read-only)",
            ErrorKind.FORMAT,
        )


RepoAvailability.online = RepoAvailability._member("online", 0)
RepoAvailability.read_only = RepoAvailability._member("read_only", 1)
_DISPLAY = {0: "Online", 1: "ReadOnly", 2: "Offline"}


def _availability_named(name: str) -> RepoAvailability:
    member = getattr(RepoAvailability, name)
    assert isinstance(member, RepoAvailability)
    return member


def datetime_repr(value: datetime) -> str:
    """A UTC datetime in the real Icechunk's text form (``datetime.datetime(2026,1,2,...)``)."""
    return (
        f"datetime.datetime({value.year},{value.month},{value.day},{value.hour},"
        f"{value.minute},{value.second},{value.microsecond}, tzinfo=datetime.timezone.utc)"
    )


class RepoStatus:
    """The status of a repository: availability, when it was set and an optional reason.

    Parameters
    ----------
    availability
        A :class:`RepoAvailability` member.
    set_at
        When the status was set: a datetime in UTC (``datetime.timezone.utc``); now by default.
    limited_availability_reason
        Free text shown in the errors writers get while the repository is read-only.

    Raises
    ------
    TypeError
        ``availability`` is not a :class:`RepoAvailability`, ``set_at`` is naive, or the reason
        is not a string.
    ValueError
        ``set_at`` has a time zone other than ``datetime.timezone.utc``.
    """

    __slots__ = ("_availability", "_reason", "_set_at")
    __hash__ = None  # type: ignore[assignment]

    def __init__(
        self,
        availability: RepoAvailability,
        set_at: datetime | None = None,
        limited_availability_reason: str | None = None,
    ) -> None:
        if not isinstance(availability, RepoAvailability):
            raise TypeError(
                f"'{type(availability).__name__}' object is not an instance of 'RepoAvailability'"
            )
        if set_at is None:
            set_at = datetime.now(UTC)
        elif not isinstance(set_at, datetime):
            raise TypeError(f"'{type(set_at).__name__}' object is not an instance of 'datetime'")
        elif set_at.tzinfo is None:
            raise TypeError("expected a datetime with non-None tzinfo")
        elif set_at.tzinfo is not UTC:
            raise ValueError("expected datetime.timezone.utc")
        if limited_availability_reason is not None and not isinstance(
            limited_availability_reason, str
        ):
            raise TypeError(
                f"'{type(limited_availability_reason).__name__}' object is not an instance of 'str'"
            )
        self._availability = availability
        self._set_at = set_at
        self._reason = limited_availability_reason

    @property
    def availability(self) -> RepoAvailability:
        return self._availability

    @property
    def set_at(self) -> datetime:
        return self._set_at

    @property
    def limited_availability_reason(self) -> str | None:
        return self._reason

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RepoStatus):
            return NotImplemented
        return (self._availability, self._set_at, self._reason) == (
            other._availability,
            other._set_at,
            other._reason,
        )

    def __repr__(self) -> str:
        return (
            "<icechunk.repository.RepoStatus>\n"
            f"availability: {_DISPLAY[int(self._availability)]}\n"
            f"set_at: {datetime_repr(self._set_at)}\n"
            f"limited_availability_reason: {self._reason}\n"
        )

    def _repr_html_(self) -> str:
        from html import escape

        rows = "".join(
            f"<div><b>{name}:</b> {escape(str(value))}</div>"
            for name, value in (
                ("availability", _DISPLAY[int(self._availability)]),
                ("set_at", datetime_repr(self._set_at)),
                ("limited_availability_reason", self._reason),
            )
        )
        return f"<div><div>icechunk.repository.RepoStatus</div>{rows}</div>"

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (RepoStatus, (self._availability, self._set_at, self._reason))

    # -- the on-disk record ------------------------------------------------------------------

    def to_record(self) -> StatusRecord:
        us = (self._set_at - _EPOCH) // timedelta(microseconds=1)
        return StatusRecord(int(self._availability), us, self._reason)

    @staticmethod
    def from_record(record: StatusRecord) -> RepoStatus:
        return RepoStatus(
            RepoAvailability._of(record.availability),
            _EPOCH + timedelta(microseconds=record.set_at),
            record.reason,
        )


def _status_text(record: StatusRecord) -> str:
    """``Repo status is ReadOnly, set at 2026-12-03 08:40:08.921648 UTC, reason: Some("x")``."""
    at = _EPOCH + timedelta(microseconds=record.set_at)
    reason = "None" if record.reason is None else f'Some("{record.reason}")'
    return (
        f"Repo status is {_DISPLAY.get(record.availability, record.availability)}, set at "
        f"{at.strftime('%Y-%m-%d %H:%M:%S.%f')} UTC, reason: {reason}"
    )


def read_only_error(
    record: StatusRecord, action: str | None = None, prefix: str = ""
) -> ReadOnlyError:
    """The error every writer raises while the repository is not online, as the real one words it.

    ``action`` (``"Cannot create writable session"``) is prepended to the status text;
    ``prefix`` (``"session error: "``) is the real Icechunk's error-context prefix.
    """
    what = f"{action}; " if action else ""
    return ReadOnlyError(
        f"{prefix}the repository status is read-only: {what}{_status_text(record)}",
        ErrorKind.READ_ONLY_REPOSITORY,
    )


# -- feature flags -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _FlagSpec:
    id: int
    name: str
    default_enabled: bool


FEATURE_FLAGS: Final = (
    _FlagSpec(4, "create_tag", True),
    _FlagSpec(5, "delete_tag", True),
    _FlagSpec(3, "move_node", True),
)
"""Every feature flag the format knows, by name."""
_BY_NAME: Final = {f.name: f for f in FEATURE_FLAGS}
_BY_ID: Final = {f.id: f for f in FEATURE_FLAGS}


class FeatureFlag:
    """One feature flag of a repository and its state (read-only; from ``feature_flags()``)."""

    __slots__ = ("_setting", "_spec")
    __hash__ = None  # type: ignore[assignment]
    _spec: _FlagSpec
    _setting: bool | None

    def __init__(self, *args: object) -> None:
        raise TypeError("cannot create 'FeatureFlag' instances")

    @classmethod
    def _make(cls, spec: _FlagSpec, setting: bool | None) -> FeatureFlag:
        obj = object.__new__(cls)
        obj._spec = spec
        obj._setting = setting
        return obj

    @property
    def id(self) -> int:
        return self._spec.id

    @property
    def name(self) -> str:
        return self._spec.name

    @property
    def default_enabled(self) -> bool:
        return self._spec.default_enabled

    @property
    def setting(self) -> bool | None:
        """``True``/``False`` when set explicitly, ``None`` when the default applies."""
        return self._setting

    @property
    def enabled(self) -> bool:
        return self._spec.default_enabled if self._setting is None else self._setting

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FeatureFlag):
            return NotImplemented
        return (self._spec, self._setting) == (other._spec, other._setting)

    def __repr__(self) -> str:
        return (
            f"<icechunk.config.FeatureFlag>\nid: {self.id}\nname: {self.name}\n"
            f"default_enabled: {self.default_enabled}\nsetting: {self.setting}\n"
            f"enabled: {self.enabled}\n"
        )

    def _repr_html_(self) -> str:
        from html import escape

        return f"<pre>{escape(repr(self))}</pre>"

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (_flag, (self._spec.name, self._setting))


def _flag(name: str, setting: bool | None) -> FeatureFlag:
    return FeatureFlag._make(_BY_NAME[name], setting)


def flags_of(enabled: list[int] | None, disabled: list[int] | None) -> list[FeatureFlag]:
    """Every known flag with its setting in a ``repo`` object's enabled/disabled lists."""
    on, off = set(enabled or ()), set(disabled or ())
    return [
        FeatureFlag._make(spec, True if spec.id in on else False if spec.id in off else None)
        for spec in FEATURE_FLAGS
    ]


def flag_named(name: object) -> _FlagSpec:
    """The flag called ``name``.

    Raises
    ------
    InvalidInputError
        There is no such flag.
    """
    if not isinstance(name, str):
        raise TypeError(f"'{type(name).__name__}' object is not an instance of 'str'")
    spec = _BY_NAME.get(name)
    if spec is None:
        raise InvalidInputError(
            f"invalid feature flag name: {name}", ErrorKind.INVALID_FEATURE_FLAG
        )
    return spec


def flag_enabled(flag_id: int, enabled: list[int] | None, disabled: list[int] | None) -> bool:
    if enabled and flag_id in enabled:
        return True
    if disabled and flag_id in disabled:
        return False
    spec = _BY_ID.get(flag_id)
    return True if spec is None else spec.default_enabled


def flag_disabled_error(operation: str, flag_name: str, prefix: str = "") -> SessionStateError:
    """``tag creation is disabled by a feature flag (create_tag)``, as the real one words it."""
    return SessionStateError(
        f"{prefix}{operation} is disabled by a feature flag ({flag_name})",
        ErrorKind.FEATURE_FLAG_DISABLED,
    )


def require_spec2(spec_version: int) -> None:
    """Refuse a spec-2-only operation on a spec-1 repository, with the real one's error."""
    if spec_version < 2:
        raise FormatError(
            "repository version error, this operation requires a repository that is at least "
            "version 2.0, please upgrade your on-disk format before executing this operation",
            ErrorKind.UNSUPPORTED_SPEC_VERSION,
        )
